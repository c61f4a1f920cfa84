//! Insurance claims at rest: one record per claim, every version kept.
//!
//! A claim is made (as a draft) with the bill that names it, and moves by
//! [`Claim::decided`]'s rules. A denial's reason may say why care was not
//! covered, so it is sealed like a bill's lines; the rest stays plain so
//! claims can be listed by state and insurer without a key.

use jiff::Timestamp;
use medrelay_protocol::claim::ClaimStatus;
use medrelay_protocol::{BillId, Channel, ClaimId, Event, Money, PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::patients::PatientError;
use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// A claim in plain form; stored as [`StoredClaim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Its id.
    pub claim_id: ClaimId,
    /// The bill it claims for.
    pub bill_id: BillId,
    /// The patient.
    pub patient_id: PatientId,
    /// The insurer.
    pub insurance_provider: String,
    /// What the insurer is asked to pay.
    pub claim_amount: Money,
    /// Its state.
    pub status: ClaimStatus,
    /// What the insurer approved.
    pub approved_amount: Option<Money>,
    /// What the insurer paid.
    pub paid_amount: Option<Money>,
    /// Why it was denied.
    pub reason: Option<String>,
    /// Its version, from 1.
    pub version: u32,
    /// When it last changed.
    pub at: Timestamp,
    /// Who changed it last.
    pub by: UserId,
    /// The insurer's first answer, kept through corrections and
    /// resubmissions (the denial and clean-claim rates count it).
    pub first_decision: Option<FirstDecision>,
}

/// An insurer's first answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstDecision {
    /// `approved`, `partially_approved` or `denied`.
    pub status: ClaimStatus,
    /// When.
    pub at: Timestamp,
}

/// What the insurer is still expected to pay on a claim in `status`: the
/// claim while it is with them, what they approved until they pay it.
pub fn insurer_due(status: ClaimStatus, claim_amount: Money, approved: Option<Money>) -> Money {
    match status {
        ClaimStatus::Submitted | ClaimStatus::InReview => claim_amount,
        ClaimStatus::Approved | ClaimStatus::PartiallyApproved => approved.unwrap_or(Money::ZERO),
        ClaimStatus::Draft | ClaimStatus::Denied | ClaimStatus::Paid => Money::ZERO,
    }
}

impl Claim {
    /// What the insurer is still expected to pay ([`insurer_due`]).
    pub fn insurer_due(&self) -> Money {
        insurer_due(self.status, self.claim_amount, self.approved_amount)
    }

    /// What the insurer has approved (zero until a decision).
    pub fn approved(&self) -> Money {
        match self.status {
            ClaimStatus::Approved | ClaimStatus::PartiallyApproved | ClaimStatus::Paid => {
                self.approved_amount.unwrap_or(Money::ZERO)
            }
            _ => Money::ZERO,
        }
    }
}

/// A claim as stored (key: claim id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredClaim {
    /// Its id.
    pub claim_id: ClaimId,
    /// The bill.
    pub bill_id: BillId,
    /// The patient.
    pub patient_id: PatientId,
    /// The insurer.
    pub insurance_provider: String,
    /// The amount claimed.
    pub claim_amount: Money,
    /// Its state.
    pub status: ClaimStatus,
    /// What was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<Money>,
    /// What was paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_amount: Option<Money>,
    /// Why it was denied, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Sealed>,
    /// Its version.
    pub version: u32,
    /// When it last changed.
    pub at: Timestamp,
    /// Who changed it last.
    pub by: UserId,
    /// The insurer's first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_decision: Option<FirstDecision>,
}

impl StoredClaim {
    /// What the insurer is still expected to pay ([`insurer_due`]).
    pub fn insurer_due(&self) -> Money {
        insurer_due(self.status, self.claim_amount, self.approved_amount)
    }
}

impl Record for StoredClaim {
    const TABLE: Table = Table::Claims;
    const VERSION: u16 = 1;
}

