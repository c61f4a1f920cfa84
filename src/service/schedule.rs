//! Schedule operations shared by REST, WebSocket and NATS: who may do what,
//! and the one call into the doctor's `ScheduleActor`. Every surface calls
//! these, so they give the same answers and the same error codes.

use std::collections::HashMap;

use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::channels::Viewer;
use medrelay_actors::schedule::messages::{Board, Book, Update};
use medrelay_actors::schedule::{
    AppointmentRecord, PatientAppointment, ScheduleActor, indexed_ids, provider_appointments,
};
use medrelay_protocol::schedule::{
    AppointmentId, AppointmentList, AppointmentView, BookAppointment, ListQuery, RequestedStatus,
    UpdateAppointment,
};
use medrelay_protocol::{ProviderId, Role};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// Sends `message` to the schedule actor of `provider`, after checking that
/// the provider exists, so unknown ids never start an actor.
///
/// # Errors
/// 404 for an unknown provider, the actor's own error otherwise.
pub async fn ask<M>(
    state: &AppState,
    provider: &ProviderId,
    message: M,
) -> Result<M::Result, AppError>
where
    M: actix::Message + Send + Clone + 'static,
    M::Result: Send,
    ScheduleActor: actix::Handler<M>,
{
    if state
        .store
        .get::<ProviderRecord>(provider.as_str())?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no provider {provider}")));
    }
    Ok(state.schedules.send(provider.as_str(), message).await?)
}

/// The caller with the profiles their account owns.
///
/// # Errors
/// 401 when the account no longer exists; 500 on a read failure.
pub fn viewer(state: &AppState, principal: &Principal) -> Result<Viewer, AppError> {
    if principal.display_board().is_some() {
        // A display sees what a patient sees, and owns nothing.
        return Ok(Viewer {
            user_id: principal.user_id.clone(),
            role: Role::Patient,
            patient_id: None,
            provider_id: None,
        });
    }
    let user = state
        .store
        .get::<UserRecord>(principal.user_id.as_str())?
        .ok_or_else(|| AppError::Unauthorized("the account no longer exists".into()))?;
    Ok(Viewer::from(&user))
}

/// Books a slot: patients for themselves, doctors on their own schedule,
/// admins anywhere.
///
/// # Errors
/// 403 for someone else's patient or schedule; the schedule's own errors.
pub async fn book(
    state: &AppState,
    viewer: &Viewer,
    request: BookAppointment,
) -> Result<AppointmentRecord, AppError> {
    match viewer.role {
        Role::Patient if viewer.patient_id.as_ref() != Some(&request.patient_id) => {
            return Err(AppError::Forbidden(
                "patients book only for themselves".into(),
            ));
        }
        Role::Doctor if !viewer.manages(&request.provider_id) => {
            return Err(AppError::Forbidden(
                "doctors book only on their own schedule".into(),
            ));
        }
        _ => {}
    }
    let provider = request.provider_id.clone();
    let by = Some(viewer.user_id.clone());
    Ok(ask(state, &provider, Book { request, by }).await??)
}

/// An appointment the viewer may see: their own (patients), on their schedule
/// (doctors), any (admins).
///
/// # Errors
/// 404 when it does not exist, 403 when it is not the viewer's to see.
pub fn find(
    state: &AppState,
    viewer: &Viewer,
    id: &AppointmentId,
) -> Result<AppointmentRecord, AppError> {
    let record = state
        .store
        .get::<AppointmentRecord>(id.as_str())?
        .ok_or_else(|| AppError::NotFound(format!("no appointment {id}")))?;
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Patient => viewer.patient_id.as_ref() == Some(&record.patient_id),
        Role::Doctor => viewer.manages(&record.provider_id),
    };
    if !allowed {
        return Err(AppError::Forbidden("that appointment is not yours".into()));
    }
    Ok(record)
}

