//! Patient operations (seed: healthcare-api section 2, patient-management):
//! registering, reading, changing and listing patients. The REST routes in
//! `http/patients.rs` call these.
//!
//! Who sees what: admins every patient; a doctor the patients in their care
//! (an appointment with them, past or ahead); a patient only themselves,
//! and a patient may change only their own contact details and address.
//! Profiles are sealed at rest and searched through blind indexes
//! ([`medrelay_actors::patients`]). Every access is audited
//! ([`crate::service::audit`]): a write's entry in the write's own batch, a
//! read's entry durable before the read is answered, and every refusal.

mod input;
mod invite;
mod list;
mod remove;

pub use invite::invite;
pub use list::{PatientQuery, list};
pub use remove::{delete, purge_due, restore};

use std::collections::BTreeSet;

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action};
use medrelay_actors::billing;
use medrelay_actors::channels::Viewer;
use medrelay_actors::ids::new_id;
use medrelay_actors::patients::{
    self, PatientError, PatientRecord, Search, StoredPatient, history,
};
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::patient::{
    HistoryVersionView, MedicalHistoryVersions, PatientBody, PatientWritten,
};
use medrelay_protocol::profile::{ContactInfo, MedicalHistory, Patient};
use medrelay_protocol::{Channel, Event, PatientId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::service::schedule::viewer;
use crate::state::AppState;
use input::{apply, name_of};

/// How often a change is retried when another change to the same patient
/// committed between its read and its write.
const RETRIES: usize = 5;

impl From<PatientError> for AppError {
    fn from(e: PatientError) -> Self {
        AppError::internal(e)
    }
}

/// Registers a patient who need not have a login (admins and doctors).
///
/// # Errors
/// 403 for patients; 422 naming the field; 409 with the existing
/// `patientId` for the same name, date of birth and e-mail or phone, unless
/// `allow_duplicate`.
pub async fn register(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    body: PatientBody,
    allow_duplicate: bool,
) -> Result<PatientWritten, AppError> {
    let now = Timestamp::now();
    let patient_id = PatientId::parse(&new_id("pat")).expect("generated ids are valid");
    let about = || {
        entity(
            "Patient",
            Some(patient_id.as_str()),
            vec![patient_id.clone()],
        )
    };
    let this = entry(principal, origin, Action::C, about());
    if let Err(e) = principal.require(&[Role::Admin, Role::Doctor]) {
        let this = entry(
            principal,
            origin,
            Action::C,
            entity("Patient", None, Vec::new()),
        );
        return Err(refused(state, this, e).await);
    }
    let name = name_of(&body)?
        .ok_or_else(|| AppError::invalid("name", "name (or firstName and lastName) is required"))?;
    let mut patient = PatientRecord {
        patient_id: patient_id.clone(),
        user_id: None,
        name,
        dob: None,
        contact_info: ContactInfo::default(),
        address: None,
        medical_history: MedicalHistory::default(),
        created_at: now,
        updated_at: None,
    };
    apply(&mut patient, body, now)?;
    if !allow_duplicate && let Some(existing) = same_person(state, &patient)? {
        return Err(duplicate_refused(state, this, existing).await);
    }
    let mut batch = WriteBatch::new();
    patients::write(&mut batch, &state.vault, None, &patient, !allow_duplicate);
    billing::open_account(&mut batch, &patient_id, now);
    let by = &principal.user_id;
    let medical = &patient.medical_history;
    history::append(
        &mut batch,
        &state.store,
        &state.vault,
        &patient_id,
        by,
        now,
        medical,
    )?;
    audit::record(&mut batch, &this);
    batch.event(
        Channel::Patients,
        Event::PatientRegistered {
            patient_id: patient_id.clone(),
            at: now,
        },
    );
    match state.store.write(batch).await {
        Ok(_) => Ok(PatientWritten {
            patient_id,
            status: "Registered".into(),
        }),
        Err(e) => match patients::duplicate_of(&state.store, &e)? {
            Some(existing) => Err(duplicate_refused(state, this, existing).await),
            None => Err(AppError::internal(e)),
        },
    }
}

/// A registration refused as a duplicate: audited under the existing
/// patient, so that patient's access log shows who learned their id.
async fn duplicate_refused(
    state: &AppState,
    mut this: medrelay_actors::audit::AuditEntry,
    existing: PatientId,
) -> AppError {
    this.entity.resource_id = Some(existing.to_string());
    this.entity.patients = vec![existing.clone()];
    refused(state, this, duplicate(existing)).await
}

/// A patient's profile, for those who may see it.
///
/// A doctor outside the care relationship who states a reason
/// (`X-Access-Reason`) may still open it in an emergency ("break the
/// glass"): allowed, and flagged as an emergency in the audit entry, which
/// the patient sees in their access log.
///
/// # Errors
/// 422 for a malformed id; 403 when the caller may not see it (a patient
/// learns nothing about other ids, not even whether they exist); 404.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
) -> Result<Patient, AppError> {
    let patient_id = super::parse_patient_id(patient_id)?;
    let about = entity(
        "Patient",
        Some(patient_id.as_str()),
        vec![patient_id.clone()],
    );
    let mut this = entry(principal, origin, Action::R, about);
    let viewer = viewer(state, principal)?;
    let mut opened = readable(state, &viewer, &patient_id);
    if matches!(opened, Err(AppError::Forbidden(_)))
        && viewer.role == Role::Doctor
        && let Some(purpose) = this.purpose.as_mut()
    {
        purpose.emergency = true;
        tracing::warn!(patient = %patient_id, user = %principal.user_id, "emergency access to a patient outside the doctor's care");
        opened = stored(state, &patient_id);
    }
    match opened {
        Ok((_, patient)) => {
            durably(state, &this).await?;
            Ok(view(patient))
        }
        Err(e) => Err(refused(state, this, e).await),
    }
}