/// One version of a claim (key: `<claim>/<version, 10 digits>`): the claim
/// as that change left it, its reason sealed under the version's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimVersion(pub StoredClaim);

impl Record for ClaimVersion {
    const TABLE: Table = Table::ClaimVersions;
    const VERSION: u16 = 1;
}

fn place<'a>(table: Table, key: &'a str) -> Place<'a> {
    Place {
        table: table.name(),
        id: key,
        field: "reason",
    }
}

fn version_key(id: &ClaimId, version: u32) -> String {
    format!("{id}/{version:010}")
}

fn seal(vault: &Vault, table: Table, key: &str, c: &Claim) -> StoredClaim {
    StoredClaim {
        claim_id: c.claim_id.clone(),
        bill_id: c.bill_id.clone(),
        patient_id: c.patient_id.clone(),
        insurance_provider: c.insurance_provider.clone(),
        claim_amount: c.claim_amount,
        status: c.status,
        approved_amount: c.approved_amount,
        paid_amount: c.paid_amount,
        reason: c
            .reason
            .as_ref()
            .map(|r| vault.seal_json(place(table, key), r)),
        version: c.version,
        at: c.at,
        by: c.by.clone(),
        first_decision: c.first_decision,
    }
}

fn open_at(vault: &Vault, table: Table, key: &str, s: StoredClaim) -> Result<Claim, PhiError> {
    let reason = match &s.reason {
        Some(sealed) => Some(vault.open_json(place(table, key), sealed)?),
        None => None,
    };
    Ok(Claim {
        reason,
        claim_id: s.claim_id,
        bill_id: s.bill_id,
        patient_id: s.patient_id,
        insurance_provider: s.insurance_provider,
        claim_amount: s.claim_amount,
        status: s.status,
        approved_amount: s.approved_amount,
        paid_amount: s.paid_amount,
        version: s.version,
        at: s.at,
        by: s.by,
        first_decision: s.first_decision,
    })
}

/// Opens a stored claim.
///
/// # Errors
/// [`PhiError`] when its reason does not open.
pub fn open(vault: &Vault, s: StoredClaim) -> Result<Claim, PhiError> {
    let key = s.claim_id.to_string();
    open_at(vault, Table::Claims, &key, s)
}

/// The claim re-sealed under the vault's current key (the record or one
/// of its versions, stored under `key` in `table`).
///
/// # Errors
/// [`PhiError`] when it does not open.
pub fn reseal(
    vault: &Vault,
    table: Table,
    key: &str,
    s: StoredClaim,
) -> Result<StoredClaim, PhiError> {
    Ok(seal(vault, table, key, &open_at(vault, table, key, s)?))
}

/// Whether its reason is sealed with a key other than `current`.
pub fn stale(s: &StoredClaim, current: u32) -> bool {
    s.reason
        .as_ref()
        .is_some_and(|r| r.key_id().ok() != Some(current))
}

/// Adds to `batch` the claim as it now stands, its version and a
/// `claim_changed` event on `billing:<patientId>`.
pub fn write(batch: &mut WriteBatch, vault: &Vault, claim: &Claim) {
    batch.event(
        Channel::Billing(claim.patient_id.clone()),
        Event::ClaimChanged {
            claim_id: claim.claim_id.clone(),
            bill_id: claim.bill_id.clone(),
            patient_id: claim.patient_id.clone(),
            status: claim.status,
            approved_amount: claim.approved_amount.map(|a| a.to_string()),
            at: claim.at,
        },
    );
    let key = version_key(&claim.claim_id, claim.version);
    batch.put(
        key.clone(),
        &ClaimVersion(seal(vault, Table::ClaimVersions, &key, claim)),
    );
    let id = claim.claim_id.to_string();
    batch.put(id.clone(), &seal(vault, Table::Claims, &id, claim));
}

