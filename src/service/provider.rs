//! Provider operations: doctors' profiles and hours (seed section 6), the
//! directory of doctors, bookable slots and display tokens. The REST routes
//! in `http/providers.rs` and `http/directory.rs` call these.

use jiff::civil::Date;
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::schedule::create_provider;
use medrelay_actors::schedule::messages::{
    DeleteProvider, GetBoard, ProviderPatch, UpdateProvider,
};
use medrelay_protocol::{ProviderId, Role};

use medrelay_protocol::provider::{
    CreateProvider, Deleted, DisplayToken, DisplayTokenRequest, Doctor, DoctorList, PatchProvider,
    ProviderStatus, ProviderView,
};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::schedule;
use crate::state::AppState;

const MAX_TEXT: usize = 200;

fn text(field: &str, value: String) -> Result<String, AppError> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    Ok(value)
}

fn provider_id(raw: &str) -> Result<ProviderId, AppError> {
    ProviderId::parse(raw).map_err(|e| AppError::invalid("providerId", e))
}

/// The provider `raw` names, if the caller may manage it (admins, or that
/// doctor); `what` names the request in the refusal.
fn managed(
    state: &AppState,
    principal: &Principal,
    raw: &str,
    what: &str,
) -> Result<ProviderId, AppError> {
    let id = provider_id(raw)?;
    if !schedule::viewer(state, principal)?.manages(&id) {
        return Err(AppError::Forbidden(format!(
            "only admins and that doctor may {what}"
        )));
    }
    Ok(id)
}

/// Adds a provider (admins).
///
/// # Errors
/// 403 for other roles, 422 naming the field, 409 for a taken provider id.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: CreateProvider,
) -> Result<ProviderStatus, AppError> {
    principal.require(&[Role::Admin])?;
    let link = match &body.user_id {
        Some(user) => Some(
            state
                .store
                .get::<UserRecord>(user.as_str())?
                .ok_or_else(|| AppError::invalid("userId", "no such account"))?,
        ),
        None => None,
    };
    let record = ProviderRecord {
        provider_id: body.provider_id.unwrap_or_else(|| {
            ProviderId::parse(&medrelay_actors::ids::new_id("prv"))
                .expect("generated ids are valid")
        }),
        user_id: body.user_id,
        name: text("name", body.name)?,
        specialization: text(
            "specialization",
            body.specialization
                .unwrap_or_else(|| "General practice".into()),
        )?,
        contact_info: body.contact_info.unwrap_or_default(),
        time_zone: body.time_zone,
        slot_minutes: body.slot_minutes.unwrap_or(30),
        availability: body.availability,
        exceptions: body.exceptions,
        created_at: jiff::Timestamp::now(),
    };
    let linked = link.is_some();
    let created = create_provider(&state.store, record, link).await?;
    tracing::info!(provider = %created.provider_id, "provider created");
    if linked {
        state.notifier.replan_agenda(&created.provider_id).await;
    }
    Ok(ProviderStatus {
        provider_id: created.provider_id,
        status: "Created",
    })
}

/// One page of provider profiles, after `after`, at most `limit` (1 to 500,
/// default 100).
///
/// # Errors
/// 422 for a limit out of range.
pub fn list(
    state: &AppState,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<DoctorList, AppError> {
    let limit = crate::service::page_size(limit, 100, 500)?;
    let rows = state.store.scan::<ProviderRecord>(after, limit + 1)?;
    let more = rows.len() > limit;
    let doctors: Vec<Doctor> = rows
        .into_iter()
        .take(limit)
        .map(|(_, p)| Doctor {
            provider_id: p.provider_id,
            name: p.name,
            specialization: p.specialization,
            contact_info: p.contact_info,
            time_zone: p.time_zone,
            user_id: p.user_id,
        })
        .collect();
    let next_after = more
        .then(|| doctors.last().map(|d| d.provider_id.to_string()))
        .flatten();
    Ok(DoctorList {
        doctors,
        next_after,
    })
}

/// A provider's profile.
///
/// # Errors
/// 422 for a malformed id, 404 for an unknown one.
pub fn get(state: &AppState, id: &str) -> Result<ProviderView, AppError> {
    let id = provider_id(id)?;
    let p = state
        .store
        .get::<ProviderRecord>(id.as_str())?
        .ok_or_else(|| AppError::NotFound(format!("no provider {id}")))?;
    Ok(ProviderView {
        provider_id: p.provider_id,
        name: p.name,
        specialization: p.specialization,
        contact_info: p.contact_info,
        availability: p.availability,
        exceptions: p.exceptions,
        time_zone: p.time_zone,
        slot_minutes: p.slot_minutes,
        user_id: p.user_id,
    })
}

/// Updates a provider (admins, or that doctor); absent fields stay as they
/// are. Boards see an `availability_changed` event.
///
/// # Errors
/// 403 for anyone else, 404 for an unknown provider, 422 naming the field.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: PatchProvider,
) -> Result<ProviderStatus, AppError> {
    let id = managed(state, principal, id, "change a provider")?;
    let patch = ProviderPatch {
        name: body.name.map(|n| text("name", n)).transpose()?,
        specialization: body
            .specialization
            .map(|s| text("specialization", s))
            .transpose()?,
        contact_info: body.contact_info,
        time_zone: body.time_zone,
        slot_minutes: body.slot_minutes,
        availability: body.availability,
        exceptions: body.exceptions,
    };
    let updated = schedule::ask(state, &id, UpdateProvider { patch }).await??;
    // A new zone moves the doctor's agenda with it.
    state.notifier.replan_agenda(&id).await;
    Ok(ProviderStatus {
        provider_id: updated.provider_id,
        status: "Updated",
    })
}

