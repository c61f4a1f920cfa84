//! Medical records (seed: healthcare-api section 4): written by doctors for
//! the patients in their care, changed or deleted by their author or an
//! admin, read by the patient, their doctors and admins (a doctor outside
//! the care relationship only by breaking the glass). Every access is
//! audited like a patient profile's; records are sealed at rest
//! ([`medrelay_actors::medical`]).

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action, AuditEntry};
use medrelay_actors::ids::new_id;
use medrelay_actors::medical::{self, Change, MedicalRecord};
use medrelay_actors::patients;
use medrelay_actors::store::{WriteBatch, WriteError};
use medrelay_protocol::event::RecordChange;
use medrelay_protocol::record::{
    RecordBody, RecordHistory, RecordList, RecordView, RecordWritten, VersionView,
};
use medrelay_protocol::{Channel, Event, PatientId, RecordId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
use crate::service::schedule::viewer;
use crate::state::AppState;

const MAX_DIAGNOSIS: usize = 2000;
const MAX_TREATMENT: usize = 4000;
const MAX_PRESCRIPTIONS: usize = 50;
const MAX_PRESCRIPTION: usize = 200;
const MAX_PAGE: usize = 100;
const MAX_VERSIONS: usize = 1000;
const RETRIES: usize = 5;

fn record_id(raw: &str) -> Result<RecordId, AppError> {
    RecordId::parse(raw).map_err(|e| AppError::invalid("recordId", e))
}

/// The entry of an attempt on record `id` (its patient filled in once known).
fn attempt(principal: &Principal, origin: &Origin, action: Action, id: &RecordId) -> AuditEntry {
    let about = entity("MedicalRecord", Some(id.as_str()), Vec::new());
    entry(principal, origin, action, about)
}

/// Writes a record (doctors, for the patients in their care).
///
/// # Errors
/// 403 for anyone else; 422 naming the field (an unknown patient is
/// `patientId`); 409 for a `recordId` in use.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    body: RecordBody,
) -> Result<RecordWritten, AppError> {
    let id = match &body.record_id {
        Some(id) => id.clone(),
        None => RecordId::parse(&new_id("rec")).expect("generated ids are valid"),
    };
    let mut this = attempt(principal, origin, Action::C, &id);
    this.entity.patients.extend(body.patient_id.clone());
    let patient_id = body
        .patient_id
        .clone()
        .ok_or_else(|| AppError::invalid("patientId", "patientId is required"))?;
    let viewer = viewer(state, principal)?;
    if viewer.role != Role::Doctor {
        let e = AppError::Forbidden("only doctors write medical records".into());
        return Err(refused(state, this, e).await);
    }
    if !patients::is_live(&state.store, &patient_id)? {
        let e = AppError::invalid("patientId", format!("no patient {patient_id}"));
        return Err(refused(state, this, e).await);
    }
    if !viewer.may_see_patient(&state.store, &patient_id)? {
        let e =
            AppError::Forbidden("doctors write records only for the patients in their care".into());
        return Err(refused(state, this, e).await);
    }
    let now = Timestamp::now();
    let record = MedicalRecord {
        record_id: id.clone(),
        patient_id,
        author: principal.user_id.clone(),
        date: body
            .date
            .ok_or_else(|| AppError::invalid("date", "date is required"))?,
        diagnosis: String::new(),
        treatment: String::new(),
        prescriptions: Vec::new(),
        created_at: now,
        updated_at: None,
        deleted_at: None,
        version: 1,
    };
    let mut record = record;
    if body.diagnosis.is_none() {
        return Err(AppError::invalid("diagnosis", "diagnosis is required"));
    }
    let changed = apply(&mut record, body, now)?;
    this.entity.detail = Some(changed.join(","));
    let mut batch = WriteBatch::new();
    announce(&mut batch, &record, Change::Created, &changed, now);
    medical::write(
        &mut batch,
        (&state.vault, state.store.stats_zone()),
        &record,
        &principal.user_id,
        Change::Created,
        changed,
    );
    audit::record(&mut batch, &this);
    match state.store.write(batch).await {
        Ok(_) => Ok(RecordWritten {
            record_id: id,
            status: "Created".into(),
        }),
        Err(WriteError::Exists { .. }) => Err(AppError::Conflict {
            message: format!("record {id} exists"),
            field: Some("recordId".into()),
        }),
        Err(e) => Err(AppError::internal(e)),
    }
}

