//! Bills and billing accounts at rest (seed: healthcare-api section 3,
//! patient-management's billing accounts).
//!
//! A patient's [`BillingAccount`] is opened in the transaction that
//! registers them ([`open_account`]); patients registered before billing
//! existed get one at start-up ([`open_missing_accounts`]). A bill's service
//! lines say what was done for the patient, so they are sealed by the
//! [`Vault`] like a record's clinical fields; amounts, status and the claim
//! stay plain so totals and lists need no key. Every change appends a
//! [`BillRevision`] holding the bill as it then stood.

use jiff::Timestamp;
use medrelay_protocol::billing::{BillStatus, ClaimRequest, ServiceLine};
use medrelay_protocol::schedule::AppointmentId;
use medrelay_protocol::{BillId, Channel, ClaimId, Event, Money, PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::patients::{PatientError, StoredPatient};
use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// A patient's billing account (key: patient id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingAccount {
    /// The patient.
    pub patient_id: PatientId,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// Money paid beyond what was owed.
    pub credit: Money,
}

impl Record for BillingAccount {
    const TABLE: Table = Table::BillingAccounts;
    const VERSION: u16 = 1;
}

/// A bill in plain form; stored with its lines sealed, as [`StoredBill`].
/// Its `Debug` shows ids and amounts alone.
#[derive(Clone, PartialEq)]
pub struct Bill {
    /// Its id.
    pub bill_id: BillId,
    /// The patient billed.
    pub patient_id: PatientId,
    /// The appointment charged for.
    pub appointment_id: Option<AppointmentId>,
    /// The services charged.
    pub services: Vec<ServiceLine>,
    /// The insurance claim.
    pub insurance_claim: Option<ClaimRequest>,
    /// The claim made from it ([`claims`]).
    pub claim_id: Option<ClaimId>,
    /// The sum of the services.
    pub total: Money,
    /// Payments applied so far.
    pub paid: Money,
    /// Its state.
    pub status: BillStatus,
    /// Who wrote it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Option<Timestamp>,
    /// Its revision, from 1.
    pub revision: u32,
}

impl std::fmt::Debug for Bill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bill")
            .field("bill_id", &self.bill_id)
            .field("patient_id", &self.patient_id)
            .field("total", &self.total)
            .field("status", &self.status)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl Bill {
    /// What the patient still owes on it.
    pub fn balance_due(&self) -> Money {
        if self.status.is_open() {
            self.total.less(self.paid)
        } else {
            Money::ZERO
        }
    }
}

/// A bill as stored (key: bill id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBill {
    /// Its id.
    pub bill_id: BillId,
    /// The patient.
    pub patient_id: PatientId,
    /// The appointment charged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<AppointmentId>,
    /// The service lines, sealed as one value.
    pub services: Sealed,
    /// The insurance claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_claim: Option<ClaimRequest>,
    /// The claim made from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ClaimId>,
    /// The total.
    pub total: Money,
    /// Paid so far.
    pub paid: Money,
    /// Its state.
    pub status: BillStatus,
    /// Who wrote it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Its revision.
    pub revision: u32,
}

impl Record for StoredBill {
    const TABLE: Table = Table::Bills;
    const VERSION: u16 = 1;
}

/// What a revision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillChange {
    /// Written.
    Created,
    /// Changed.
    Updated,
    /// A payment applied (the patient's or an insurer's).
    Paid,
    /// A refund took back part of what was paid.
    Refunded,
    /// Voided.
    Voided,
}

impl BillChange {
    /// `created`, `updated`, `paid`, `refunded` or `voided`.
    pub fn as_str(self) -> &'static str {
        match self {
            BillChange::Created => "created",
            BillChange::Updated => "updated",
            BillChange::Paid => "paid",
            BillChange::Refunded => "refunded",
            BillChange::Voided => "voided",
        }
    }
}

/// One revision of a bill (key: `<bill>/<revision, 10 digits>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillRevision {
    /// The revision, from 1.
    pub revision: u32,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: UserId,
    /// What it did.
    pub change: BillChange,
    /// The service lines then, sealed.
    pub services: Sealed,
    /// The claim then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_claim: Option<ClaimRequest>,
    /// The total then.
    pub total: Money,
    /// The state then.
    pub status: BillStatus,
}

