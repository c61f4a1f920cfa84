//! Slot holds over HTTP: who may hold or release what. The doctor's
//! `ScheduleActor` decides whether the slot can be held
//! ([`medrelay_actors::schedule::holds`]).

use medrelay_actors::channels::Viewer;
use medrelay_actors::schedule::holds::HoldRecord;
use medrelay_actors::schedule::messages::{Hold, ReleaseHold, ReleaseLapsed};
use medrelay_protocol::schedule::{HoldSlot, SlotHold};
use medrelay_protocol::{ProviderId, Role};

use super::schedule::ask;
use crate::error::AppError;
use crate::state::AppState;

/// Holds a slot: patients for themselves, doctors on their own schedule,
/// admins anywhere (doctors and admins name the patient).
///
/// # Errors
/// 403 for someone else's patient or schedule, 422 naming `patientId` when
/// staff leave it out; the schedule's own errors (`slot_taken`,
/// `slot_held`, 409 for a patient at their limit).
pub async fn hold(
    state: &AppState,
    viewer: &Viewer,
    provider: &ProviderId,
    request: HoldSlot,
) -> Result<SlotHold, AppError> {
    let patient =
        match viewer.role {
            Role::Patient => {
                let own = viewer.patient_id.clone().ok_or_else(|| {
                    AppError::Forbidden("only patients and staff hold slots".into())
                })?;
                if request.patient_id.as_ref().is_some_and(|p| *p != own) {
                    return Err(AppError::Forbidden(
                        "patients hold slots only for themselves".into(),
                    ));
                }
                own
            }
            Role::Doctor if !viewer.manages(provider) => {
                return Err(AppError::Forbidden(
                    "doctors hold slots only on their own schedule".into(),
                ));
            }
            _ => request.patient_id.clone().ok_or_else(|| {
                AppError::invalid("patientId", "name the patient the slot is for")
            })?,
        };
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