/// A record, for the patient, their doctors and admins; a doctor outside
/// the care relationship by stating `X-Access-Reason` (audited as an
/// emergency).
///
/// # Errors
/// 403, 404, 410 for a deleted record.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<RecordView, AppError> {
    let id = record_id(raw_id)?;
    let mut this = attempt(principal, origin, Action::R, &id);
    match readable(state, principal, &mut this, &id) {
        Ok(record) if record.deleted_at.is_some() => Err(refused(
            state,
            this,
            AppError::Gone(format!("record {id} was deleted")),
        )
        .await),
        Ok(record) => {
            durably(state, &this).await?;
            Ok(view(record))
        }
        Err(e) => Err(refused(state, this, e).await),
    }
}

/// A record's versions: who changed which fields, when.
///
/// # Errors
/// As [`get`], without the 410: a deleted record's history stays readable.
pub async fn history(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<RecordHistory, AppError> {
    let id = record_id(raw_id)?;
    let mut this = attempt(principal, origin, Action::R, &id);
    this.entity.detail = Some("history".into());
    if let Err(e) = readable(state, principal, &mut this, &id) {
        return Err(refused(state, this, e).await);
    }
    let versions = medical::history(&state.store, &id, MAX_VERSIONS)?
        .into_iter()
        .map(|v| VersionView {
            version: v.version,
            at: v.at,
            by: v.by,
            change: v.change.as_str().to_owned(),
            changed: v.changed,
        })
        .collect();
    durably(state, &this).await?;
    Ok(RecordHistory {
        record_id: id,
        versions,
    })
}

/// Changes the fields sent (the author or an admin); a new version.
///
/// # Errors
/// 403, 404, 410, 422 naming the field.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
    body: RecordBody,
) -> Result<RecordWritten, AppError> {
    let id = record_id(raw_id)?;
    let this = attempt(principal, origin, Action::U, &id);
    if body.record_id.as_ref().is_some_and(|r| *r != id) {
        return Err(AppError::invalid(
            "recordId",
            "a record's id does not change",
        ));
    }
    change(state, principal, this, &id, Some(body)).await
}

/// Deletes a record (the author or an admin): a tombstone that keeps its
/// history; reads answer 410 afterwards.
///
/// # Errors
/// 403, 404, 410 when already deleted.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_id: &str,
) -> Result<RecordWritten, AppError> {
    let id = record_id(raw_id)?;
    let this = attempt(principal, origin, Action::D, &id);
    change(state, principal, this, &id, None).await
}

