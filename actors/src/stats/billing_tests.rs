//! The billing figures: what each record counts, and that payments and
//! refunds applied to bills with claims keep them equal to a recount.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::claim::ClaimStatus;
use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};
use medrelay_protocol::{ClaimId, Money, PaymentId, UserId};

use super::billing::*;
use super::{Counted, Figures, rebuild};
use crate::billing::claims::{self, Claim, FirstDecision};
use crate::billing::payment_tests::pending_payment;
use crate::billing::payments::{self, PaymentRecord, RefundMade};
use crate::billing::tests::{bill, money};
use crate::billing::{self, BillChange};
use crate::phi::Vault;
use crate::store::WriteBatch;
use crate::test_support::{register_patient, store_and_system};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn state(status: BillStatus, total: &str, paid: &str, insurer_due: &str) -> BillState {
    BillState {
        created_at: at("2026-03-01T10:00:00Z"),
        total: money(total),
        paid: money(paid),
        status,
        insurer_due: money(insurer_due),
    }
}

fn one(rows: Vec<(String, Figures)>) -> (String, Vec<(u16, i64)>) {
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (key, f) = rows.into_iter().next().unwrap();
    (key, f.into_iter().filter(|(_, v)| *v != 0).collect())
}

#[test]
fn a_bill_charges_once_issued_and_splits_what_it_owes_by_its_claim() {
    let utc = TimeZone::UTC;
    let day = "b/2026-03-01/clinic".to_owned();
    // 100.00 billed, 30.00 paid, 50.00 expected of the insurer.
    assert_eq!(
        one(state(BillStatus::PartiallyPaid, "100.00", "30.00", "50.00").rows(&utc)),
        (
            day.clone(),
            vec![
                (CHARGES, 10_000),
                (BILLS, 1),
                (OWED_BY_PATIENTS, 2_000),
                (OWED_BY_INSURERS, 5_000)
            ]
        )
    );
    // The insurer owes no more than the bill does.
    assert_eq!(
        one(state(BillStatus::PartiallyPaid, "100.00", "30.00", "90.00").rows(&utc)).1,
        vec![(CHARGES, 10_000), (BILLS, 1), (OWED_BY_INSURERS, 7_000)]
    );
    assert_eq!(
        one(state(BillStatus::Paid, "100.00", "100.00", "0").rows(&utc)).1,
        vec![(CHARGES, 10_000), (BILLS, 1)]
    );
    for nothing in [BillStatus::Void, BillStatus::Draft] {
        assert_eq!(one(state(nothing, "100.00", "0", "0").rows(&utc)).1, vec![]);
    }
    // The clinic's day: 10:00 UTC is still 1 March in Honolulu.
    let honolulu = TimeZone::get("Pacific/Honolulu").unwrap();
    let (key, _) = one(state(BillStatus::Issued, "1.00", "0", "0").rows(&honolulu));
    assert_eq!(key, "b/2026-03-01/clinic");
}

/// A cash payment of 80.00 in `status`, written 1 March 09:00 UTC.
fn payment(status: PaymentStatus) -> PaymentRecord {
    let patient = medrelay_protocol::PatientId::parse("pat_1").unwrap();
    let mut p = pending_payment("pay_1", &patient, "80.00", PaymentMethod::Cash);
    p.status = status;
    p.created_at = at("2026-03-01T09:00:00Z");
    p
}

#[test]
fn a_payment_counts_on_the_day_it_succeeded_and_each_refund_on_its_own() {
    let utc = TimeZone::UTC;
    let mut paid = payment(PaymentStatus::Pending)
        .step(
            PaymentStatus::Processing,
            None,
            None,
            at("2026-03-01T09:00:00Z"),
        )
        .step(
            PaymentStatus::Succeeded,
            None,
            None,
            at("2026-03-02T09:00:00Z"),
        );
    paid.refunds_made = vec![
        RefundMade {
            at: at("2026-03-05T09:00:00Z"),
            amount: money("10.00"),
        },
        RefundMade {
            at: at("2026-03-05T11:00:00Z"),
            amount: money("5.50"),
        },
    ];
    paid = paid.step(
        PaymentStatus::PartiallyRefunded,
        None,
        None,
        at("2026-03-05T11:00:00Z"),
    );
    let rows = paid.rows(&utc);
    assert_eq!(
        rows,
        vec![
            (
                "b/2026-03-02/clinic".into(),
                [(COLLECTED, 8_000), (PAYMENTS, 1)].into()
            ),
            ("b/2026-03-05/clinic".into(), [(REFUNDED, 1_000)].into()),
            ("b/2026-03-05/clinic".into(), [(REFUNDED, 550)].into()),
        ]
    );
    // An earlier release kept only the sum: it counts on the last refund's day.
    let mut earlier = payment(PaymentStatus::Pending)
        .step(
            PaymentStatus::Succeeded,
            None,
            None,
            at("2026-03-02T09:00:00Z"),
        )
        .step(
            PaymentStatus::PartiallyRefunded,
            None,
            None,
            at("2026-03-04T09:00:00Z"),
        )
        .step(
            PaymentStatus::PartiallyRefunded,
            None,
            None,
            at("2026-03-06T09:00:00Z"),
        );
    earlier.refunded = money("15.50");
    assert_eq!(
        earlier.rows(&utc)[1],
        ("b/2026-03-06/clinic".into(), [(REFUNDED, 1_550)].into())
    );
    for status in [
        PaymentStatus::Pending,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
    ] {
        assert!(payment(status).rows(&utc).is_empty(), "{status:?}");
    }
}

