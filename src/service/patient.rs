//! Patient operations. Today one: reading a patient's record (seed
//! section 2); registering, updating, listing and removing patients come
//! with the patients issue. The REST route in `http/directory.rs` calls it.

use medrelay_actors::accounts::PatientRecord;
use medrelay_protocol::profile::Patient;
use medrelay_protocol::{PatientId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// A patient's record: patients read only their own; doctors and admins any.
///
/// # Errors
/// 422 for a malformed id; 403 for a patient asking for anyone else's
/// (whether or not it exists); 404 for an unknown one.
pub fn get(state: &AppState, principal: &Principal, patient_id: &str) -> Result<Patient, AppError> {
    let patient_id = PatientId::parse(patient_id).map_err(|e| AppError::invalid("patientId", e))?;
    let record = state.store.get::<PatientRecord>(patient_id.as_str())?;
    let owned = record
        .as_ref()
        .is_some_and(|r| r.user_id.as_ref() == Some(&principal.user_id));
    // A patient learns nothing about other ids, not even whether they exist.
    if principal.role == Role::Patient && !owned {
        return Err(AppError::Forbidden(
            "patients may read only their own record".into(),
        ));
    }
    let record = record.ok_or_else(|| AppError::NotFound(format!("no patient {patient_id}")))?;
    Ok(Patient {
        patient_id: record.patient_id,
        name: record.name,
        dob: record.dob,
        contact_info: record.contact_info,
        medical_history: record.medical_history,
    })
}