/// An update (`Some(body)`) or a deletion (`None`) by compare-and-swap,
/// with its audit entry in the same batch; refusals audited.
async fn change(
    state: &AppState,
    principal: &Principal,
    mut this: AuditEntry,
    id: &RecordId,
    body: Option<RecordBody>,
) -> Result<RecordWritten, AppError> {
    let role = viewer(state, principal)?.role;
    for _ in 0..RETRIES {
        let found = medical::load(&state.store, &state.vault, id).map_err(AppError::internal)?;
        let Some((stored, old)) = found else {
            return Err(refused(state, this, AppError::NotFound(format!("no record {id}"))).await);
        };
        this.entity.patients = vec![old.patient_id.clone()];
        if role != Role::Admin && old.author != principal.user_id {
            let e = AppError::Forbidden("only the record's author or an admin changes it".into());
            return Err(refused(state, this, e).await);
        }
        if old.deleted_at.is_some() || !patients::is_live(&state.store, &old.patient_id)? {
            let e = AppError::Gone(format!("record {id} or its patient was deleted"));
            return Err(refused(state, this, e).await);
        }
        let now = Timestamp::now();
        let mut new = old.clone();
        new.version += 1;
        new.updated_at = Some(now);
        let (kind, changed, status) = match &body {
            Some(body) => {
                if body
                    .patient_id
                    .as_ref()
                    .is_some_and(|p| *p != old.patient_id)
                {
                    return Err(AppError::invalid(
                        "patientId",
                        "a record's patient does not change",
                    ));
                }
                (
                    Change::Updated,
                    apply(&mut new, body.clone(), now)?,
                    "Updated",
                )
            }
            None => {
                new.deleted_at = Some(now);
                (Change::Deleted, Vec::new(), "Deleted")
            }
        };
        this.entity.detail = (!changed.is_empty()).then(|| changed.join(","));
        let mut batch = WriteBatch::new();
        batch.require_equal(id.as_str(), &stored);
        announce(&mut batch, &new, kind, &changed, now);
        medical::write(
            &mut batch,
            (&state.vault, state.store.stats_zone()),
            &new,
            &principal.user_id,
            kind,
            changed,
        );
        audit::record(&mut batch, &this);
        match state.store.write(batch).await {
            Ok(_) => {
                return Ok(RecordWritten {
                    record_id: id.clone(),
                    status: status.into(),
                });
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(AppError::internal(e)),
        }
    }
    Err(AppError::Conflict {
        message: "the record kept changing under this change; try again".into(),
        field: None,
    })
}

/// Tells the staff channel (and, through the outbox, JetStream) that a
/// record changed: ids and field names, never values.
fn announce(
    batch: &mut WriteBatch,
    record: &MedicalRecord,
    change: Change,
    fields: &[String],
    at: Timestamp,
) {
    let what = RecordChange {
        record_id: record.record_id.clone(),
        patient_id: record.patient_id.clone(),
        fields: fields.to_vec(),
        at,
    };
    let event = match change {
        Change::Created => Event::RecordCreated(what),
        Change::Updated => Event::RecordUpdated(what),
        Change::Deleted => Event::RecordDeleted(what),
    };
    batch.event(Channel::Patients, event);
}

/// The filters of `GET /api/records`.
#[derive(Debug, Default)]
pub struct RecordQuery {
    /// Whose records (patients: their own, the default).
    pub patient_id: Option<PatientId>,
    /// Encounters on or after.
    pub from: Option<jiff::civil::Date>,
    /// Encounters on or before.
    pub to: Option<jiff::civil::Date>,
    /// Records whose id sorts after this one.
    pub after: Option<RecordId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// A patient's records (not deleted), by id.
///
/// # Errors
/// 422 without `patientId` for staff or for a bad limit; 403 when the
/// caller may not see that patient.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    q: RecordQuery,
) -> Result<RecordList, AppError> {
    let limit = crate::service::page_size(q.limit, MAX_PAGE, MAX_PAGE)?;
    let viewer = viewer(state, principal)?;
    let patient = match (q.patient_id, &viewer.patient_id) {
        (Some(p), _) => p,
        (None, Some(own)) if viewer.role == Role::Patient => own.clone(),
        (None, _) => return Err(AppError::invalid("patientId", "patientId is required")),
    };
    let mut this = entry(
        principal,
        origin,
        Action::E,
        entity("MedicalRecord", None, vec![patient.clone()]),
    );
    this.entity.detail = Some("list".into());
    if !viewer.may_see_patient(&state.store, &patient)? {
        let e = AppError::Forbidden("those records are not yours to see".into());
        return Err(refused(state, this, e).await);
    }
    if !patients::is_live(&state.store, &patient)? {
        let e = AppError::Gone(format!("patient {patient} was deleted"));
        return Err(refused(state, this, e).await);
    }
    let mut ids = medical::of_patient(&state.store, &patient, usize::MAX)?;
    if let Some(after) = &q.after {
        ids.retain(|id| id > after);
    }
    let mut records = Vec::new();
    let mut last = None;
    for id in ids {
        if records.len() == limit {
            break;
        }
        last = Some(id.clone());
        let Some((_, record)) =
            medical::load(&state.store, &state.vault, &id).map_err(AppError::internal)?
        else {
            continue;
        };
        let in_range =
            q.from.is_none_or(|f| record.date >= f) && q.to.is_none_or(|t| record.date <= t);
        if record.deleted_at.is_none() && in_range {
            records.push(view(record));
        }
    }
    let next = (records.len() == limit)
        .then(|| last.map(|l| l.to_string()))
        .flatten();
    durably(state, &this).await?;
    Ok(RecordList { records, next })
}

/// The record, if the caller may read it; fills the entry's patient and
/// flags a doctor's emergency access.
fn readable(
    state: &AppState,
    principal: &Principal,
    this: &mut AuditEntry,
    id: &RecordId,
) -> Result<MedicalRecord, AppError> {
    let viewer = viewer(state, principal)?;
    let found = medical::load(&state.store, &state.vault, id).map_err(AppError::internal)?;
    let Some((_, record)) = found else {
        return Err(if viewer.role == Role::Patient {
            AppError::Forbidden("patients read only their own records".into())
        } else {
            AppError::NotFound(format!("no record {id}"))
        });
    };
    this.entity.patients = vec![record.patient_id.clone()];
    let allowed = viewer.may_see_patient(&state.store, &record.patient_id)?;
    if viewer.role == Role::Patient && !allowed {
        return Err(AppError::Forbidden(
            "patients read only their own records".into(),
        ));
    }
    if !patients::is_live(&state.store, &record.patient_id)? {
        return Err(AppError::Gone(format!(
            "the patient of record {id} was deleted"
        )));
    }
    if allowed {
        return Ok(record);
    }
    match (viewer.role, this.purpose.as_mut()) {
        (Role::Doctor, Some(purpose)) => {
            purpose.emergency = true;
            tracing::warn!(record = %id, user = %principal.user_id, "emergency access to a record outside the doctor's care");
            Ok(record)
        }
        _ => Err(AppError::Forbidden(
            "this patient is not in your care; a doctor may open the record in an emergency by \
             stating the reason in X-Access-Reason"
                .into(),
        )),
    }
}

/// Applies the body's clinical fields; returns the names of those that
/// changed.
fn apply(
    record: &mut MedicalRecord,
    body: RecordBody,
    now: Timestamp,
) -> Result<Vec<String>, AppError> {
    let mut changed = Vec::new();
    if let Some(date) = body.date {
        let latest = now
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .tomorrow()
            .map_err(AppError::internal)?;
        if date > latest {
            return Err(AppError::invalid("date", "must not be in the future"));
        }
        if date.year() < 1880 {
            return Err(AppError::invalid("date", "must be after 1880"));
        }
        if date != record.date || record.version == 1 {
            record.date = date;
            changed.push("date".to_owned());
        }
    }
    if let Some(diagnosis) = body.diagnosis {
        let diagnosis = text("diagnosis", &diagnosis, 1, MAX_DIAGNOSIS)?;
        if diagnosis != record.diagnosis {
            record.diagnosis = diagnosis;
            changed.push("diagnosis".to_owned());
        }
    }
    if let Some(treatment) = body.treatment {
        let treatment = text("treatment", &treatment, 0, MAX_TREATMENT)?;
        if treatment != record.treatment {
            record.treatment = treatment;
            changed.push("treatment".to_owned());
        }
    }
    if let Some(prescriptions) = body.prescriptions {
        if prescriptions.len() > MAX_PRESCRIPTIONS {
            return Err(AppError::invalid(
                "prescriptions",
                format!("at most {MAX_PRESCRIPTIONS}"),
            ));
        }
        let prescriptions = prescriptions
            .iter()
            .map(|p| text("prescriptions", p, 1, MAX_PRESCRIPTION))
            .collect::<Result<Vec<_>, _>>()?;
        if prescriptions != record.prescriptions {
            record.prescriptions = prescriptions;
            changed.push("prescriptions".to_owned());
        }
    }
    Ok(changed)
}

/// Trimmed text of `min` to `max` characters; line breaks and tabs allowed,
/// other control characters not.
fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    let count = value.chars().count();
    let bad_char = value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if count < min || count > max || bad_char {
        return Err(AppError::invalid(
            field,
            format!("must be {min} to {max} characters, without control characters"),
        ));
    }
    Ok(value.to_owned())
}

fn view(r: MedicalRecord) -> RecordView {
    RecordView {
        record_id: r.record_id,
        patient_id: r.patient_id,
        date: r.date,
        diagnosis: r.diagnosis,
        treatment: r.treatment,
        prescriptions: r.prescriptions,
        author: r.author,
        version: r.version,
    }
}
