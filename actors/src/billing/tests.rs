use jiff::Timestamp;
use medrelay_protocol::billing::{BillStatus, ServiceLine};
use medrelay_protocol::{BillId, Money, PatientId, UserId};

use super::*;
use crate::patients::{self, PatientRecord};
use crate::phi::Vault;
use crate::store::WriteBatch;
use crate::test_support::{register_patient, store_and_system};

pub(crate) fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

pub(crate) fn bill(id: &str, patient: &PatientId) -> Bill {
    Bill {
        bill_id: BillId::parse(id).unwrap(),
        patient_id: patient.clone(),
        appointment_id: None,
        services: vec![ServiceLine {
            service_id: "srv001".into(),
            description: "Allergy panel".into(),
            amount: money("100.00"),
        }],
        insurance_claim: None,
        claim_id: None,
        total: money("100.00"),
        paid: Money::ZERO,
        status: BillStatus::Issued,
        created_by: UserId::parse("usr_admin").unwrap(),
        created_at: Timestamp::now(),
        updated_at: None,
        revision: 1,
    }
}

#[tokio::test]
async fn registering_a_patient_opens_their_account() {
    let (_dir, store, _system) = store_and_system();
    let registered = register_patient(&store, "vinay").await;
    let patient = registered.patient_id.unwrap();
    let account = store
        .get::<BillingAccount>(patient.as_str())
        .unwrap()
        .unwrap();
    assert_eq!(account.patient_id, patient);
    assert_eq!(account.credit, Money::ZERO);
}

#[tokio::test]
async fn patients_from_before_billing_get_an_account_once() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let mut batch = WriteBatch::new();
    for id in ["pat_a", "pat_b"] {
        let profile = PatientRecord {
            patient_id: PatientId::parse(id).unwrap(),
            user_id: None,
            name: id.into(),
            dob: None,
            contact_info: Default::default(),
            address: None,
            medical_history: Default::default(),
            created_at: Timestamp::now(),
            updated_at: None,
        };
        patients::write(&mut batch, &vault, None, &profile, false);
    }
    store.write(batch).await.unwrap();
    // One of them already has an account: it is kept as it is.
    let mut batch = WriteBatch::new();
    let b = PatientId::parse("pat_b").unwrap();
    batch.put(
        "pat_b",
        &BillingAccount {
            patient_id: b.clone(),
            opened_at: Timestamp::UNIX_EPOCH,
            credit: money("5.00"),
        },
    );
    store.write(batch).await.unwrap();

    assert_eq!(open_missing_accounts(&store).await.unwrap(), 1);
    assert_eq!(open_missing_accounts(&store).await.unwrap(), 0, "once");
    assert!(store.get::<BillingAccount>("pat_a").unwrap().is_some());
    let kept = store.get::<BillingAccount>("pat_b").unwrap().unwrap();
    assert_eq!(kept.credit, money("5.00"));
    assert_eq!(kept.opened_at, Timestamp::UNIX_EPOCH);
}

