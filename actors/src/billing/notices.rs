//! Billing notices to the patient (category `billing`): a bill issued, a
//! payment received or refused, a refund, an insurer's decision. Each is
//! written in the transaction of the change it tells of, under a key that
//! sorts by time (`<ms, 13 digits>/<bill, payment or claim>/<change>`), and
//! the reminder scheduler sends it like a notice, once: the same durable,
//! exactly-once path as appointment reminders.

use jiff::Timestamp;
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::claim::ClaimStatus;
use medrelay_protocol::{Money, PatientId};
use serde::{Deserialize, Serialize};

use super::Bill;
use super::claims::Claim;
use crate::store::{Record, Table, WriteBatch};

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A bill was issued (`amount`: its total).
    BillIssued,
    /// A payment succeeded (`amount`: what was paid).
    Receipt,
    /// A payment failed or was canceled (`amount`: what was asked).
    PaymentFailed,
    /// Part or all of a payment was given back (`amount`: refunded so far).
    Refund,
    /// The insurer decided on a claim (`amount`: what it approved).
    ClaimDecided,
}

/// A billing notice waiting to be sent (table `billing_notices`). A plain
/// struct, not a tagged enum: amounts must not pass through serde's
/// buffering, which reads numbers as floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingNotice {
    /// Who it goes to.
    pub patient_id: PatientId,
    /// What it tells.
    pub kind: NoticeKind,
    /// The bill, payment or claim it is about.
    pub subject_id: String,
    /// The bill a claim is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_id: Option<String>,
    /// The amount it names (see [`NoticeKind`]).
    pub amount: Money,
    /// The payment's or the claim's state, as on the wire.
    pub status: String,
}

impl Record for BillingNotice {
    const TABLE: Table = Table::BillingNotices;
    const VERSION: u16 = 1;
}

/// The key of a notice due at `at` about `subject`'s change `change`.
pub fn notice_key(at: Timestamp, subject: &str, change: &str) -> String {
    format!("{:013}/{subject}/{change}", at.as_millisecond().max(0))
}

/// The time a notice key is due.
pub fn due_of(key: &str) -> Option<Timestamp> {
    let ms: i64 = key.get(..13)?.parse().ok()?;
    Timestamp::from_millisecond(ms).ok()
}

/// Adds to `batch` the notice of a bill that this change issued: written
/// `Issued`, or moved from `Draft` to `Issued` (`before`: the bill before
/// the change, none for a new one).
pub fn bill_changed(batch: &mut WriteBatch, before: Option<&Bill>, bill: &Bill, at: Timestamp) {
    let issued =
        bill.status == BillStatus::Issued && before.is_none_or(|b| b.status == BillStatus::Draft);
    if !issued {
        return;
    }
    let subject = bill.bill_id.as_str();
    batch.put(
        notice_key(at, subject, &format!("r{}", bill.revision)),
        &BillingNotice {
            patient_id: bill.patient_id.clone(),
            kind: NoticeKind::BillIssued,
            subject_id: subject.to_owned(),
            bill_id: None,
            amount: bill.total,
            status: "issued".to_owned(),
        },
    );
}

/// Adds to `batch` the notice of an insurer's decision on `claim`, if its
/// new state is one.
pub fn claim(batch: &mut WriteBatch, claim: &Claim) {
    let decided = matches!(
        claim.status,
        ClaimStatus::Approved
            | ClaimStatus::PartiallyApproved
            | ClaimStatus::Denied
            | ClaimStatus::Paid
    );
    if !decided {
        return;
    }
    let subject = claim.claim_id.as_str();
    batch.put(
        notice_key(claim.at, subject, &format!("v{}", claim.version)),
        &BillingNotice {
            patient_id: claim.patient_id.clone(),
            kind: NoticeKind::ClaimDecided,
            subject_id: subject.to_owned(),
            bill_id: Some(claim.bill_id.to_string()),
            amount: claim.approved(),
            status: claim.status.as_str().to_owned(),
        },
    );
}
