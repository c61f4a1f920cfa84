//! The billing history of the `analytics` benchmark: P bills over the 365
//! days from the first, one payment each, written offline.
//!
//! Bill i is written on day i mod 365 for 50.00 to 249.99. Six in ten are
//! paid in full and two part-paid, two days later; the other two have a
//! payment the gateway refused. One in five has an insurance claim,
//! answered five days after the bill (a third denied, a third approved, a
//! third part-approved; half the approvals paid); one in fifty has a
//! refund of 10.00 three days after its payment. Only the records the
//! recount reads are written: bills, claims and payments.

use std::path::Path;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay_actors::billing::claims::{FirstDecision, StoredClaim};
use medrelay_actors::billing::payments::{PaymentRecord, RefundMade};
use medrelay_actors::billing::{self, Bill};
use medrelay_actors::hub::EventHub;
use medrelay_actors::phi::Vault;
use medrelay_actors::store::{Store, StoreConfig, WriteBatch};
use medrelay_protocol::billing::{BillStatus, ServiceLine};
use medrelay_protocol::claim::ClaimStatus;
use medrelay_protocol::payment::{PaymentMethod, PaymentStatus, PaymentStep};
use medrelay_protocol::{BillId, ClaimId, Money, PatientId, PaymentId, UserId};

/// Patients the bills are spread over.
const PATIENTS: usize = 1_000;

/// Writes `count` bills, their payments and claims into the store at
/// `db` (sealing bills' lines with the key file at `key`, which the server
/// opens as its own).
///
/// # Errors
/// A storage or key-file error.
pub async fn seed(db: &Path, key: &Path, count: usize, first: Date) -> anyhow::Result<()> {
    let store = Store::open(db, StoreConfig::default(), EventHub::new(16))?;
    let vault = Vault::open(key)?;
    let admin = UserId::parse("usr_bench")?;
    let mut batch = WriteBatch::new();
    for i in 0..count {
        let (bill, claim, payment) = records(i, first, &admin)?;
        batch.put(bill.bill_id.as_str(), &billing::seal(&vault, &bill));
        if let Some(claim) = claim {
            batch.put(claim.claim_id.as_str(), &claim);
        }
        batch.put(payment.payment_id.as_str(), &payment);
        if (i + 1) % 5_000 == 0 {
            store.write(std::mem::take(&mut batch)).await?;
        }
    }
    store.write(batch).await?;
    store.close().await;
    Ok(())
}

/// Bill i, its claim (one in five) and its payment.
fn records(
    i: usize,
    first: Date,
    admin: &UserId,
) -> anyhow::Result<(Bill, Option<StoredClaim>, PaymentRecord)> {
    let day = first.checked_add(i64::try_from(i % 365)?.days())?;
    let written = day
        .at(9, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        + SignedDuration::from_mins(i64::try_from((i / 365) % 480)?);
    let total = Money::from_cents(5_000 + i64::try_from(i % 20_000)?);
    let paid = match i % 10 {
        0..=5 => total,
        6 | 7 => Money::from_cents(total.in_cents().unwrap_or(0) / 2),
        _ => Money::ZERO,
    };
    let bill_id = BillId::parse(&format!("bill_y{i:07}"))?;
    let patient_id = PatientId::parse(&format!("pat_y{:04}", i % PATIENTS))?;
    let claim = (i % 5 == 0)
        .then(|| claim(i, &bill_id, &patient_id, total, written, admin))
        .transpose()?;
    let status = if paid == total {
        BillStatus::Paid
    } else if paid > Money::ZERO {
        BillStatus::PartiallyPaid
    } else {
        BillStatus::Issued
    };
    let bill = Bill {
        bill_id: bill_id.clone(),
        patient_id: patient_id.clone(),
        appointment_id: None,
        services: vec![ServiceLine {
            service_id: "visit".into(),
            description: "Consultation".into(),
            amount: total,
        }],
        insurance_claim: None,
        claim_id: claim.as_ref().map(|c| c.claim_id.clone()),
        total,
        paid,
        status,
        created_by: admin.clone(),
        created_at: written,
        updated_at: None,
        revision: 1,
    };
    let settled = written + SignedDuration::from_hours(48);
    let (amount, outcome) = if paid > Money::ZERO {
        (paid, PaymentStatus::Succeeded)
    } else {
        (total, PaymentStatus::Failed)
    };
    let mut payment = PaymentRecord {
        payment_id: PaymentId::parse(&format!("pay_y{i:07}"))?,
        patient_id,
        amount,
        method: PaymentMethod::Cash,
        status: outcome,
        requested: vec![bill_id.clone()],
        allocations: Vec::new(),
        credited: Money::ZERO,
        refunded: Money::ZERO,
        gateway_reference: None,
        card_token: None,
        card_last4: None,
        refunding: None,
        refunds_asked: 0,
        refunds_made: Vec::new(),
        history: vec![step(outcome, settled)],
        idempotency_key: None,
        created_by: admin.clone(),
        created_at: written,
    };
    if outcome == PaymentStatus::Succeeded && i % 50 == 1 {
        let at = settled + SignedDuration::from_hours(72);
        let back = Money::from_cents(1_000);
        payment.refunded = back;
        payment.refunds_made.push(RefundMade { at, amount: back });
        payment
            .history
            .push(step(PaymentStatus::PartiallyRefunded, at));
        payment.status = PaymentStatus::PartiallyRefunded;
    }
    Ok((bill, claim, payment))
}

fn claim(
    i: usize,
    bill_id: &BillId,
    patient_id: &PatientId,
    total: Money,
    written: Timestamp,
    admin: &UserId,
) -> anyhow::Result<StoredClaim> {
    let answered = written + SignedDuration::from_hours(120);
    let half = Money::from_cents(total.in_cents().unwrap_or(0) / 2);
    let (first, approved) = match (i / 5) % 3 {
        0 => (ClaimStatus::Denied, None),
        1 => (ClaimStatus::Approved, Some(total)),
        _ => (ClaimStatus::PartiallyApproved, Some(half)),
    };
    let paid = approved.filter(|_| (i / 15) % 2 == 0);
    Ok(StoredClaim {
        claim_id: ClaimId::parse(&format!("clm_y{i:07}"))?,
        bill_id: bill_id.clone(),
        patient_id: patient_id.clone(),
        insurance_provider: "Bench Mutual".into(),
        claim_amount: total,
        status: if paid.is_some() {
            ClaimStatus::Paid
        } else {
            first
        },
        approved_amount: approved,
        paid_amount: paid,
        reason: None,
        version: 3,
        at: answered,
        by: admin.clone(),
        first_decision: Some(FirstDecision {
            status: first,
            at: answered,
        }),
    })
}

fn step(status: PaymentStatus, at: Timestamp) -> PaymentStep {
    PaymentStep {
        status,
        at,
        by: None,
        note: None,
    }
}
