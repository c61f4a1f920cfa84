//! Versions of a patient's medical history: every change keeps the
//! history as it then stood (sealed), who changed it and when.

use jiff::Timestamp;
use medrelay_protocol::profile::MedicalHistory;
use medrelay_protocol::{PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// One version of a patient's medical history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryVersion {
    /// The version, from 1.
    pub version: u32,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: UserId,
    /// The history as of this version, sealed.
    pub sealed: Sealed,
}

impl Record for HistoryVersion {
    const TABLE: Table = Table::HistoryVersions;
    const VERSION: u16 = 1;
}

fn key(patient: &PatientId, version: u32) -> String {
    format!("{patient}/{version:010}")
}

fn place(key: &str) -> Place<'_> {
    Place {
        table: Table::HistoryVersions.name(),
        id: key,
        field: "medicalHistory",
    }
}

/// Adds to `batch` the next version of `patient`'s history (the number
/// after the last stored one; the caller's compare-and-swap on the profile
/// keeps two changes from taking the same number).
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn append(
    batch: &mut WriteBatch,
    store: &Store,
    vault: &Vault,
    patient: &PatientId,
    by: &UserId,
    at: Timestamp,
    history: &MedicalHistory,
) -> Result<(), StoreError> {
    let last = store
        .scan_prefix::<HistoryVersion>(&format!("{patient}/"), usize::MAX)?
        .last()
        .map_or(0, |(_, v)| v.version);
    let key = key(patient, last + 1);
    let version = HistoryVersion {
        version: last + 1,
        at,
        by: by.clone(),
        sealed: vault.seal_json(place(&key), history),
    };
    batch.put(key, &version);
    Ok(())
}

/// Up to `limit` versions of `patient`'s history, oldest first, opened.
///
/// # Errors
/// [`super::PatientError`] on a read failure or a version that does not open.
pub fn list(
    store: &Store,
    vault: &Vault,
    patient: &PatientId,
    limit: usize,
) -> Result<Vec<(HistoryVersion, MedicalHistory)>, super::PatientError> {
    let mut out = Vec::new();
    for (key, version) in store.scan_prefix::<HistoryVersion>(&format!("{patient}/"), limit)? {
        let history = vault.open_json(place(&key), &version.sealed)?;
        out.push((version, history));
    }
    Ok(out)
}

/// A version re-sealed under the vault's current key (key rotation).
///
/// # Errors
/// [`PhiError`] when it does not open.
pub fn reseal(vault: &Vault, key: &str, v: HistoryVersion) -> Result<HistoryVersion, PhiError> {
    let history: MedicalHistory = vault.open_json(place(key), &v.sealed)?;
    Ok(HistoryVersion {
        sealed: vault.seal_json(place(key), &history),
        ..v
    })
}
