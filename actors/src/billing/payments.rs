//! Payments at rest, and how one is applied to a patient's bills.
//!
//! A payment pays the bills it names, in order, or else the patient's
//! oldest open bills; what is left becomes credit on the account. Applying
//! it changes the bills, the account and the payment in one transaction,
//! each compare-and-swapped ([`apply`]). A refund takes back credit first,
//! then what the payment paid on its bills, newest allocation first
//! ([`refund`]), reopening them.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::payment::{Allocation, PaymentMethod, PaymentStatus, PaymentStep};
use medrelay_protocol::{BillId, Channel, Event, Money, PatientId, PaymentId, UserId};
use serde::{Deserialize, Serialize};

use super::notices::{BillingNotice, NoticeKind, notice_key};
use super::{BillChange, BillingAccount, StoredBill};
use crate::patients::PatientError;
use crate::phi::Vault;
use crate::stats::billing::{self as b, BillState};
use crate::stats::{self, Counted, Figures};
use crate::store::{Record, Store, StoreError, WriteBatch};

/// A payment (key: payment id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    /// Its id.
    pub payment_id: PaymentId,
    /// Who paid.
    pub patient_id: PatientId,
    /// What was paid.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The bills it was asked to pay, in order (empty: the oldest open).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<BillId>,
    /// What it paid on each bill.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// What went to credit (less what refunds took back).
    pub credited: Money,
    /// What was given back.
    pub refunded: Money,
    /// The gateway's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_reference: Option<String>,
    /// For a card payment until it is charged: the card gateway's token for
    /// the card (cleared once the charge is final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_token: Option<String>,
    /// The card's last four digits, as the card gateway gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<String>,
    /// A refund asked of the gateway and not yet recorded: written before
    /// the gateway is asked, so that a stop in between is completed by
    /// the sweep rather than lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunding: Option<RefundAsked>,
    /// Refunds asked of the gateway so far, made or refused: numbers each
    /// refund's key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refunds_asked: u32,
    /// The refunds made, oldest first (the billing figures count each on
    /// its day).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds_made: Vec<RefundMade>,
    /// Its steps, oldest first.
    pub history: Vec<PaymentStep>,
    /// The store key of the request's idempotency record, if it had one:
    /// settling it records the answer there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Who recorded it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
}

impl Record for PaymentRecord {
    const TABLE: crate::store::Table = crate::store::Table::Payments;
    const VERSION: u16 = 1;
}

impl PaymentRecord {
    /// The record moved to `status`, the step noted.
    pub fn step(
        mut self,
        status: PaymentStatus,
        by: Option<UserId>,
        note: Option<String>,
        at: Timestamp,
    ) -> Self {
        self.status = status;
        self.history.push(PaymentStep {
            status,
            at,
            by,
            note,
        });
        self
    }

    /// What is left to refund.
    pub fn refundable(&self) -> Money {
        self.amount.less(self.refunded)
    }
}

/// A refund made of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundMade {
    /// When it was recorded.
    pub at: Timestamp,
    /// How much went back.
    pub amount: Money,
}

