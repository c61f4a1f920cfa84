//! Patient profiles at rest: sealed field by field, searchable by blind index.
//!
//! [`PatientRecord`] is the plain profile the code works with; it is never
//! stored as such. The `patients` table holds a [`StoredPatient`], whose
//! identifying and health fields are sealed by the [`Vault`] (each bound to
//! the table, the patient id and the field). A sign-up's profile and a
//! patient registered at the desk are the same kind of record.
//!
//! The `patient_lookup` table holds the blind indexes:
//! `<kind>:<blind value>/<patientId>` for exact-match search by name, date
//! of birth, e-mail and phone, and `same:<blind identity>` → patient id, the
//! key that makes registering the same person twice (same name, date of
//! birth and e-mail or phone) collide in the writer.

pub mod history;
pub mod invites;

use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::profile::{Address, ContactInfo, MedicalHistory};
use medrelay_protocol::{PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch, WriteError};

/// A patient's profile in plain form (seed `PATIENT_TBL`,
/// `GET /api/patients/{id}`). Stored only sealed, as [`StoredPatient`].
/// Its `Debug` shows the id alone, so no log line can carry the rest.
#[derive(Clone, PartialEq)]
pub struct PatientRecord {
    /// Its id.
    pub patient_id: PatientId,
    /// The account it belongs to, if any.
    pub user_id: Option<UserId>,
    /// Full name.
    pub name: String,
    /// Date of birth.
    pub dob: Option<Date>,
    /// Contact details.
    pub contact_info: ContactInfo,
    /// Postal address.
    pub address: Option<Address>,
    /// Medical history.
    pub medical_history: MedicalHistory,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
}

impl std::fmt::Debug for PatientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientRecord")
            .field("patient_id", &self.patient_id)
            .finish_non_exhaustive()
    }
}

/// The fields of a profile written before encryption (schema version 1).
/// Its `Debug` shows none of them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainFields {
    name: String,
    #[serde(default)]
    dob: Option<Date>,
    #[serde(default)]
    contact_info: ContactInfo,
    #[serde(default)]
    medical_history: MedicalHistory,
}

impl std::fmt::Debug for PlainFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainFields { .. }")
    }
}

/// The sealed fields of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedFields {
    name: Sealed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dob: Option<Sealed>,
    contact_info: Sealed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<Sealed>,
    medical_history: Sealed,
}

/// A profile's fields as they are sealed together (`StoredPatient::profile`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFields {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dob: Option<Date>,
    contact_info: ContactInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<Address>,
    medical_history: MedicalHistory,
}

impl StoredPatient {
    /// Whether any field is sealed with a key other than `current` (or not
    /// sealed at all).
    pub fn stale(&self, current: u32) -> bool {
        match &self.profile {
            Some(profile) => profile.key_id().ok() != Some(current),
            None => true,
        }
    }
}

/// A patient profile as stored: ids and times in the clear, everything
/// else sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPatient {
    /// Its id.
    pub patient_id: PatientId,
    /// The account it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// The profile's fields, sealed together as one value: one open per
    /// read rather than one per field (opening is most of a read's cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Sealed>,
    /// The fields sealed one by one, as written before `profile`, until
    /// [`seal_legacy`] seals them together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedFields>,
    /// When it was deleted: hidden from then on, purged once the retention
    /// has passed, restorable until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// A profile written before encryption, until [`seal_legacy`] seals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<PlainFields>,
}

impl Record for StoredPatient {
    const TABLE: Table = Table::Patients;
    const VERSION: u16 = 3;

    fn upgrade(version: u16, json: serde_json::Value) -> Result<serde_json::Value, String> {
        match version {
            // Version 1 held the fields in the clear, beside the ids.
            1 => {
                let mut json = json;
                let object = json.as_object_mut().ok_or("not an object")?;
                let mut plain = serde_json::Map::new();
                for field in ["name", "dob", "contactInfo", "medicalHistory"] {
                    if let Some(value) = object.remove(field) {
                        plain.insert(field.into(), value);
                    }
                }
                object.insert("plain".into(), plain.into());
                Ok(json)
            }
            // Version 2 sealed each field on its own; `sealed` reads it.
            2 | 3 => Ok(json),
            other => Err(format!("no upgrade from schema version {other}")),
        }
    }
}

/// A lookup entry: the patient a blind-index key points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupEntry {
    /// The patient.
    pub patient_id: PatientId,
}

