//! Demo traffic (`--demo-traffic`): every one to three seconds, one change on
//! a random doctor's week, made by the patient it belongs to through the
//! public API: a booking, a move or a cancellation. Bookings and
//! cancellations balance each other around half-full boards. Refusals (a
//! slot taken meanwhile, a patient busy at that time) are part of the show
//! and skipped; the loop ends quietly when the server is gone.
//!
//! The log names doctors, appointments and times, never patients.

use serde_json::{Value, json};

use super::client::{Api, ApiError, Slot};
use super::random::Rng;
use super::seed::{Clinic, Doctor, Patient};
use super::session::Session;

/// The pause between two changes, in milliseconds.
const PAUSE_MS: (u64, u64) = (1_000, 3_000);
/// Share of changes that move an appointment (when there is one to move);
/// the others book or cancel, cancelling with the chance of the board's fill.
const MOVE_SHARE: f64 = 0.3;

/// Runs until the server is unreachable (the caller also drops it when the
/// server stops).
pub(crate) async fn run(api: &Api, clinic: Clinic, rng: &mut Rng) {
    let Clinic {
        mut admin,
        doctors,
        mut patients,
        ..
    } = clinic;
    tracing::info!(
        every_ms = ?PAUSE_MS,
        "demo traffic: booking, moving and cancelling appointments"
    );
    loop {
        tokio::time::sleep(rng.pause(PAUSE_MS.0, PAUSE_MS.1)).await;
        let Some(doctor) = doctors.get(rng.below(doctors.len())) else {
            return;
        };
        match change(api, &mut admin, doctor, &mut patients, rng).await {
            Ok(()) => {}
            Err(e) if e.is_unreachable() => {
                tracing::info!("demo traffic: the server is gone; stopping");
                return;
            }
            Err(e) if e.is_transport() => {
                // A broken connection: the server may be shutting down (then
                // the next change finds it unreachable), or it was a blip.
                tracing::debug!(error = %e, "demo traffic: a change was cut off");
            }
            Err(e) => {
                if e.is_unauthorized() {
                    admin.expire();
                    for patient in &mut patients {
                        patient.session.expire();
                    }
                }
                tracing::warn!(error = %e, "demo traffic: a change failed; carrying on");
            }
        }
    }
}

/// One change on `doctor`'s week.
async fn change(
    api: &Api,
    admin: &mut Session,
    doctor: &Doctor,
    patients: &mut [Patient],
    rng: &mut Rng,
) -> Result<(), ApiError> {
    let token = admin.token(api).await?;
    let slots = api
        .upcoming_slots(token, &doctor.provider_id, &doctor.zone)
        .await?;
    let free: Vec<&Slot> = slots.iter().filter(|s| s.is_free()).collect();
    let booked = slots.iter().filter(|s| s.is_booked()).count();
    // Only the demo's own patients' appointments move or go: one a visitor
    // booked in the app stays as they left it.
    let ours: Vec<(&Slot, usize, &str)> = slots
        .iter()
        .filter(|s| s.is_booked())
        .filter_map(|s| {
            let id = s.appointment_id.as_deref()?;
            let owner = s.patient_id.as_deref()?;
            let index = patients.iter().position(|p| p.patient_id == owner)?;
            Some((s, index, id))
        })
        .collect();
    let fill = booked as f64 / (booked + free.len()).max(1) as f64;
    let provider = doctor.provider_id.as_str();

    if rng.chance(MOVE_SHARE) && !ours.is_empty() && !free.is_empty() {
        let (Some(&(from, owner, id)), Some(&to)) = (
            ours.get(rng.below(ours.len())),
            free.get(rng.below(free.len())),
        ) else {
            return Ok(());
        };
        let Some(patient) = patients.get_mut(owner) else {
            return Ok(());
        };
        return move_one(api, patient, provider, id, from, to).await;
    }
    if rng.chance(fill) && !ours.is_empty() {
        let Some(&(slot, owner, id)) = ours.get(rng.below(ours.len())) else {
            return Ok(());
        };
        let Some(patient) = patients.get_mut(owner) else {
            return Ok(());
        };
        return cancel_one(api, patient, provider, id, slot).await;
    }
    let Some(&slot) = free.get(rng.below(free.len())) else {
        return Ok(());
    };
    let count = patients.len();
    let Some(patient) = patients.get_mut(rng.below(count)) else {
        return Ok(());
    };
    book_one(api, patient, provider, slot).await
}

/// `patient` books `slot` for themselves.
async fn book_one(
    api: &Api,
    patient: &mut Patient,
    provider: &str,
    slot: &Slot,
) -> Result<(), ApiError> {
    let token = patient.session.token(api).await?;
    match api.book(token, &patient.patient_id, provider, slot).await {
        Ok(id) => {
            tracing::info!(
                provider = %provider, appointment = %id,
                date = %slot.date, time = %slot.time_slot,
                "demo traffic: booked an appointment"
            );
            Ok(())
        }
        Err(e) => tolerate(e, "book"),
    }
}

/// `patient` moves their appointment `id` from `from` to `to`.
async fn move_one(
    api: &Api,
    patient: &mut Patient,
    provider: &str,
    id: &str,
    from: &Slot,
    to: &Slot,
) -> Result<(), ApiError> {
    let token = patient.session.token(api).await?;
    let body =
        json!({"appointmentDate": to.date, "timeSlot": to.time_slot, "status": "Rescheduled"});
    let moved: Result<Value, ApiError> = api
        .put(&format!("/api/appointments/{id}"), token, &body)
        .await;
    match moved {
        Ok(_) => {
            tracing::info!(
                provider = %provider, appointment = %id,
                from_date = %from.date, from_time = %from.time_slot,
                date = %to.date, time = %to.time_slot,
                "demo traffic: moved an appointment"
            );
            Ok(())
        }
        Err(e) => tolerate(e, "move"),
    }
}

/// `patient` cancels their appointment `id` (in `slot`).
async fn cancel_one(
    api: &Api,
    patient: &mut Patient,
    provider: &str,
    id: &str,
    slot: &Slot,
) -> Result<(), ApiError> {
    let token = patient.session.token(api).await?;
    let cancelled: Result<Value, ApiError> =
        api.delete(&format!("/api/appointments/{id}"), token).await;
    match cancelled {
        Ok(_) => {
            tracing::info!(
                provider = %provider, appointment = %id,
                date = %slot.date, time = %slot.time_slot,
                "demo traffic: cancelled an appointment"
            );
            Ok(())
        }
        Err(e) => tolerate(e, "cancel"),
    }
}

/// A refusal by the rules is logged and skipped; anything else is returned.
fn tolerate(e: ApiError, action: &str) -> Result<(), ApiError> {
    match e.refusal() {
        Some(code) => {
            tracing::debug!(action = %action, code = %code, "demo traffic: refused; carrying on");
            Ok(())
        }
        None => Err(e),
    }
}
