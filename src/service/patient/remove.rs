//! Deleting a patient is a policy, not a `DELETE FROM`: the patient is
//! hidden at once (reads answer 410), their future appointments are
//! cancelled like any cancellation (boards, notices, reminders), their
//! sessions end; the sealed data stays for `records.retention_days`, during
//! which an admin may restore it, and then [`purge_due`] removes it for
//! good. Audit entries (which hold no patient data) stay.

use jiff::{SignedDuration, Timestamp};
use medrelay_actors::accounts;
use medrelay_actors::audit::{self, Action};
use medrelay_actors::channels::Viewer;
use medrelay_actors::medical;
use medrelay_actors::patients::{self, StoredPatient};
use medrelay_actors::schedule::{AppointmentRecord, PatientAppointment, indexed_ids};
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::patient::PatientWritten;
use medrelay_protocol::schedule::AppointmentStatus;
use medrelay_protocol::{Channel, Event, PatientId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, entity, entry, refused};
use crate::state::AppState;

/// Deletes a patient (admins).
///
/// # Errors
/// 403 for others; 404; 410 when already deleted.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
    now: Timestamp,
) -> Result<PatientWritten, AppError> {
    let patient_id = crate::service::parse_patient_id(patient_id)?;
    let this = entry(principal, origin, Action::D, about(&patient_id));
    let stored = match admin_and_stored(state, principal, &patient_id) {
        Ok(stored) if stored.deleted_at.is_some() => {
            let e = AppError::Gone(format!("patient {patient_id} was deleted"));
            return Err(refused(state, this, e).await);
        }
        Ok(stored) => stored,
        Err(e) => return Err(refused(state, this, e).await),
    };
    let hidden = StoredPatient {
        deleted_at: Some(now),
        ..stored.clone()
    };
    let mut batch = WriteBatch::new();
    batch.require_equal(patient_id.as_str(), &stored);
    batch.put(patient_id.as_str(), &hidden);
    audit::record(&mut batch, &this);
    batch.event(
        Channel::Patients,
        Event::PatientDeleted {
            patient_id: patient_id.clone(),
            at: now,
        },
    );
    match state.store.write(batch).await {
        Ok(_) => {}
        Err(WriteError::Changed { .. }) => {
            return Err(AppError::Conflict {
                message: "the patient changed meanwhile; try again".into(),
                field: None,
            });
        }
        Err(e) => return Err(AppError::internal(e)),
    }
    tracing::info!(patient = %patient_id, "patient deleted; cancelling what is ahead");
    // What follows is also redone by every sweep, so a crash here loses nothing.
    settle(state, &hidden, now).await;
    Ok(PatientWritten {
        patient_id,
        status: "Deleted".into(),
    })
}

/// Restores a deleted patient within the retention (admins). Cancelled
/// appointments stay cancelled.
///
/// # Errors
/// 403; 404 (never existed, or purged); 409 when not deleted.
pub async fn restore(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
) -> Result<PatientWritten, AppError> {
    let patient_id = crate::service::parse_patient_id(patient_id)?;
    let mut this = entry(principal, origin, Action::U, about(&patient_id));
    this.entity.detail = Some("restore".into());
    let stored = match admin_and_stored(state, principal, &patient_id) {
        Ok(stored) => stored,
        Err(e) => return Err(refused(state, this, e).await),
    };
    if stored.deleted_at.is_none() {
        let e = AppError::Conflict {
            message: format!("patient {patient_id} is not deleted"),
            field: None,
        };
        return Err(refused(state, this, e).await);
    }
    let mut batch = WriteBatch::new();
    batch.require_equal(patient_id.as_str(), &stored);
    batch.put(
        patient_id.as_str(),
        &StoredPatient {
            deleted_at: None,
            ..stored
        },
    );
    audit::record(&mut batch, &this);
    batch.event(
        Channel::Patients,
        Event::PatientUpdated {
            patient_id: patient_id.clone(),
            fields: vec!["restored".into()],
            at: Timestamp::now(),
        },
    );
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok(PatientWritten {
        patient_id,
        status: "Restored".into(),
    })
}

fn about(id: &PatientId) -> medrelay_actors::audit::Entity {
    entity("Patient", Some(id.as_str()), vec![id.clone()])
}

fn admin_and_stored(
    state: &AppState,
    principal: &Principal,
    patient_id: &PatientId,
) -> Result<StoredPatient, AppError> {
    principal.require(&[Role::Admin])?;
    state
        .store
        .get::<StoredPatient>(patient_id.as_str())?
        .ok_or_else(|| AppError::NotFound(format!("no patient {patient_id}")))
}

/// What deleting a patient does beyond hiding them, done again safely by
/// every sweep: cancels their appointments still ahead and ends their
/// sessions. Failures are logged; the next sweep retries.
async fn settle(state: &AppState, patient: &StoredPatient, now: Timestamp) {
    let id = &patient.patient_id;
    let clinic = Viewer {
        user_id: medrelay_protocol::UserId::parse("system").expect("a valid id"),
        role: Role::Admin,
        patient_id: None,
        provider_id: None,
    };
    let ahead = match indexed_ids::<PatientAppointment>(&state.store, id.as_str(), usize::MAX) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(patient = %id, error = %e, "could not list a deleted patient's appointments");
            return;
        }
    };
    for apt in ahead {
        let record = state.store.get::<AppointmentRecord>(apt.as_str());
        let Ok(Some(record)) = record else { continue };
        if record.status != AppointmentStatus::Scheduled || record.slot.start <= now {
            continue;
        }
        match crate::service::schedule::cancel(state, &clinic, &apt).await {
            Ok(_) => {
                tracing::info!(patient = %id, appointment = %apt, "cancelled: its patient was deleted")
            }
            Err(e) => {
                tracing::warn!(patient = %id, appointment = %apt, error = %e, "could not cancel a deleted patient's appointment")
            }
        }
    }
    if let Some(user) = &patient.user_id {
        match accounts::end_all_sessions(&state.store, &state.revocations, user).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(patient = %id, sessions = n, "ended a deleted patient's sessions")
            }
            Err(e) => {
                tracing::warn!(patient = %id, error = %e, "could not end a deleted patient's sessions")
            }
        }
    }
}

/// One sweep: settles every deleted patient and purges those deleted more
/// than `retention` before `now`. Returns how many it purged.
///
/// # Errors
/// 500 on a read or write failure.
pub async fn purge_due(
    state: &AppState,
    now: Timestamp,
    retention: SignedDuration,
) -> Result<usize, AppError> {
    let mut after: Option<String> = None;
    let mut purged = 0;
    loop {
        let page = state.store.scan::<StoredPatient>(after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else {
            return Ok(purged);
        };
        after = Some(last.clone());
        for (_, stored) in page {
            let Some(deleted) = stored.deleted_at else {
                continue;
            };
            if deleted
                .checked_add(retention)
                .is_ok_and(|until| until > now)
            {
                settle(state, &stored, now).await;
                continue;
            }
            let plain = patients::open(&state.vault, stored).map_err(AppError::internal)?;
            let mut batch = WriteBatch::new();
            for record in medical::of_patient(&state.store, &plain.patient_id, usize::MAX)? {
                medical::erase(&mut batch, &state.store, &plain.patient_id, &record)?;
            }
            patients::erase(&mut batch, &state.store, &state.vault, &plain)?;
            state.store.write(batch).await.map_err(AppError::internal)?;
            tracing::info!(patient = %plain.patient_id, "purged a deleted patient's data after the retention");
            purged += 1;
        }
    }
}