/// What the claim a bill names (if any) still expects of the insurer, the
/// claim required unchanged when `batch` commits: the billing figures split
/// the bill's balance by it.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn insurer_due_of(
    batch: &mut WriteBatch,
    store: &Store,
    claim: Option<&ClaimId>,
) -> Result<Money, StoreError> {
    let Some(id) = claim else {
        return Ok(Money::ZERO);
    };
    let Some(stored) = store.get::<StoredClaim>(id.as_str())? else {
        return Ok(Money::ZERO);
    };
    batch.require_equal(id.as_str(), &stored);
    Ok(stored.insurer_due())
}

/// The counter [`note_first_decisions`] sets once it has run to the end.
const FIRST_DECISIONS: &str = "claims_first_decisions";

/// Most versions read of one claim.
const MAX_VERSIONS: usize = 10_000;

/// Gives each claim decided before claims kept their first answer that
/// answer, read from its versions, once (a counter records that it ran to
/// the end). Call it at start-up and before an offline recount, ahead of
/// the figures' recount. Returns how many claims it changed.
///
/// # Errors
/// [`PatientError`] on a read or write failure.
pub async fn note_first_decisions(store: &Store) -> Result<usize, PatientError> {
    const BATCH: usize = 512;
    if store.counter(FIRST_DECISIONS)? > 0 {
        return Ok(0);
    }
    let mut after: Option<String> = None;
    let mut noted = 0;
    loop {
        let page = store.scan::<StoredClaim>(after.as_deref(), BATCH)?;
        let mut batch = WriteBatch::new();
        let Some((last, _)) = page.last() else {
            batch.set_counter(FIRST_DECISIONS, 1);
            store.write(batch).await?;
            return Ok(noted);
        };
        after = Some(last.clone());
        for (key, claim) in page {
            if claim.first_decision.is_some() {
                continue;
            }
            let versions: Vec<(String, ClaimVersion)> =
                store.scan_prefix(&format!("{key}/"), MAX_VERSIONS)?;
            let first = versions.iter().map(|(_, v)| &v.0).find(|v| {
                matches!(
                    v.status,
                    ClaimStatus::Approved | ClaimStatus::PartiallyApproved | ClaimStatus::Denied
                )
            });
            if let Some(first) = first {
                let first_decision = Some(FirstDecision {
                    status: first.status,
                    at: first.at,
                });
                batch.require_equal(key.as_str(), &claim);
                batch.put(
                    key.as_str(),
                    &StoredClaim {
                        first_decision,
                        ..claim
                    },
                );
                noted += 1;
            }
        }
        if !batch.is_empty() {
            store.write(batch).await?;
        }
    }
}

/// A claim as stored and opened.
///
/// # Errors
/// [`PatientError`] on a read failure or a reason that does not open.
pub fn load(
    store: &Store,
    vault: &Vault,
    id: &ClaimId,
) -> Result<Option<(StoredClaim, Claim)>, PatientError> {
    let Some(stored) = store.get::<StoredClaim>(id.as_str())? else {
        return Ok(None);
    };
    let claim = open(vault, stored.clone())?;
    Ok(Some((stored, claim)))
}

/// A claim's versions, oldest first, at most `limit`, opened.
///
/// # Errors
/// [`PatientError`] on a read failure or a reason that does not open.
pub fn versions(
    store: &Store,
    vault: &Vault,
    id: &ClaimId,
    limit: usize,
) -> Result<Vec<Claim>, PatientError> {
    let rows: Vec<(String, ClaimVersion)> = store.scan_prefix(&format!("{id}/"), limit)?;
    rows.into_iter()
        .map(|(key, v)| Ok(open_at(vault, Table::ClaimVersions, &key, v.0)?))
        .collect()
}