impl Record for LookupEntry {
    const TABLE: Table = Table::PatientLookup;
    const VERSION: u16 = 1;
}

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed field did not open.
    #[error(transparent)]
    Phi(#[from] PhiError),
    /// A write was refused.
    #[error(transparent)]
    Write(#[from] WriteError),
}

fn place<'a>(id: &'a PatientId, field: &'a str) -> Place<'a> {
    Place {
        table: Table::Patients.name(),
        id: id.as_str(),
        field,
    }
}

/// Seals `patient` for storage.
pub fn seal(vault: &Vault, patient: &PatientRecord) -> StoredPatient {
    let id = &patient.patient_id;
    StoredPatient {
        patient_id: id.clone(),
        user_id: patient.user_id.clone(),
        created_at: patient.created_at,
        updated_at: patient.updated_at,
        profile: Some(vault.seal_json(
            place(id, "profile"),
            &ProfileFields {
                name: patient.name.clone(),
                dob: patient.dob,
                contact_info: patient.contact_info.clone(),
                address: patient.address.clone(),
                medical_history: patient.medical_history.clone(),
            },
        )),
        sealed: None,
        deleted_at: None,
        plain: None,
    }
}

/// Opens a stored profile.
///
/// # Errors
/// [`PhiError`] when a field does not open.
pub fn open(vault: &Vault, stored: StoredPatient) -> Result<PatientRecord, PhiError> {
    let id = &stored.patient_id;
    let (name, dob, contact_info, address, medical_history) =
        match (&stored.profile, &stored.sealed, stored.plain) {
            (Some(profile), _, _) => {
                let p: ProfileFields = vault.open_json(place(id, "profile"), profile)?;
                (p.name, p.dob, p.contact_info, p.address, p.medical_history)
            }
            (None, Some(s), _) => (
                vault.open_json(place(id, "name"), &s.name)?,
                match &s.dob {
                    Some(dob) => Some(vault.open_json(place(id, "dob"), dob)?),
                    None => None,
                },
                vault.open_json(place(id, "contactInfo"), &s.contact_info)?,
                match &s.address {
                    Some(a) => Some(vault.open_json(place(id, "address"), a)?),
                    None => None,
                },
                vault.open_json(place(id, "medicalHistory"), &s.medical_history)?,
            ),
            (None, None, Some(p)) => (p.name, p.dob, p.contact_info, None, p.medical_history),
            (None, None, None) => return Err(PhiError::Malformed("a profile without fields")),
        };
    Ok(PatientRecord {
        patient_id: stored.patient_id,
        user_id: stored.user_id,
        name,
        dob,
        contact_info,
        address,
        medical_history,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    })
}

/// `stored` sealed afresh as one value under the current key, its deletion
/// mark kept (key rotation; profiles sealed field by field).
///
/// # Errors
/// [`PhiError`] when a field does not open.
pub fn reseal(vault: &Vault, stored: StoredPatient) -> Result<StoredPatient, PhiError> {
    let deleted_at = stored.deleted_at;
    let mut fresh = seal(vault, &open(vault, stored)?);
    fresh.deleted_at = deleted_at;
    Ok(fresh)
}

/// Whether `id` names a patient that exists and is not deleted.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn is_live(store: &Store, id: &PatientId) -> Result<bool, StoreError> {
    Ok(store
        .get::<StoredPatient>(id.as_str())?
        .is_some_and(|p| p.deleted_at.is_none()))
}

/// Reads and opens one profile.
///
/// # Errors
/// [`PatientError`] on a read failure or a field that does not open.
pub fn load(
    store: &Store,
    vault: &Vault,
    id: &PatientId,
) -> Result<Option<PatientRecord>, PatientError> {
    match store.get::<StoredPatient>(id.as_str())? {
        Some(stored) => Ok(Some(open(vault, stored)?)),
        None => Ok(None),
    }
}