/// Deletes a provider (admins); refused while it has appointments ahead,
/// unless `cancel_appointments`. A query the surface could not read is
/// reported after the caller's role and the id are checked.
///
/// # Errors
/// 403 for other roles, 404 for an unknown provider, 409 with appointments
/// ahead.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    id: &str,
    cancel_appointments: Result<bool, AppError>,
) -> Result<Deleted, AppError> {
    principal.require(&[Role::Admin])?;
    let id = provider_id(id)?;
    let cancel_appointments = cancel_appointments?;
    let message = DeleteProvider {
        cancel_appointments,
        by: Some(principal.user_id.clone()),
    };
    let cancelled = schedule::ask(state, &id, message).await??;
    tracing::info!(provider = %id, cancelled, "provider deleted");
    Ok(Deleted {
        status: "Deleted",
        provider_id: id,
        cancelled_appointments: cancelled,
    })
}

/// The days a slot query names: one `date`, or `from` and/or `to`.
pub type SlotDates = (Option<Date>, Option<Date>, Option<Date>);

/// The bookable slots of one `date` or of `from`..`to`, each free or booked,
/// in the doctor's time zone (patient ids only for that doctor and admins).
/// A query the surface could not read is reported after the id is checked.
///
/// # Errors
/// 422 for both a date and a range, or a bad range; 404 for an unknown
/// provider.
pub async fn slots(
    state: &AppState,
    principal: &Principal,
    id: &str,
    dates: Result<SlotDates, AppError>,
) -> Result<serde_json::Value, AppError> {
    let id = provider_id(id)?;
    let (date, from, to) = dates?;
    let (from, to) = match (date, from, to) {
        (Some(d), None, None) => (Some(d), Some(d)),
        (None, from, to) => (from, to),
        _ => return Err(AppError::invalid("date", "give either date, or from/to")),
    };
    let viewer = schedule::viewer(state, principal)?;
    let board = schedule::ask(state, &id, GetBoard { from, to }).await??;
    Ok(schedule::board_json(
        &board,
        viewer.manages(&id),
        state.settings.schedule.min_notice_minutes,
    ))
}

/// Issues a display token for a doctor's board (admins, or that doctor).
///
/// # Errors
/// 403 for anyone else, 404 for an unknown provider, 422 for a validity out
/// of range.
pub fn display_token(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: DisplayTokenRequest,
) -> Result<DisplayToken, AppError> {
    let id = managed(state, principal, id, "issue display tokens")?;
    if state.store.get::<ProviderRecord>(id.as_str())?.is_none() {
        return Err(AppError::NotFound(format!("no provider {id}")));
    }
    let hours = body.ttl_hours.unwrap_or(720);
    if !(1..=8760).contains(&hours) {
        return Err(AppError::invalid("ttlHours", "must be 1 to 8760"));
    }
    let issued = state
        .tokens
        .issue_display(&id, i64::from(hours) * 3600)
        .map_err(AppError::internal)?;
    tracing::info!(provider = %id, by = %principal.user_id, hours, "display token issued");
    Ok(DisplayToken {
        token: issued.token,
        provider_id: id,
        expires_at: jiff::Timestamp::from_second(issued.claims.exp).map_err(AppError::internal)?,
    })
}