/// Up to `limit` stored claims after `after`, by id.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn scan(
    store: &Store,
    after: Option<&ClaimId>,
    limit: usize,
) -> Result<Vec<StoredClaim>, StoreError> {
    Ok(store
        .scan::<StoredClaim>(after.map(ClaimId::as_str), limit)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// Why a decision cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not from the claim's current state.
    #[error("{0}")]
    Transition(String),
    /// A field of the decision is missing or wrong.
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
}

fn field(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Field {
        field,
        message: message.into(),
    }
}

/// Most characters of a denial's reason.
pub const MAX_REASON: usize = 500;

impl Claim {
    /// The claim after `decision`, made by `by` at `at`; `due` is what is
    /// still owed on the bill (the most an insurer's payment may be).
    ///
    /// # Errors
    /// [`Refusal`] for a transition its state does not allow, or a field
    /// the decision lacks or gets wrong.
    pub fn decided(
        &self,
        decision: &medrelay_protocol::claim::ClaimDecision,
        due: Money,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Claim, Refusal> {
        use ClaimStatus as S;
        let mut next = self.clone();
        next.version += 1;
        next.status = decision.status;
        next.by = by.clone();
        next.at = at;
        let deciding = matches!(self.status, S::Submitted | S::InReview);
        let allowed = match decision.status {
            S::InReview => self.status == S::Submitted,
            S::Approved | S::PartiallyApproved | S::Denied => deciding,
            S::Paid => matches!(self.status, S::Approved | S::PartiallyApproved),
            S::Draft | S::Submitted => {
                return Err(field(
                    "status",
                    "a claim is submitted through POST /api/bills/{billId}/claim/submit",
                ));
            }
        };
        if !allowed {
            return Err(Refusal::Transition(format!(
                "a {} claim cannot become {}",
                self.status.as_str(),
                decision.status.as_str()
            )));
        }
        match decision.status {
            S::Approved => {
                if decision
                    .approved_amount
                    .is_some_and(|a| a != self.claim_amount)
                {
                    return Err(field(
                        "approvedAmount",
                        format!(
                            "an approval is for the whole claim, {}; use partially_approved",
                            self.claim_amount
                        ),
                    ));
                }
                next.approved_amount = Some(self.claim_amount);
            }
            S::PartiallyApproved => {
                let amount = decision
                    .approved_amount
                    .ok_or_else(|| field("approvedAmount", "approvedAmount is required"))?;
                let cents = amount
                    .check(self.claim_amount)
                    .map_err(|e| field("approvedAmount", e.to_string()))?;
                if cents == Money::ZERO || cents == self.claim_amount {
                    return Err(field(
                        "approvedAmount",
                        format!(
                            "must be more than 0 and less than the claim, {}",
                            self.claim_amount
                        ),
                    ));
                }
                next.approved_amount = Some(cents);
            }
            S::Denied => {
                let reason = decision.reason.as_deref().map(str::trim).unwrap_or("");
                if reason.is_empty()
                    || reason.chars().count() > MAX_REASON
                    || reason.chars().any(|c| c.is_control() && c != '\n')
                {
                    return Err(field(
                        "reason",
                        format!("a denial gives its reason, 1 to {MAX_REASON} characters"),
                    ));
                }
                next.reason = Some(reason.to_owned());
                next.approved_amount = None;
            }
            S::Paid => {
                let approved = self.approved_amount.unwrap_or(Money::ZERO);
                let paid = decision.paid_amount.unwrap_or(approved);
                let ceiling = if due < approved { due } else { approved };
                let paid = paid.check(ceiling).map_err(|e| {
                    field(
                        "paidAmount",
                        format!("{e} (the approved amount still owed on the bill)"),
                    )
                })?;
                if paid == Money::ZERO {
                    return Err(field("paidAmount", "must be more than 0"));
                }
                next.paid_amount = Some(paid);
            }
            S::InReview | S::Draft | S::Submitted => {}
        }
        if matches!(
            decision.status,
            S::Approved | S::PartiallyApproved | S::Denied
        ) && next.first_decision.is_none()
        {
            next.first_decision = Some(FirstDecision {
                status: decision.status,
                at,
            });
        }
        Ok(next)
    }
}
