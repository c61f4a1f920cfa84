//! Medical records at rest (seed section 4): sealed clinical fields, every
//! version kept, deletion as a tombstone.
//!
//! A record's diagnosis, treatment and prescriptions are sealed by the
//! [`Vault`] like a patient profile's fields (bound to the table, the record
//! id and the field). Every change appends a [`RecordVersion`] holding who,
//! when, which fields changed and a sealed copy of the record as it then
//! stood, so the history is complete; a deleted record keeps its data and
//! its history, marked deleted, until its patient's data is purged.

use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::{PatientId, RecordId, UserId};
use serde::{Deserialize, Serialize};

use crate::patients::PatientError;
use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// A medical record in plain form; stored only sealed, as [`StoredRecord`].
/// Its `Debug` shows the ids alone.
#[derive(Clone, PartialEq)]
pub struct MedicalRecord {
    /// Its id.
    pub record_id: RecordId,
    /// The patient it is about.
    pub patient_id: PatientId,
    /// The doctor who wrote it.
    pub author: UserId,
    /// The date of the encounter.
    pub date: Date,
    /// The diagnosis.
    pub diagnosis: String,
    /// The treatment.
    pub treatment: String,
    /// The prescriptions.
    pub prescriptions: Vec<String>,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// When it was deleted (a tombstone).
    pub deleted_at: Option<Timestamp>,
    /// Its version, from 1.
    pub version: u32,
}

impl std::fmt::Debug for MedicalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MedicalRecord")
            .field("record_id", &self.record_id)
            .field("patient_id", &self.patient_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The sealed clinical fields of a record (or of one of its versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedClinical {
    diagnosis: Sealed,
    treatment: Sealed,
    prescriptions: Sealed,
}

impl SealedClinical {
    /// Whether any field is sealed with a key other than `current`.
    pub fn stale(&self, current: u32) -> bool {
        [&self.diagnosis, &self.treatment, &self.prescriptions]
            .iter()
            .any(|s| s.key_id().ok() != Some(current))
    }
}

/// A medical record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord {
    /// Its id.
    pub record_id: RecordId,
    /// The patient.
    pub patient_id: PatientId,
    /// The author.
    pub author: UserId,
    /// The encounter date.
    pub date: Date,
    /// When written.
    pub created_at: Timestamp,
    /// When last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// When deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Its version.
    pub version: u32,
    /// The clinical fields.
    pub sealed: SealedClinical,
}

impl Record for StoredRecord {
    const TABLE: Table = Table::MedicalRecords;
    const VERSION: u16 = 1;
}

/// What a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Written.
    Created,
    /// Changed.
    Updated,
    /// Deleted (a tombstone).
    Deleted,
}

impl Change {
    /// `created`, `updated` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        }
    }
}

/// One version of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordVersion {
    /// The version, from 1.
    pub version: u32,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: UserId,
    /// What it did.
    pub change: Change,
    /// The fields it changed (names only).
    pub changed: Vec<String>,
    /// The encounter date as of this version.
    pub date: Date,
    /// The clinical fields as of this version, sealed.
    pub sealed: SealedClinical,
}

impl Record for RecordVersion {
    const TABLE: Table = Table::RecordVersions;
    const VERSION: u16 = 1;
}

impl RecordVersion {
    /// The analytics row and figures this version moves, by the clinic's
    /// days in `zone`.
    pub fn figures(&self, zone: &jiff::tz::TimeZone) -> (String, crate::stats::Figures) {
        use crate::stats::records::{self, CREATED, DELETED, UPDATED};
        let figure = match self.change {
            Change::Created => CREATED,
            Change::Updated => UPDATED,
            Change::Deleted => DELETED,
        };
        records::figures(self.at, self.by.as_str(), figure, zone)
    }
}

/// An entry of a patient's record index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordIndex {}

impl Record for RecordIndex {
    const TABLE: Table = Table::PatientRecords;
    const VERSION: u16 = 1;
}

fn place<'a>(table: Table, id: &'a str, field: &'a str) -> Place<'a> {
    Place {
        table: table.name(),
        id,
        field,
    }
}

fn seal_clinical(vault: &Vault, table: Table, id: &str, r: &MedicalRecord) -> SealedClinical {
    SealedClinical {
        diagnosis: vault.seal_json(place(table, id, "diagnosis"), &r.diagnosis),
        treatment: vault.seal_json(place(table, id, "treatment"), &r.treatment),
        prescriptions: vault.seal_json(place(table, id, "prescriptions"), &r.prescriptions),
    }
}

/// Opens a stored record.
///
/// # Errors
/// [`PhiError`] when a field does not open.
pub fn open(vault: &Vault, s: StoredRecord) -> Result<MedicalRecord, PhiError> {
    let id = s.record_id.as_str();
    let table = Table::MedicalRecords;
    Ok(MedicalRecord {
        diagnosis: vault.open_json(place(table, id, "diagnosis"), &s.sealed.diagnosis)?,
        treatment: vault.open_json(place(table, id, "treatment"), &s.sealed.treatment)?,
        prescriptions: vault
            .open_json(place(table, id, "prescriptions"), &s.sealed.prescriptions)?,
        record_id: s.record_id,
        patient_id: s.patient_id,
        author: s.author,
        date: s.date,
        created_at: s.created_at,
        updated_at: s.updated_at,
        deleted_at: s.deleted_at,
        version: s.version,
    })
}