/// Every version of a patient's medical history, for those who may read
/// the patient (a read, audited like one).
///
/// # Errors
/// As [`get`].
pub async fn history(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
) -> Result<MedicalHistoryVersions, AppError> {
    let patient_id = super::parse_patient_id(patient_id)?;
    let mut about = entity(
        "Patient",
        Some(patient_id.as_str()),
        vec![patient_id.clone()],
    );
    about.detail = Some("medicalHistory versions".into());
    let this = entry(principal, origin, Action::R, about);
    let viewer = viewer(state, principal)?;
    if let Err(e) = readable(state, &viewer, &patient_id) {
        return Err(refused(state, this, e).await);
    }
    let versions = history::list(&state.store, &state.vault, &patient_id, MAX_VERSIONS)?
        .into_iter()
        .map(|(v, medical_history)| HistoryVersionView {
            version: v.version,
            at: v.at,
            by: v.by,
            medical_history,
        })
        .collect();
    durably(state, &this).await?;
    Ok(MedicalHistoryVersions {
        patient_id,
        versions,
    })
}

/// The most versions one history answer lists.
const MAX_VERSIONS: usize = 1000;

/// Changes the fields sent. Patients may change only their own contact
/// details and address; doctors the patients in their care; admins any.
///
/// # Errors
/// As [`get`]; 403 naming a field a patient may not change; 422 naming the
/// field; 409 when other changes kept winning the race.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
    body: PatientBody,
) -> Result<PatientWritten, AppError> {
    let patient_id = super::parse_patient_id(patient_id)?;
    let about = entity(
        "Patient",
        Some(patient_id.as_str()),
        vec![patient_id.clone()],
    );
    let this = entry(principal, origin, Action::U, about);
    match change(state, principal, &this, &patient_id, body).await {
        Err(
            e @ (AppError::Forbidden(_)
            | AppError::NotFound(_)
            | AppError::Gone(_)
            | AppError::Conflict { .. }),
        ) => Err(refused(state, this, e).await),
        other => other,
    }
}