#[test]
fn a_claim_counts_its_first_answer_and_the_insurers_payment() {
    let utc = TimeZone::UTC;
    let claim = |status, first: Option<ClaimStatus>, paid: Option<&str>| ClaimState {
        first_decision: first.map(|status| FirstDecision {
            status,
            at: at("2026-03-03T12:00:00Z"),
        }),
        status,
        paid_amount: paid.map(money),
        at: at("2026-03-09T12:00:00Z"),
    };
    // Denied first, corrected, resubmitted, approved, paid: still a denial.
    assert_eq!(
        claim(ClaimStatus::Paid, Some(ClaimStatus::Denied), Some("60.00")).rows(&utc),
        vec![
            (
                "b/2026-03-03/clinic".into(),
                [(CLAIMS_ANSWERED, 1), (CLAIMS_DENIED, 1)].into()
            ),
            (
                "b/2026-03-09/clinic".into(),
                [(INSURERS_PAID, 6_000)].into()
            ),
        ]
    );
    assert_eq!(
        claim(ClaimStatus::Approved, Some(ClaimStatus::Approved), None).rows(&utc),
        vec![(
            "b/2026-03-03/clinic".into(),
            [(CLAIMS_ANSWERED, 1), (CLAIMS_CLEAN, 1)].into()
        )]
    );
    assert_eq!(
        claim(
            ClaimStatus::PartiallyApproved,
            Some(ClaimStatus::PartiallyApproved),
            None
        )
        .rows(&utc),
        vec![("b/2026-03-03/clinic".into(), [(CLAIMS_ANSWERED, 1)].into())]
    );
    assert!(
        claim(ClaimStatus::Submitted, None, None)
            .rows(&utc)
            .is_empty()
    );
}

