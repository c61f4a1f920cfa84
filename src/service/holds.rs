//! Slot holds and waitlists over HTTP: who may hold, release, join or
//! leave what. The doctor's `ScheduleActor` decides the rest
//! ([`medrelay_actors::schedule::holds`], [`medrelay_actors::schedule::waitlist`]).

use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::channels::Viewer;
use medrelay_actors::schedule::holds::HoldRecord;
use medrelay_actors::schedule::messages::{
    Hold, JoinWaitlist as Join, LeaveWaitlist, ReleaseHold, ReleaseLapsed,
};
use medrelay_actors::schedule::waitlist::{self, WaitlistEntry};
use medrelay_protocol::hold::{HoldSlot, SlotHold};
use medrelay_protocol::waitlist::{JoinWaitlist, WaitlistEntryView, WaitlistView};
use medrelay_protocol::{PatientId, ProviderId, Role};

use super::schedule::ask;
use crate::error::AppError;
use crate::state::AppState;

/// The patient a hold or waitlist entry is for: a patient's own, or the
/// one staff of that schedule name.
///
/// # Errors
/// 403 for someone else's patient or schedule (or a display), 422 naming
/// `patientId` when staff leave it out.
fn patient_for(
    viewer: &Viewer,
    provider: &ProviderId,
    named: Option<&PatientId>,
) -> Result<PatientId, AppError> {
    match viewer.role {
        Role::Patient => {
            let own = viewer
                .patient_id
                .clone()
                .ok_or_else(|| AppError::Forbidden("only patients and staff may".into()))?;
            if named.is_some_and(|p| *p != own) {
                return Err(AppError::Forbidden(
                    "patients act only for themselves".into(),
                ));
            }
            Ok(own)
        }
        _ if !viewer.manages(provider) => Err(AppError::Forbidden(
            "doctors act only on their own schedule".into(),
        )),
        _ => named
            .cloned()
            .ok_or_else(|| AppError::invalid("patientId", "name the patient it is for")),
    }
}

/// Holds a slot: patients for themselves, doctors on their own schedule,
/// admins anywhere (doctors and admins name the patient).
///
/// # Errors
/// 403 for someone else's patient or schedule, 422 naming `patientId`
/// when staff leave it out; the schedule's own errors (`slot_taken`,
/// `slot_held`, 409 for a patient at their limit).
pub async fn hold(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
    request: HoldSlot,
) -> Result<SlotHold, AppError> {
    let patient = patient_for(viewer, provider, request.patient_id.as_ref())?;
    let message = Hold {
        patient_id: patient,
        request,
        by: Some(viewer.user_id.clone()),
    };
    let record = ask(state, provider, message).await??;
    tracing::info!(provider = %provider, hold = %record.hold_id, "slot held");
    Ok(view(record))
}

/// Ends a hold before its time: its patient, the doctor, an admin.
///
/// # Errors
/// 404 for an unknown (or already ended) hold, 403 for someone else's.
pub async fn release(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
    hold_id: &str,
) -> Result<(), AppError> {
    let key = format!("{provider}/{hold_id}");
    let record = state
        .store
        .get::<HoldRecord>(&key)?
        .ok_or_else(|| AppError::NotFound(format!("no hold {hold_id}")))?;
    let allowed = match viewer.role {
        Role::Patient => viewer.patient_id.as_ref() == Some(&record.patient_id),
        _ => viewer.manages(provider),
    };
    if !allowed {
        return Err(AppError::Forbidden("that hold is not yours".into()));
    }
    let message = ReleaseHold {
        hold_id: hold_id.to_owned(),
    };
    ask(state, provider, message).await??;
    tracing::info!(provider = %provider, hold = %hold_id, "slot hold released");
    Ok(())
}