/// [`update`] once its audit entry is made: the change, with the entry in
/// its batch.
async fn change(
    state: &AppState,
    principal: &Principal,
    this: &medrelay_actors::audit::AuditEntry,
    patient_id: &PatientId,
    body: PatientBody,
) -> Result<PatientWritten, AppError> {
    let patient_id = patient_id.clone();
    let viewer = viewer(state, principal)?;
    if viewer.role == Role::Patient {
        let clinical = [
            ("name", body.name.is_some()),
            ("firstName", body.first_name.is_some()),
            ("lastName", body.last_name.is_some()),
            ("dob", body.dob.is_some()),
            ("dateOfBirth", body.date_of_birth.is_some()),
            ("medicalHistory", body.medical_history.is_some()),
        ];
        if let Some((field, _)) = clinical.iter().find(|(_, sent)| *sent) {
            // Checked before reading, so it says nothing about other ids.
            readable(state, &viewer, &patient_id)?;
            return Err(AppError::Forbidden(format!(
                "patients may change only their contact details and address, not {field}"
            )));
        }
    }
    let name = name_of(&body)?;
    for _ in 0..RETRIES {
        let (stored, old) = readable(state, &viewer, &patient_id)?;
        let now = Timestamp::now();
        let mut new = old.clone();
        if let Some(name) = &name {
            new.name = name.clone();
        }
        apply(&mut new, body.clone(), now)?;
        new.updated_at = Some(now);
        let mut batch = WriteBatch::new();
        batch.require_equal(patient_id.as_str(), &stored);
        patients::write(&mut batch, &state.vault, Some(&old), &new, false);
        if old.medical_history != new.medical_history {
            let (by, medical) = (&principal.user_id, &new.medical_history);
            history::append(
                &mut batch,
                &state.store,
                &state.vault,
                &patient_id,
                by,
                now,
                medical,
            )?;
        }
        audit::record(&mut batch, this);
        batch.event(
            Channel::Patients,
            Event::PatientUpdated {
                patient_id: patient_id.clone(),
                fields: changed_fields(&old, &new),
                at: now,
            },
        );
        match state.store.write(batch).await {
            Ok(_) => {
                return Ok(PatientWritten {
                    patient_id,
                    status: "Updated".into(),
                });
            }
            // Another change won the race: read again and re-apply.
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(AppError::Conflict {
        message: "the patient kept changing under this update; try again".into(),
        field: None,
    })
}

/// The patient as stored and opened, if `viewer` may see them.
fn readable(
    state: &AppState,
    viewer: &Viewer,
    patient_id: &PatientId,
) -> Result<(StoredPatient, PatientRecord), AppError> {
    let allowed = viewer.may_see_patient(&state.store, patient_id)?;
    if viewer.role == Role::Patient && !allowed {
        return Err(AppError::Forbidden(
            "patients may read only their own record".into(),
        ));
    }
    let found = stored(state, patient_id)?;
    if !allowed {
        return Err(AppError::Forbidden(
            "this patient is not in your care; a doctor may open the record in an \
             emergency by stating the reason in X-Access-Reason"
                .into(),
        ));
    }
    Ok(found)
}

/// The patient as stored and opened, whoever asks.
fn stored(
    state: &AppState,
    patient_id: &PatientId,
) -> Result<(StoredPatient, PatientRecord), AppError> {
    let stored = state
        .store
        .get::<StoredPatient>(patient_id.as_str())?
        .ok_or_else(|| AppError::NotFound(format!("no patient {patient_id}")))?;
    if stored.deleted_at.is_some() {
        return Err(AppError::Gone(format!("patient {patient_id} was deleted")));
    }
    let patient = patients::open(&state.vault, stored.clone()).map_err(AppError::internal)?;
    Ok((stored, patient))
}

/// The names of the profile fields that differ (never their values).
fn changed_fields(old: &PatientRecord, new: &PatientRecord) -> Vec<String> {
    [
        ("name", old.name != new.name),
        ("dob", old.dob != new.dob),
        ("contactInfo", old.contact_info != new.contact_info),
        ("address", old.address != new.address),
        ("medicalHistory", old.medical_history != new.medical_history),
    ]
    .into_iter()
    .filter(|(_, differs)| *differs)
    .map(|(field, _)| field.to_owned())
    .collect()
}

/// A registered patient that is the same person: same name and date of
/// birth, and the same e-mail or phone.
fn same_person(state: &AppState, p: &PatientRecord) -> Result<Option<PatientId>, AppError> {
    let Some(dob) = p.dob else {
        return Ok(None);
    };
    let by_dob: BTreeSet<PatientId> =
        patients::find(&state.store, &state.vault, Search::Dob(dob), None, 1000)?
            .into_iter()
            .collect();
    for id in patients::find(
        &state.store,
        &state.vault,
        Search::Name(&p.name),
        None,
        1000,
    )? {
        if !by_dob.contains(&id) {
            continue;
        }
        if let Some(other) = patients::load(&state.store, &state.vault, &id)? {
            let email = |c: &ContactInfo| c.email.as_ref().map(|e| e.as_str().to_lowercase());
            let same_email = email(&p.contact_info).is_some()
                && email(&p.contact_info) == email(&other.contact_info);
            let same_phone =
                p.contact_info.phone.is_some() && p.contact_info.phone == other.contact_info.phone;
            if same_email || same_phone {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

fn duplicate(existing: PatientId) -> AppError {
    AppError::Duplicate {
        message: format!(
            "patient {existing} has the same name, date of birth and e-mail or phone; \
             send ?allowDuplicate=true to register another"
        ),
        existing_id: existing.to_string(),
    }
}

fn view(p: PatientRecord) -> Patient {
    Patient {
        patient_id: p.patient_id,
        name: p.name,
        dob: p.dob,
        contact_info: p.contact_info,
        medical_history: p.medical_history,
        address: p.address,
    }
}