/// A payment counts on the day it succeeded, each refund on its own day
/// (`stats::billing`).
impl Counted for PaymentRecord {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        let mut rows = Vec::new();
        if matches!(
            self.status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
        ) {
            let at = self
                .history
                .iter()
                .find(|step| step.status == PaymentStatus::Succeeded)
                .map_or(self.created_at, |step| step.at);
            let f = [(b::COLLECTED, b::cents(self.amount)), (b::PAYMENTS, 1)].into();
            rows.push(b::row(at, zone, f));
        }
        let mut logged = 0;
        for refund in &self.refunds_made {
            logged += b::cents(refund.amount);
            rows.push(b::row(
                refund.at,
                zone,
                [(b::REFUNDED, b::cents(refund.amount))].into(),
            ));
        }
        // Refunds an earlier release made are in `refunded` alone: they count
        // on the day of the last refund step.
        let unlogged = b::cents(self.refunded) - logged;
        if unlogged > 0 {
            let at = self
                .history
                .iter()
                .rev()
                .find(|step| {
                    matches!(
                        step.status,
                        PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
                    )
                })
                .map_or(self.created_at, |step| step.at);
            rows.push(b::row(at, zone, [(b::REFUNDED, unlogged)].into()));
        }
        rows
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A refund journalled on its payment before the gateway is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundAsked {
    /// How much.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub by: UserId,
    /// The store key of the request's idempotency record, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_key: Option<String>,
    /// The request's own id: tells it whether its refund was journalled.
    pub attempt: String,
    /// When it was journalled (the gateway forgets keys: past a day, the
    /// refund is looked for before it is asked again).
    pub asked_at: Timestamp,
    /// The refund's number on this payment, counting refusals
    /// (`<payment>-refund-<n>` at the gateway, which keeps a key's first
    /// answer, refusals included).
    pub number: u32,
}

/// An entry of a patient's payment index (key: `<patient>/<payment>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentIndex {}

impl Record for PaymentIndex {
    const TABLE: crate::store::Table = crate::store::Table::PatientPayments;
    const VERSION: u16 = 1;
}

/// A payment not yet final (key: payment id): start-up settles each again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsettledPayment {}

impl Record for UnsettledPayment {
    const TABLE: crate::store::Table = crate::store::Table::PaymentQueue;
    const VERSION: u16 = 1;
}

/// A card gateway's event already acted on (key: the event's id): an event
/// delivered again changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayEvent {
    /// When it first arrived.
    pub received_at: Timestamp,
}

impl Record for GatewayEvent {
    const TABLE: crate::store::Table = crate::store::Table::GatewayEvents;
    const VERSION: u16 = 1;
}

/// Adds to `batch` a new payment, `pending` until its actor settles it.
pub fn start(batch: &mut WriteBatch, payment: &PaymentRecord) {
    batch.require_absent(crate::store::Table::Payments, payment.payment_id.as_str());
    batch.put(payment.payment_id.as_str(), &UnsettledPayment {});
    write(batch, payment);
}

/// Up to `limit` payments not yet final, by id.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn unsettled(store: &Store, limit: usize) -> Result<Vec<PaymentId>, StoreError> {
    Ok(store
        .scan::<UnsettledPayment>(None, limit)?
        .into_iter()
        .filter_map(|(key, _)| PaymentId::parse(&key).ok())
        .collect())
}

/// The answer to the request that made or refunded a payment:
/// `{"paymentId","status"}`, as kept for its idempotency key.
pub fn written_body(payment: &PaymentRecord) -> String {
    serde_json::to_string(&medrelay_protocol::payment::PaymentWritten {
        payment_id: payment.payment_id.clone(),
        status: payment.status,
    })
    .expect("plain data serialises to JSON")
}

/// Adds to `batch` the payment, its index entry, a `payment_changed`
/// event on `billing:<patientId>`, and the notice its state calls for.
pub fn write(batch: &mut WriteBatch, payment: &PaymentRecord) {
    let at = payment
        .history
        .last()
        .map_or(payment.created_at, |step| step.at);
    batch.event(
        Channel::Billing(payment.patient_id.clone()),
        Event::PaymentChanged {
            payment_id: payment.payment_id.clone(),
            patient_id: payment.patient_id.clone(),
            status: payment.status,
            amount: payment.amount,
            refunded: payment.refunded,
            at,
        },
    );
    notice(batch, payment, at);
    batch.put(
        format!("{}/{}", payment.patient_id, payment.payment_id),
        &PaymentIndex {},
    );
    batch.put(payment.payment_id.as_str(), payment);
}

