//! Issued invoices: numbered from a gapless sequence, stored as the exact
//! bytes first answered, and never changed.
//!
//! The number is the `invoice_number` counter plus one, written in the
//! transaction that stores the invoice under that number, required absent:
//! two invoices issued at once cannot take one number, and a number is used
//! only by a transaction that commits, so none is skipped. The body names
//! patients and services, so it is sealed.

use jiff::Timestamp;
use medrelay_protocol::{PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// The counter holding the last number issued.
const LAST_NUMBER: &str = "invoice_number";

/// An issued invoice (key: its id, `INV-000001`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredInvoice {
    /// Its number.
    pub number: u64,
    /// The patients it covers (empty: every patient), for who may read it.
    pub patient_ids: Vec<PatientId>,
    /// Who issued it.
    pub issued_by: UserId,
    /// When.
    pub issued_at: Timestamp,
    /// The JSON body as first answered, sealed.
    pub body: Sealed,
}

impl Record for StoredInvoice {
    const TABLE: Table = Table::Invoices;
    const VERSION: u16 = 1;
}

/// The id of invoice `number`.
pub fn invoice_id(number: u64) -> String {
    format!("INV-{number:06}")
}

fn place(id: &str) -> Place<'_> {
    Place {
        table: Table::Invoices.name(),
        id,
        field: "body",
    }
}

/// The next number to issue.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn next_number(store: &Store) -> Result<u64, StoreError> {
    Ok(store.counter(LAST_NUMBER)? + 1)
}

/// Adds to `batch` invoice `number` with `body`, and the counter moved to
/// it. The write fails with `Exists` if another took the number first.
pub fn issue(
    batch: &mut WriteBatch,
    vault: &Vault,
    number: u64,
    body: &[u8],
    patient_ids: Vec<PatientId>,
    by: &UserId,
    at: Timestamp,
) {
    let id = invoice_id(number);
    batch.require_absent(Table::Invoices, id.as_str());
    batch.set_counter(LAST_NUMBER, number);
    batch.put(
        id.clone(),
        &StoredInvoice {
            number,
            patient_ids,
            issued_by: by.clone(),
            issued_at: at,
            body: vault.seal(place(&id), body),
        },
    );
}

/// An issued invoice's record and its body, byte for byte.
///
/// # Errors
/// [`PhiError`] when the body does not open; [`StoreError`] on a read
/// failure (as `PhiError` is not one, both are boxed by the caller).
pub fn load(
    store: &Store,
    vault: &Vault,
    id: &str,
) -> Result<Option<(StoredInvoice, Vec<u8>)>, crate::patients::PatientError> {
    let Some(stored) = store.get::<StoredInvoice>(id)? else {
        return Ok(None);
    };
    let body = vault.open_value(place(id), &stored.body)?;
    Ok(Some((stored, body)))
}

/// The invoice re-sealed under the vault's current key.
///
/// # Errors
/// [`PhiError`] when it does not open.
pub fn reseal(vault: &Vault, key: &str, s: StoredInvoice) -> Result<StoredInvoice, PhiError> {
    let body = vault.open_value(place(key), &s.body)?;
    Ok(StoredInvoice {
        body: vault.seal(place(key), &body),
        ..s
    })
}