/// Moves an appointment or changes its status. Patients may move or cancel
/// their own; check-in, completion and no-show are for the doctor and admins.
///
/// # Errors
/// As [`find`], 403 for a status a patient may not set, and the schedule's errors.
pub async fn update(
    state: &AppState,
    viewer: &Viewer,
    id: &AppointmentId,
    change: UpdateAppointment,
) -> Result<AppointmentRecord, AppError> {
    let current = find(state, viewer, id)?;
    if viewer.role == Role::Patient
        && !matches!(
            change.status,
            None | Some(
                RequestedStatus::Scheduled
                    | RequestedStatus::Rescheduled
                    | RequestedStatus::Cancelled
            )
        )
    {
        return Err(AppError::Forbidden(
            "patients may only move or cancel their appointments".into(),
        ));
    }
    let message = Update {
        appointment_id: id.clone(),
        change,
        by: Some(viewer.user_id.clone()),
    };
    Ok(ask(state, &current.provider_id, message).await??)
}

/// Cancels an appointment.
///
/// # Errors
/// As [`update`].
pub async fn cancel(
    state: &AppState,
    viewer: &Viewer,
    id: &AppointmentId,
) -> Result<AppointmentRecord, AppError> {
    let change = UpdateAppointment {
        status: Some(RequestedStatus::Cancelled),
        ..Default::default()
    };
    update(state, viewer, id, change).await
}

/// A board or slot list as JSON; patients' identities only when `reveal`.
pub fn board_json(board: &Board, reveal: bool, min_notice_minutes: u32) -> Value {
    let slots: Vec<Value> = board
        .slots
        .iter()
        .map(|s| {
            let mut slot = json!({
                "date": s.slot.date, "timeSlot": s.slot.time_slot,
                "start": s.slot.start, "end": s.slot.end,
                "state": match (&s.booked, &s.held) {
                    (Some(_), _) => "booked",
                    (None, Some(_)) => "held",
                    (None, None) => "free",
                },
            });
            if let Some(hold) = &s.held {
                slot["holdId"] = json!(hold.hold_id);
                slot["expiresAt"] = json!(hold.expires_at);
                if reveal {
                    slot["patientId"] = json!(hold.patient_id);
                }
            }
            if let Some(holder) = &s.booked {
                slot["appointmentId"] = json!(holder.appointment_id);
                if holder.needs_reschedule {
                    slot["needsReschedule"] = json!(true);
                }
                if reveal {
                    slot["patientId"] = json!(holder.patient_id);
                }
            }
            slot
        })
        .collect();
    // Appointments the doctor's new hours no longer fit: they may lie
    // outside every slot above, so the board lists them on their own.
    let needs_reschedule: Vec<Value> = board
        .needs_reschedule
        .iter()
        .map(|a| {
            let mut entry = json!({
                "appointmentId": a.appointment_id,
                "date": a.slot.date, "timeSlot": a.slot.time_slot,
                "start": a.slot.start, "end": a.slot.end,
            });
            if reveal {
                entry["patientId"] = json!(a.patient_id);
            }
            entry
        })
        .collect();
    json!({
        "providerId": board.provider.provider_id,
        // Public (the doctors' directory lists it); a waiting-room screen,
        // which may call no REST, titles its board with it.
        "name": board.provider.name,
        "timeZone": board.provider.time_zone,
        "slotMinutes": board.provider.slot_minutes,
        // How soon a slot may still be booked (`schedule.min_notice_minutes`),
        // so a client offers only the free slots a booking would get.
        "minNoticeMinutes": min_notice_minutes,
        "from": board.from,
        "to": board.to,
        "slots": slots,
        "needsReschedule": needs_reschedule,
    })
}

/// The doctor's time zone, absent if the provider was deleted.
fn time_zone_of(state: &AppState, provider: &ProviderId) -> Option<String> {
    state
        .store
        .get::<ProviderRecord>(provider.as_str())
        .ok()
        .flatten()
        .map(|p| p.time_zone)
}