#[tokio::test]
async fn payments_and_refunds_on_bills_with_claims_keep_the_figures_equal_to_a_recount() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let zone = store.stats_zone().clone();
    let by = UserId::parse("usr_admin").unwrap();
    let patient = register_patient(&store, "iris").await.patient_id.unwrap();

    // Two bills of 100.00; the first with a claim of 70.00 at the insurer.
    let mut with_claim = bill("bill_a", &patient);
    with_claim.claim_id = Some(ClaimId::parse("clm_a").unwrap());
    let claim = Claim {
        claim_id: ClaimId::parse("clm_a").unwrap(),
        bill_id: with_claim.bill_id.clone(),
        patient_id: patient.clone(),
        insurance_provider: "Mutual".into(),
        claim_amount: money("70.00"),
        status: ClaimStatus::Submitted,
        approved_amount: None,
        paid_amount: None,
        reason: None,
        version: 2,
        at: Timestamp::now(),
        by: by.clone(),
        first_decision: None,
    };
    let plain = bill("bill_b", &patient);
    let mut batch = WriteBatch::new();
    for (b, due) in [(&with_claim, money("70.00")), (&plain, Money::ZERO)] {
        billing::write(&mut batch, &vault, b, &by, BillChange::Created);
        super::tally(&mut batch, &zone, None, &BillState::of(b, due));
    }
    claims::write(&mut batch, &vault, &claim);
    super::tally(&mut batch, &zone, None, &ClaimState::from(&claim));
    store.write(batch).await.unwrap();
    assert_eq!(
        rebuild::kept(&store).unwrap(),
        rebuild::recount(&store).unwrap()
    );

    // 150.00 pays the oldest first: 100.00 on bill_a, 50.00 on bill_b.
    let mut pending = payment(PaymentStatus::Pending);
    pending.patient_id = patient.clone();
    pending.amount = money("150.00");
    pending.created_at = Timestamp::now() - SignedDuration::from_mins(1);
    let mut batch = WriteBatch::new();
    let paid = payments::apply(&mut batch, &store, &vault, &pending, &by, Timestamp::now())
        .unwrap()
        .unwrap();
    store.write(batch).await.unwrap();
    assert_eq!(
        rebuild::kept(&store).unwrap(),
        rebuild::recount(&store).unwrap()
    );

    // A refund of 120.00 takes back bill_b's 50.00 and 70.00 of bill_a's.
    let mut batch = WriteBatch::new();
    let note = "refund".to_owned();
    let refunded = payments::refund(
        &mut batch,
        &store,
        &vault,
        &paid,
        money("120.00"),
        note,
        &by,
        Timestamp::now(),
    )
    .unwrap();
    store.write(batch).await.unwrap();
    assert_eq!(refunded.refunds_made.len(), 1);
    let kept = rebuild::kept(&store).unwrap();
    assert_eq!(kept, rebuild::recount(&store).unwrap());
    // bill_a owes 70.00 again, all of it expected of the insurer; bill_b
    // owes its patient all of its 100.00 again.
    let today = super::billing::key(Timestamp::now().to_zoned(zone).date());
    let row = &kept[&today];
    assert_eq!(
        (row[&OWED_BY_INSURERS], row[&OWED_BY_PATIENTS]),
        (7_000, 10_000),
        "{row:?}"
    );
    assert_eq!(
        (row[&COLLECTED], row[&REFUNDED], row[&CHARGES]),
        (15_000, 12_000, 20_000)
    );

    // A claim changed under a payment's write makes the payment try again.
    let mut batch = WriteBatch::new();
    let mut again = payment(PaymentStatus::Pending);
    again.payment_id = PaymentId::parse("pay_2").unwrap();
    again.patient_id = patient.clone();
    again.amount = money("1.00");
    payments::apply(&mut batch, &store, &vault, &again, &by, Timestamp::now())
        .unwrap()
        .unwrap();
    let mut denied = claim.clone();
    denied.status = ClaimStatus::Denied;
    denied.version = 3;
    let mut first = WriteBatch::new();
    claims::write(&mut first, &vault, &denied);
    store.write(first).await.unwrap();
    assert!(matches!(
        store.write(batch).await,
        Err(crate::store::WriteError::Changed { .. })
    ));
}

#[tokio::test]
async fn claims_an_earlier_release_decided_get_their_first_answer_from_their_versions() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let by = UserId::parse("usr_admin").unwrap();
    let patient = register_patient(&store, "otto").await.patient_id.unwrap();
    let mut claim = Claim {
        claim_id: ClaimId::parse("clm_old").unwrap(),
        bill_id: bill("bill_old", &patient).bill_id,
        patient_id: patient,
        insurance_provider: "Mutual".into(),
        claim_amount: money("70.00"),
        status: ClaimStatus::Draft,
        approved_amount: None,
        paid_amount: None,
        reason: None,
        version: 1,
        at: at("2026-03-01T09:00:00Z"),
        by,
        first_decision: None,
    };
    // Draft, submitted, denied, corrected and submitted again, as an
    // earlier release wrote them: no first answer kept.
    let mut batch = WriteBatch::new();
    for (status, when) in [
        (ClaimStatus::Draft, "2026-03-01T09:00:00Z"),
        (ClaimStatus::Submitted, "2026-03-02T09:00:00Z"),
        (ClaimStatus::Denied, "2026-03-03T09:00:00Z"),
        (ClaimStatus::Submitted, "2026-03-04T09:00:00Z"),
    ] {
        claim.status = status;
        claim.at = at(when);
        claims::write(&mut batch, &vault, &claim);
        claim.version += 1;
    }
    store.write(batch).await.unwrap();

    assert_eq!(claims::note_first_decisions(&store).await.unwrap(), 1);
    let (stored, _) = claims::load(&store, &vault, &claim.claim_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.first_decision,
        Some(FirstDecision {
            status: ClaimStatus::Denied,
            at: at("2026-03-03T09:00:00Z")
        })
    );
    assert_eq!(
        stored.status,
        ClaimStatus::Submitted,
        "nothing else changes"
    );
    // Once: a second start reads nothing.
    assert_eq!(claims::note_first_decisions(&store).await.unwrap(), 0);
}