/// Puts a patient on a doctor's waitlist (who may: as [`hold`]).
///
/// # Errors
/// As [`hold`]; 422 naming the field for a bad range or times, or
/// a patient or waitlist at its limit; 404 for an unknown patient.
pub async fn join(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
    request: JoinWaitlist,
) -> Result<WaitlistEntryView, AppError> {
    let patient = patient_for(viewer, provider, request.patient_id.as_ref())?;
    let message = Join {
        patient_id: patient,
        request,
        by: Some(viewer.user_id.clone()),
    };
    let entry = ask(state, provider, message).await??;
    tracing::info!(provider = %provider, entry = %entry.entry_id, "joined the waitlist");
    Ok(entry_view(entry))
}

/// A doctor's waitlist in the order offers follow: all of it for that
/// doctor and admins, their own entries for a patient.
///
/// # Errors
/// 403 for a display or another doctor; 404 for an unknown provider.
pub fn list(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
) -> Result<WaitlistView, AppError> {
    if state
        .store
        .get::<ProviderRecord>(provider.as_str())?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no provider {provider}")));
    }
    let own =
        match viewer.role {
            Role::Patient => Some(viewer.patient_id.clone().ok_or_else(|| {
                AppError::Forbidden("only patients and staff see waitlists".into())
            })?),
            _ if viewer.manages(provider) => None,
            _ => return Err(AppError::Forbidden("not your schedule".into())),
        };
    let entries = waitlist::load(&state.store, provider.as_str())?
        .into_iter()
        .filter(|e| own.as_ref().is_none_or(|p| *p == e.patient_id))
        .map(entry_view)
        .collect();
    Ok(WaitlistView { entries })
}

/// Takes an entry off a waitlist: its patient, the doctor, an admin.
///
/// # Errors
/// 404 for an unknown entry, 403 for someone else's.
pub async fn leave(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
    entry_id: &str,
) -> Result<(), AppError> {
    let entry = state
        .store
        .get::<WaitlistEntry>(&format!("{provider}/{entry_id}"))?
        .ok_or_else(|| AppError::NotFound(format!("no waitlist entry {entry_id}")))?;
    let allowed = match viewer.role {
        Role::Patient => viewer.patient_id.as_ref() == Some(&entry.patient_id),
        _ => viewer.manages(provider),
    };
    if !allowed {
        return Err(AppError::Forbidden("that entry is not yours".into()));
    }
    let message = LeaveWaitlist {
        entry_id: entry_id.to_owned(),
    };
    ask(state, provider, message).await??;
    tracing::info!(provider = %provider, entry = %entry_id, "left the waitlist");
    Ok(())
}

fn entry_view(e: WaitlistEntry) -> WaitlistEntryView {
    WaitlistEntryView {
        entry_id: e.entry_id,
        provider_id: e.provider_id,
        patient_id: e.patient_id,
        from: e.from,
        to: e.to,
        times: e.times,
        created_at: e.created_at,
    }
}

/// At start: the doctors with holds left by the last run release those
/// whose time ran out (and, loaded, keep the others until theirs does).
pub async fn release_lapsed_at_start(state: &AppState) {
    // Holds last minutes, so few are ever left: one read of them all.
    let providers: std::collections::BTreeSet<ProviderId> =
        match state.store.scan::<HoldRecord>(None, 100_000) {
            Ok(holds) => holds.into_iter().map(|(_, h)| h.provider_id).collect(),
            Err(e) => {
                tracing::error!(error = %e, "could not read the slot holds left by the last run");
                return;
            }
        };
    for provider in providers {
        if let Err(e) = ask(state, &provider, ReleaseLapsed)
            .await
            .and_then(|r| Ok(r?))
        {
            tracing::warn!(provider = %provider, error = %e, "could not release lapsed slot holds");
        }
    }
}

/// A hold as the API shows it.
pub fn view(record: HoldRecord) -> SlotHold {
    SlotHold {
        hold_id: record.hold_id,
        provider_id: record.provider_id,
        patient_id: record.patient_id,
        slot: record.slot,
        expires_at: record.expires_at,
    }
}