/// The REST body of an appointment (also the NATS and WebSocket `get` reply).
pub fn render(state: &AppState, record: AppointmentRecord) -> AppointmentView {
    let time_zone = time_zone_of(state, &record.provider_id);
    view(record, time_zone)
}

/// The view of `a`, given its doctor's time zone (looked up once by a
/// caller that renders many).
fn view(a: AppointmentRecord, time_zone: Option<String>) -> AppointmentView {
    AppointmentView {
        appointment_id: a.appointment_id,
        patient_id: a.patient_id,
        provider_id: a.provider_id,
        appointment_date: a.slot.date,
        time_slot: a.slot.time_slot,
        status: a.status,
        start_utc: a.slot.start,
        end_utc: a.slot.end,
        needs_reschedule: a.needs_reschedule,
        time_zone,
        history: a.history,
    }
}

/// Appointments by doctor and/or patient, filtered. Patients see only their
/// own; doctors their own schedule, or a patient of theirs; admins any
/// (naming a doctor or a patient).
///
/// # Errors
/// 403 for what the caller may not list, 404 for an unknown doctor, 422
/// when neither a doctor nor a patient is named.
pub fn list(
    state: &AppState,
    principal: &Principal,
    mut q: ListQuery,
) -> Result<AppointmentList, AppError> {
    let viewer = viewer(state, principal)?;
    match viewer.role {
        Role::Patient => {
            if q.patient_id.is_some() && q.patient_id != viewer.patient_id {
                return Err(AppError::Forbidden(
                    "patients list only their own appointments".into(),
                ));
            }
            q.patient_id = viewer.patient_id.clone();
        }
        Role::Doctor => {
            if q.provider_id.is_none() && q.patient_id.is_none() {
                q.provider_id = viewer.provider_id.clone();
            }
            if let Some(p) = &q.provider_id
                && !viewer.manages(p)
            {
                return Err(AppError::Forbidden(
                    "doctors list only their own schedule".into(),
                ));
            }
            if let Some(p) = &q.patient_id
                && q.provider_id.is_none()
                && !viewer.may_see_patient(&state.store, p)?
            {
                return Err(AppError::Forbidden("not a patient of yours".into()));
            }
        }
        Role::Admin => {}
    }
    let records: Vec<AppointmentRecord> = match (&q.provider_id, &q.patient_id) {
        (Some(provider), _) => {
            if state
                .store
                .get::<ProviderRecord>(provider.as_str())?
                .is_none()
            {
                return Err(AppError::NotFound(format!("no provider {provider}")));
            }
            provider_appointments(&state.store, provider)?
        }
        (None, Some(patient)) => {
            let mut out = Vec::new();
            for id in indexed_ids::<PatientAppointment>(&state.store, patient.as_str(), usize::MAX)?
            {
                if let Some(a) = state.store.get::<AppointmentRecord>(id.as_str())? {
                    out.push(a);
                }
            }
            out.sort_by_key(|a| a.slot.start);
            out
        }
        (None, None) => {
            return Err(AppError::invalid(
                "providerId",
                "name a providerId or a patientId",
            ));
        }
    };
    // A list is mostly one doctor's: read each provider's zone once.
    let mut zones: HashMap<ProviderId, Option<String>> = HashMap::new();
    let appointments = records
        .into_iter()
        .filter(|a| q.patient_id.as_ref().is_none_or(|p| &a.patient_id == p))
        .filter(|a| q.status.is_none_or(|s| a.status == s))
        .filter(|a| q.needs_reschedule.is_none_or(|n| a.needs_reschedule == n))
        .filter(|a| q.from.is_none_or(|f| a.slot.date >= f))
        .filter(|a| q.to.is_none_or(|t| a.slot.date <= t))
        .map(|a| {
            let time_zone = zones
                .entry(a.provider_id.clone())
                .or_insert_with(|| time_zone_of(state, &a.provider_id))
                .clone();
            view(a, time_zone)
        })
        .collect();
    Ok(AppointmentList { appointments })
}