/// Seals `record` for storage.
pub fn seal(vault: &Vault, r: &MedicalRecord) -> StoredRecord {
    StoredRecord {
        record_id: r.record_id.clone(),
        patient_id: r.patient_id.clone(),
        author: r.author.clone(),
        date: r.date,
        created_at: r.created_at,
        updated_at: r.updated_at,
        deleted_at: r.deleted_at,
        version: r.version,
        sealed: seal_clinical(vault, Table::MedicalRecords, r.record_id.as_str(), r),
    }
}

fn version_key(id: &RecordId, version: u32) -> String {
    format!("{id}/{version:010}")
}

/// A version re-sealed under the vault's current key.
///
/// # Errors
/// [`PhiError`] when a field does not open.
pub fn reseal_version(
    vault: &Vault,
    key: &str,
    v: RecordVersion,
) -> Result<RecordVersion, PhiError> {
    let table = Table::RecordVersions;
    let s = &v.sealed;
    let diagnosis: String = vault.open_json(place(table, key, "diagnosis"), &s.diagnosis)?;
    let treatment: String = vault.open_json(place(table, key, "treatment"), &s.treatment)?;
    let prescriptions: Vec<String> =
        vault.open_json(place(table, key, "prescriptions"), &s.prescriptions)?;
    let sealed = SealedClinical {
        diagnosis: vault.seal_json(place(table, key, "diagnosis"), &diagnosis),
        treatment: vault.seal_json(place(table, key, "treatment"), &treatment),
        prescriptions: vault.seal_json(place(table, key, "prescriptions"), &prescriptions),
    };
    Ok(RecordVersion { sealed, ..v })
}

/// Adds `record` (already at its new version) to `batch`, with the version
/// entry saying who changed which fields and its analytics tally (by the
/// clinic's days in `zone`). A new record (version 1) must not exist yet
/// and joins its patient's index.
pub fn write(
    batch: &mut WriteBatch,
    (vault, zone): (&Vault, &jiff::tz::TimeZone),
    record: &MedicalRecord,
    by: &UserId,
    change: Change,
    changed: Vec<String>,
) {
    let id = record.record_id.as_str();
    if record.version == 1 {
        batch.require_absent(Table::MedicalRecords, id);
        batch.put(format!("{}/{id}", record.patient_id), &RecordIndex {});
    }
    let key = version_key(&record.record_id, record.version);
    let version = RecordVersion {
        version: record.version,
        at: record.updated_at.unwrap_or(record.created_at),
        by: by.clone(),
        change,
        changed,
        date: record.date,
        sealed: seal_clinical(vault, Table::RecordVersions, &key, record),
    };
    crate::stats::records::tally(batch, version.figures(zone), 1);
    batch.put(key, &version);
    batch.put(id, &seal(vault, record));
}

/// Reads and opens one record (deleted ones too: see `deleted_at`).
///
/// # Errors
/// [`PatientError`] on a read failure or a field that does not open.
pub fn load(
    store: &Store,
    vault: &Vault,
    id: &RecordId,
) -> Result<Option<(StoredRecord, MedicalRecord)>, PatientError> {
    match store.get::<StoredRecord>(id.as_str())? {
        Some(stored) => {
            let plain = open(vault, stored.clone())?;
            Ok(Some((stored, plain)))
        }
        None => Ok(None),
    }
}

/// Adds to `batch` the removal, for good, of a record, its versions (and
/// their analytics tallies) and its index entry.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn erase(
    batch: &mut WriteBatch,
    store: &Store,
    patient: &PatientId,
    id: &RecordId,
) -> Result<(), StoreError> {
    for (key, version) in store.scan_prefix::<RecordVersion>(&format!("{id}/"), usize::MAX)? {
        crate::stats::records::tally(batch, version.figures(store.stats_zone()), -1);
        batch.delete(Table::RecordVersions, key);
    }
    batch.delete(Table::PatientRecords, format!("{patient}/{id}"));
    batch.delete(Table::MedicalRecords, id.as_str());
    Ok(())
}

/// The ids of a patient's records, in id order, at most `limit`.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn of_patient(
    store: &Store,
    patient: &PatientId,
    limit: usize,
) -> Result<Vec<RecordId>, StoreError> {
    let prefix = format!("{patient}/");
    Ok(store
        .scan_prefix::<RecordIndex>(&prefix, limit)?
        .into_iter()
        .filter_map(|(key, _)| RecordId::parse(&key[prefix.len()..]).ok())
        .collect())
}

/// Up to `limit` versions of a record, oldest first (their contents stay
/// sealed).
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn history(
    store: &Store,
    id: &RecordId,
    limit: usize,
) -> Result<Vec<RecordVersion>, StoreError> {
    Ok(store
        .scan_prefix::<RecordVersion>(&format!("{id}/"), limit)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}