impl Record for BillRevision {
    const TABLE: Table = Table::BillRevisions;
    const VERSION: u16 = 1;
}

/// An entry of a patient's bill index (key: `<patient>/<bill>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillIndex {}

impl Record for BillIndex {
    const TABLE: Table = Table::PatientBills;
    const VERSION: u16 = 1;
}

/// Adds to `batch` the opening of `patient`'s billing account.
pub fn open_account(batch: &mut WriteBatch, patient: &PatientId, now: Timestamp) {
    batch.require_absent(Table::BillingAccounts, patient.as_str());
    batch.put(
        patient.as_str(),
        &BillingAccount {
            patient_id: patient.clone(),
            opened_at: now,
            credit: Money::ZERO,
        },
    );
}

/// The counter [`open_missing_accounts`] sets once every patient has an account.
const ACCOUNTS_OPENED: &str = "billing_accounts_opened";

/// Opens an account for every patient registered before billing existed,
/// once: a counter records that it ran to the end. Call it at start-up,
/// before requests are served. Returns how many it opened.
///
/// # Errors
/// [`PatientError`] on a read or write failure.
pub async fn open_missing_accounts(store: &Store) -> Result<usize, PatientError> {
    const BATCH: usize = 512;
    if store.counter(ACCOUNTS_OPENED)? > 0 {
        return Ok(0);
    }
    let now = Timestamp::now();
    let mut after: Option<String> = None;
    let mut opened = 0;
    loop {
        let page = store.scan::<StoredPatient>(after.as_deref(), BATCH)?;
        let mut batch = WriteBatch::new();
        let Some((last, _)) = page.last() else {
            batch.set_counter(ACCOUNTS_OPENED, 1);
            store.write(batch).await?;
            return Ok(opened);
        };
        after = Some(last.clone());
        for (_, patient) in page {
            if store
                .get::<BillingAccount>(patient.patient_id.as_str())?
                .is_none()
            {
                open_account(&mut batch, &patient.patient_id, now);
                opened += 1;
            }
        }
        if !batch.is_empty() {
            store.write(batch).await?;
        }
    }
}

fn place<'a>(table: Table, id: &'a str) -> Place<'a> {
    Place {
        table: table.name(),
        id,
        field: "services",
    }
}

fn revision_key(bill: &BillId, revision: u32) -> String {
    format!("{bill}/{revision:010}")
}

/// The bill as stored, its lines sealed.
pub fn seal(vault: &Vault, bill: &Bill) -> StoredBill {
    let id = bill.bill_id.as_str();
    StoredBill {
        bill_id: bill.bill_id.clone(),
        patient_id: bill.patient_id.clone(),
        appointment_id: bill.appointment_id.clone(),
        services: vault.seal_json(place(Table::Bills, id), &bill.services),
        insurance_claim: bill.insurance_claim.clone(),
        claim_id: bill.claim_id.clone(),
        total: bill.total,
        paid: bill.paid,
        status: bill.status,
        created_by: bill.created_by.clone(),
        created_at: bill.created_at,
        updated_at: bill.updated_at,
        revision: bill.revision,
    }
}

/// Opens a stored bill.
///
/// # Errors
/// [`PhiError`] when its lines do not open.
pub fn open(vault: &Vault, s: StoredBill) -> Result<Bill, PhiError> {
    let services = vault.open_json(place(Table::Bills, s.bill_id.as_str()), &s.services)?;
    Ok(Bill {
        services,
        bill_id: s.bill_id,
        patient_id: s.patient_id,
        appointment_id: s.appointment_id,
        insurance_claim: s.insurance_claim,
        claim_id: s.claim_id,
        total: s.total,
        paid: s.paid,
        status: s.status,
        created_by: s.created_by,
        created_at: s.created_at,
        updated_at: s.updated_at,
        revision: s.revision,
    })
}

/// The lines of a revision stored under `key`.
///
/// # Errors
/// [`PhiError`] when they do not open.
pub fn open_revision(
    vault: &Vault,
    key: &str,
    revision: &BillRevision,
) -> Result<Vec<ServiceLine>, PhiError> {
    vault.open_json(place(Table::BillRevisions, key), &revision.services)
}