/// Adds to `batch` the notice a payment's new state calls for, if any:
/// a receipt, a refusal, or a refund.
fn notice(batch: &mut WriteBatch, payment: &PaymentRecord, at: Timestamp) {
    let (kind, amount) = match payment.status {
        PaymentStatus::Succeeded => (NoticeKind::Receipt, payment.amount),
        PaymentStatus::Failed | PaymentStatus::Canceled => {
            (NoticeKind::PaymentFailed, payment.amount)
        }
        PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded => {
            (NoticeKind::Refund, payment.refunded)
        }
        PaymentStatus::Pending | PaymentStatus::Processing => return,
    };
    let subject = payment.payment_id.as_str();
    batch.put(
        notice_key(at, subject, &format!("s{}", payment.history.len())),
        &BillingNotice {
            patient_id: payment.patient_id.clone(),
            kind,
            subject_id: subject.to_owned(),
            bill_id: None,
            amount,
            status: payment.status.as_str().to_owned(),
        },
    );
}

/// The ids of a patient's payments, by id, at most `limit`.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn of_patient(
    store: &Store,
    patient: &PatientId,
    limit: usize,
) -> Result<Vec<PaymentId>, StoreError> {
    let prefix = format!("{patient}/");
    Ok(store
        .scan_prefix::<PaymentIndex>(&prefix, limit)?
        .into_iter()
        .filter_map(|(key, _)| PaymentId::parse(&key[prefix.len()..]).ok())
        .collect())
}

/// Why a payment cannot be applied as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A named bill is not this patient's open bill.
    #[error("bill {0} is not an open bill of this patient")]
    NotOpen(BillId),
    /// The patient has no billing account.
    #[error("the patient has no billing account")]
    NoAccount,
}

/// Adds to `batch` the payment applied: what it pays on each bill (named,
/// or else the oldest open, read here), the bills' new state, credit for the rest, the
/// payment `succeeded`. Every record it reads is compare-and-swapped, so a
/// concurrent change makes the write fail with `Changed` and the caller
/// applies again.
///
/// # Errors
/// [`ApplyError`] for a bill that is not the patient's open bill;
/// [`PatientError`] on a read failure.
pub fn apply(
    batch: &mut WriteBatch,
    store: &Store,
    vault: &Vault,
    payment: &PaymentRecord,
    by: &UserId,
    at: Timestamp,
) -> Result<Result<PaymentRecord, ApplyError>, PatientError> {
    let Some(mut account) = store.get::<BillingAccount>(payment.patient_id.as_str())? else {
        return Ok(Err(ApplyError::NoAccount));
    };
    batch.require_equal(payment.patient_id.as_str(), &account);
    let mut left = payment.amount;
    let mut allocations = Vec::new();
    // The oldest open bills, read once; or the bills named, each read (and
    // checked) only when the money reaches it.
    let mut oldest = if payment.requested.is_empty() {
        super::open_bills(store, &payment.patient_id)?
    } else {
        Vec::new()
    }
    .into_iter();
    let mut named = payment.requested.iter();
    while left > Money::ZERO {
        let stored = if payment.requested.is_empty() {
            let Some(stored) = oldest.next() else { break };
            stored
        } else {
            let Some(id) = named.next() else { break };
            let stored = store.get::<StoredBill>(id.as_str())?;
            let Some(stored) =
                stored.filter(|b| b.patient_id == payment.patient_id && b.status.is_open())
            else {
                return Ok(Err(ApplyError::NotOpen(id.clone())));
            };
            stored
        };
        let id = stored.bill_id.clone();
        let due = stored.total.less(stored.paid);
        let pay = if left < due { left } else { due };
        if pay == Money::ZERO {
            continue;
        }
        batch.require_equal(id.as_str(), &stored);
        let paid = stored.paid.plus(pay).unwrap_or(stored.total);
        let change = (BillChange::Paid, by, at);
        settle(batch, (store, vault), stored, paid, change)?;
        left = left.less(pay);
        allocations.push(Allocation {
            bill_id: id,
            amount: pay,
        });
    }
    account.credit = account.credit.plus(left).unwrap_or(account.credit);
    batch.put(payment.patient_id.as_str(), &account);
    let mut paid = payment
        .clone()
        .step(PaymentStatus::Succeeded, None, None, at);
    paid.allocations = allocations;
    paid.credited = left;
    write(batch, &paid);
    stats::tally(batch, store.stats_zone(), Some(payment), &paid);
    Ok(Ok(paid))
}