#[tokio::test]
async fn bills_keep_their_lines_sealed_and_every_revision() {
    let (_dir, store, _system) = store_and_system();
    let vault = Vault::ephemeral();
    let patient = PatientId::parse("pat_1").unwrap();
    let by = UserId::parse("usr_admin").unwrap();
    let mut first = bill("bill_1", &patient);
    let mut batch = WriteBatch::new();
    write(&mut batch, &vault, &first, &by, BillChange::Created);
    store.write(batch).await.unwrap();

    let stored = store.get::<StoredBill>("bill_1").unwrap().unwrap();
    let json = serde_json::to_string(&stored).unwrap();
    assert!(!json.contains("Allergy"), "lines are sealed: {json}");
    assert!(json.contains("100.00"), "amounts stay plain: {json}");

    first.revision = 2;
    first.updated_at = Some(Timestamp::now());
    first.services[0].description = "Allergy panel, extended".into();
    first.services[0].amount = money("120.00");
    first.total = money("120.00");
    let mut batch = WriteBatch::new();
    write(&mut batch, &vault, &first, &by, BillChange::Updated);
    store.write(batch).await.unwrap();

    let (_, loaded) = load(&store, &vault, &first.bill_id).unwrap().unwrap();
    assert_eq!(loaded, first);
    assert_eq!(
        of_patient(&store, &patient, 10).unwrap(),
        [first.bill_id.clone()]
    );
    let kept = revisions(&store, &first.bill_id, 10).unwrap();
    let totals: Vec<String> = kept.iter().map(|(_, r)| r.total.to_string()).collect();
    assert_eq!(totals, ["100.00", "120.00"]);
    let (key, oldest) = &kept[0];
    let lines = open_revision(&vault, key, oldest).unwrap();
    assert_eq!(lines[0].description, "Allergy panel");
    // A revision's seal is bound to its own key.
    assert!(open_revision(&vault, &kept[1].0, oldest).is_err());
}

#[test]
fn only_open_bills_are_owed() {
    let patient = PatientId::parse("pat_1").unwrap();
    let mut b = bill("bill_1", &patient);
    b.paid = money("30.00");
    b.status = BillStatus::PartiallyPaid;
    assert_eq!(b.balance_due(), money("70.00"));
    for status in [BillStatus::Draft, BillStatus::Paid, BillStatus::Void] {
        b.status = status;
        assert_eq!(b.balance_due(), Money::ZERO, "{status:?}");
    }
}

#[test]
fn a_claim_moves_only_along_its_lifecycle() {
    use medrelay_protocol::ClaimId;
    use medrelay_protocol::claim::{ClaimDecision, ClaimStatus as S};

    use super::claims::{Claim, Refusal};

    let claim = |status| Claim {
        claim_id: ClaimId::parse("clm_1").unwrap(),
        bill_id: BillId::parse("bill_1").unwrap(),
        patient_id: PatientId::parse("pat_1").unwrap(),
        insurance_provider: "HealthInsure".into(),
        claim_amount: money("75.00"),
        status,
        approved_amount: match status {
            S::Approved => Some(money("75.00")),
            S::PartiallyApproved => Some(money("50.00")),
            _ => None,
        },
        paid_amount: None,
        reason: None,
        version: 1,
        at: Timestamp::now(),
        by: UserId::parse("usr_admin").unwrap(),
        first_decision: None,
    };
    let decide = |status| ClaimDecision {
        status,
        approved_amount: None,
        reason: Some("not covered".into()),
        paid_amount: None,
    };
    let by = UserId::parse("usr_admin").unwrap();
    let allowed = [
        (S::Submitted, S::InReview),
        (S::Submitted, S::Approved),
        (S::Submitted, S::Denied),
        (S::InReview, S::Approved),
        (S::InReview, S::Denied),
        (S::Approved, S::Paid),
        (S::PartiallyApproved, S::Paid),
    ];
    for from in [
        S::Draft,
        S::Submitted,
        S::InReview,
        S::Approved,
        S::PartiallyApproved,
        S::Denied,
        S::Paid,
    ] {
        for to in [S::InReview, S::Approved, S::Denied, S::Paid] {
            let result = claim(from).decided(&decide(to), money("150.00"), &by, Timestamp::now());
            if allowed.contains(&(from, to)) {
                let next = result.unwrap_or_else(|e| panic!("{from:?} -> {to:?}: {e}"));
                assert_eq!((next.status, next.version), (to, 2));
            } else {
                assert!(
                    matches!(result, Err(Refusal::Transition(_))),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }
    // The insurer pays at most what is still owed on the bill.
    let paid = claim(S::PartiallyApproved).decided(
        &decide(S::Paid),
        money("20.00"),
        &by,
        Timestamp::now(),
    );
    assert!(matches!(
        paid,
        Err(Refusal::Field {
            field: "paidAmount",
            ..
        })
    ));
}