/// A search by one exact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search<'a> {
    /// Full name (case and spacing ignored).
    Name(&'a str),
    /// Date of birth.
    Dob(Date),
    /// E-mail address (case ignored).
    Email(&'a str),
    /// Phone number (E.164).
    Phone(&'a str),
}

impl Search<'_> {
    /// The blind-index key prefix this search reads.
    pub fn prefix(&self, vault: &Vault) -> String {
        let (kind, value) = match self {
            Search::Name(name) => ("name", normal_name(name)),
            Search::Dob(dob) => ("dob", dob.to_string()),
            Search::Email(email) => ("email", email.trim().to_lowercase()),
            Search::Phone(phone) => ("phone", (*phone).to_owned()),
        };
        format!("{kind}:{}/", vault.blind(kind, &value))
    }
}

fn normal_name(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The search keys of a profile (no duplicates).
fn search_keys(vault: &Vault, p: &PatientRecord) -> Vec<String> {
    let mut searches = vec![Search::Name(&p.name)];
    searches.extend(p.dob.map(Search::Dob));
    searches.extend(
        p.contact_info
            .email
            .as_ref()
            .map(|e| Search::Email(e.as_str())),
    );
    searches.extend(
        p.contact_info
            .phone
            .as_ref()
            .map(|ph| Search::Phone(ph.as_str())),
    );
    searches
        .into_iter()
        .map(|s| format!("{}{}", s.prefix(vault), p.patient_id))
        .collect()
}

/// The identity keys of a profile: one per (name, date of birth, e-mail or
/// phone); none without a date of birth.
pub fn identity_keys(vault: &Vault, p: &PatientRecord) -> Vec<String> {
    let Some(dob) = p.dob else {
        return Vec::new();
    };
    let person = format!("{}\0{dob}", normal_name(&p.name));
    let mut keys = Vec::new();
    if let Some(email) = &p.contact_info.email {
        let value = format!("{person}\0e\0{}", email.as_str().to_lowercase());
        keys.push(format!("same:{}", vault.blind("same", &value)));
    }
    if let Some(phone) = &p.contact_info.phone {
        let value = format!("{person}\0p\0{}", phone.as_str());
        keys.push(format!("same:{}", vault.blind("same", &value)));
    }
    keys
}

/// Adds to `batch` the profile `new` (sealed) and its lookup keys, dropping
/// the keys of `old` that no longer apply. With `unique`, the batch fails
/// with [`WriteError::Exists`] on an identity key another profile holds
/// (see [`duplicate_of`]).
pub fn write(
    batch: &mut WriteBatch,
    vault: &Vault,
    old: Option<&PatientRecord>,
    new: &PatientRecord,
    unique: bool,
) {
    let entry = LookupEntry {
        patient_id: new.patient_id.clone(),
    };
    let (new_search, new_identity) = (search_keys(vault, new), identity_keys(vault, new));
    if let Some(old) = old {
        for key in search_keys(vault, old)
            .into_iter()
            .chain(identity_keys(vault, old))
        {
            if !new_search.contains(&key) && !new_identity.contains(&key) {
                batch.delete(Table::PatientLookup, key);
            }
        }
    }
    for key in new_identity {
        if unique {
            batch.require_absent(Table::PatientLookup, key.clone());
        }
        batch.put(key, &entry);
    }
    for key in new_search {
        batch.put(key, &entry);
    }
    batch.put(new.patient_id.as_str(), &seal(vault, new));
}

/// Adds to `batch` the removal, for good, of `patient`'s profile and its
/// lookup keys (identity keys only where they still point at it).
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn erase(
    batch: &mut WriteBatch,
    store: &Store,
    vault: &Vault,
    patient: &PatientRecord,
) -> Result<(), StoreError> {
    for key in search_keys(vault, patient) {
        batch.delete(Table::PatientLookup, key);
    }
    for key in identity_keys(vault, patient) {
        let ours = store
            .get::<LookupEntry>(&key)?
            .is_some_and(|e| e.patient_id == patient.patient_id);
        if ours {
            batch.delete(Table::PatientLookup, key);
        }
    }
    for (key, _) in store
        .scan_prefix::<history::HistoryVersion>(&format!("{}/", patient.patient_id), usize::MAX)?
    {
        batch.delete(Table::HistoryVersions, key);
    }
    batch.delete(Table::Patients, patient.patient_id.as_str());
    Ok(())
}

/// The patient that a failed unique [`write()`] collided with, if the error
/// was such a collision.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn duplicate_of(store: &Store, error: &WriteError) -> Result<Option<PatientId>, StoreError> {
    match error {
        WriteError::Exists { table, key } if *table == Table::PatientLookup.name() => {
            Ok(store.get::<LookupEntry>(key)?.map(|entry| entry.patient_id))
        }
        _ => Ok(None),
    }
}

/// Up to `limit` patient ids matching `search`, after `after`.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn find(
    store: &Store,
    vault: &Vault,
    search: Search<'_>,
    after: Option<&PatientId>,
    limit: usize,
) -> Result<Vec<PatientId>, StoreError> {
    let prefix = search.prefix(vault);
    let rows = match after {
        Some(after) => store
            .scan::<LookupEntry>(Some(&format!("{prefix}{after}")), limit)?
            .into_iter()
            .take_while(|(key, _)| key.starts_with(&prefix))
            .collect(),
        None => store.scan_prefix::<LookupEntry>(&prefix, limit)?,
    };
    Ok(rows.into_iter().map(|(_, e)| e.patient_id).collect())
}

/// Seals every profile written before encryption, and seals together the
/// fields of every profile sealed field by field, in batches. Runs at
/// start-up before any request is served, so nothing else writes profiles
/// meanwhile. Safe to run again (after a crash half-way): profiles already
/// sealed together are skipped. Returns how many it sealed.
///
/// # Errors
/// [`PatientError`] on a read or write failure.
pub async fn seal_legacy(store: &Store, vault: &Vault) -> Result<usize, PatientError> {
    const BATCH: usize = 256;
    let mut after: Option<String> = None;
    let mut sealed = 0;
    loop {
        let page = store.scan::<StoredPatient>(after.as_deref(), BATCH)?;
        let Some((last, _)) = page.last() else {
            return Ok(sealed);
        };
        after = Some(last.clone());
        let mut batch = WriteBatch::new();
        let mut count = 0;
        for (key, stored) in page {
            if stored.profile.is_some() {
                continue;
            }
            if stored.plain.is_some() {
                // Never indexed either.
                write(&mut batch, vault, None, &open(vault, stored)?, false);
            } else {
                // Sealed field by field: sealed together, indexes as they are.
                batch.put(key, &reseal(vault, stored)?);
            }
            count += 1;
        }
        if count > 0 {
            store.write(batch).await?;
            sealed += count;
        }
    }
}

#[cfg(test)]
mod tests;