/// Adds to `batch` the stored bill with `paid` now paid on it, the state
/// that follows from it, and what that did to the figures (the bill's claim
/// required unchanged: the figures split what the bill owes by it).
///
/// # Errors
/// [`PatientError`] on a read failure or lines that do not open.
fn settle(
    batch: &mut WriteBatch,
    (store, vault): (&Store, &Vault),
    stored: StoredBill,
    paid: Money,
    (change, by, at): (BillChange, &UserId, Timestamp),
) -> Result<(), PatientError> {
    let due = super::claims::insurer_due_of(batch, store, stored.claim_id.as_ref())?;
    let before = BillState::stored(&stored, due);
    let mut bill = super::open(vault, stored)?;
    bill.paid = paid;
    bill.status = if paid >= bill.total {
        BillStatus::Paid
    } else if paid > Money::ZERO {
        BillStatus::PartiallyPaid
    } else {
        BillStatus::Issued
    };
    bill.revision += 1;
    bill.updated_at = Some(at);
    super::write(batch, vault, &bill, by, change);
    stats::tally(
        batch,
        store.stats_zone(),
        Some(&before),
        &BillState::of(&bill, due),
    );
    Ok(())
}

/// Adds to `batch` a refund of `amount` (at most [`PaymentRecord::refundable`]):
/// credit first, then what the payment paid on its bills, newest first.
///
/// # Errors
/// [`PatientError`] on a read failure.
#[allow(clippy::too_many_arguments)]
pub fn refund(
    batch: &mut WriteBatch,
    store: &Store,
    vault: &Vault,
    payment: &PaymentRecord,
    amount: Money,
    note: String,
    by: &UserId,
    at: Timestamp,
) -> Result<PaymentRecord, PatientError> {
    let mut refunded = payment.clone();
    let mut left = amount;
    if let Some(mut account) = store.get::<BillingAccount>(payment.patient_id.as_str())? {
        // Credit already spent elsewhere is not taken back twice.
        let from_credit = [left, refunded.credited, account.credit]
            .into_iter()
            .min()
            .unwrap_or(Money::ZERO);
        if from_credit > Money::ZERO {
            batch.require_equal(payment.patient_id.as_str(), &account);
            account.credit = account.credit.less(from_credit);
            batch.put(payment.patient_id.as_str(), &account);
            refunded.credited = refunded.credited.less(from_credit);
            left = left.less(from_credit);
        }
    }
    for allocation in refunded.allocations.iter_mut().rev() {
        if left == Money::ZERO {
            break;
        }
        let back = if left < allocation.amount {
            left
        } else {
            allocation.amount
        };
        if back == Money::ZERO {
            continue;
        }
        if let Some(stored) = store.get::<StoredBill>(allocation.bill_id.as_str())? {
            batch.require_equal(allocation.bill_id.as_str(), &stored);
            if stored.status != BillStatus::Void {
                let paid = stored.paid.less(back);
                let change = (BillChange::Refunded, by, at);
                settle(batch, (store, vault), stored, paid, change)?;
            }
        }
        allocation.amount = allocation.amount.less(back);
        left = left.less(back);
    }
    refunded.refunded = refunded.refunded.plus(amount).unwrap_or(refunded.amount);
    refunded.refunds_made.push(RefundMade { at, amount });
    let status = if refunded.refunded >= refunded.amount {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartiallyRefunded
    };
    let refunded = refunded.step(status, Some(by.clone()), Some(note), at);
    write(batch, &refunded);
    stats::tally(batch, store.stats_zone(), Some(payment), &refunded);
    Ok(refunded)
}