/// A revision re-sealed under the vault's current key.
///
/// # Errors
/// [`PhiError`] when it does not open.
pub fn reseal_revision(
    vault: &Vault,
    key: &str,
    revision: BillRevision,
) -> Result<BillRevision, PhiError> {
    let lines = open_revision(vault, key, &revision)?;
    Ok(BillRevision {
        services: vault.seal_json(place(Table::BillRevisions, key), &lines),
        ..revision
    })
}

/// Adds to `batch` the bill as it now stands, its revision, its index entry
/// and a `bill_changed` event on `billing:<patientId>`.
pub fn write(batch: &mut WriteBatch, vault: &Vault, bill: &Bill, by: &UserId, change: BillChange) {
    let at = bill.updated_at.unwrap_or(bill.created_at);
    batch.event(
        Channel::Billing(bill.patient_id.clone()),
        Event::BillChanged {
            bill_id: bill.bill_id.clone(),
            patient_id: bill.patient_id.clone(),
            change: change.as_str().to_owned(),
            status: bill.status,
            total_amount: bill.total,
            balance_due: bill.balance_due(),
            revision: bill.revision,
            at,
        },
    );
    let key = revision_key(&bill.bill_id, bill.revision);
    batch.put(
        key.clone(),
        &BillRevision {
            revision: bill.revision,
            at,
            by: by.clone(),
            change,
            services: vault.seal_json(place(Table::BillRevisions, &key), &bill.services),
            insurance_claim: bill.insurance_claim.clone(),
            total: bill.total,
            status: bill.status,
        },
    );
    batch.put(
        format!("{}/{}", bill.patient_id, bill.bill_id),
        &BillIndex {},
    );
    batch.put(bill.bill_id.as_str(), &seal(vault, bill));
}

/// A bill as stored and opened.
///
/// # Errors
/// [`PatientError`] on a read failure or lines that do not open.
pub fn load(
    store: &Store,
    vault: &Vault,
    id: &BillId,
) -> Result<Option<(StoredBill, Bill)>, PatientError> {
    let Some(stored) = store.get::<StoredBill>(id.as_str())? else {
        return Ok(None);
    };
    let bill = open(vault, stored.clone())?;
    Ok(Some((stored, bill)))
}

/// The ids of a patient's bills, by id, at most `limit`.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn of_patient(
    store: &Store,
    patient: &PatientId,
    limit: usize,
) -> Result<Vec<BillId>, StoreError> {
    let prefix = format!("{patient}/");
    Ok(store
        .scan_prefix::<BillIndex>(&prefix, limit)?
        .into_iter()
        .filter_map(|(key, _)| BillId::parse(&key[prefix.len()..]).ok())
        .collect())
}

/// A patient's open bills (`Issued` or `PartiallyPaid`), as stored, oldest
/// first: what their account owes, and the order a payment that names no
/// bills pays them in.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn open_bills(store: &Store, patient: &PatientId) -> Result<Vec<StoredBill>, StoreError> {
    let mut open = Vec::new();
    for id in of_patient(store, patient, MAX_PATIENT_BILLS)? {
        if let Some(bill) = store.get::<StoredBill>(id.as_str())?
            && bill.status.is_open()
        {
            open.push(bill);
        }
    }
    open.sort_by(|a, b| (a.created_at, &a.bill_id).cmp(&(b.created_at, &b.bill_id)));
    Ok(open)
}

/// Most bills read for one patient.
pub const MAX_PATIENT_BILLS: usize = 10_000;

/// A bill's revisions, oldest first, at most `limit`, with their keys.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn revisions(
    store: &Store,
    id: &BillId,
    limit: usize,
) -> Result<Vec<(String, BillRevision)>, StoreError> {
    store.scan_prefix::<BillRevision>(&format!("{id}/"), limit)
}

pub mod claims;
pub mod gateway;
pub mod invoices;
pub mod notices;
pub mod payment_actor;
pub mod payments;
mod refunds;
mod settling;

#[cfg(test)]
pub(crate) mod payment_tests;
#[cfg(test)]
pub(crate) mod tests;
