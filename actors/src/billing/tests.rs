use jiff::Timestamp;
use medrelay_protocol::billing::{BillStatus, ServiceLine};
use medrelay_protocol::{BillId, Money, PatientId, UserId};

use super::*;
use crate::patients::{self, PatientRecord};
use crate::phi::Vault;
use crate::store::WriteBatch;
use crate::test_support::{register_patient, store_and_system};

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn bill(id: &str, patient: &PatientId) -> Bill {
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

#[tokio::test]
async fn a_pending_payment_is_settled_once_by_its_actor() {
    use std::sync::Arc;

    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};

    use super::gateway::Gateways;
    use super::payment_actor::Settle;
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    let mut batch = WriteBatch::new();
    let by = UserId::parse("usr_admin").unwrap();
    write(
        &mut batch,
        &vault,
        &bill("bill_1", &patient),
        &by,
        BillChange::Created,
    );
    // A payment a stop left pending, as start-up finds it.
    let pending = pending_payment("pay_1", &patient, "60.00", PaymentMethod::Cash);
    payments::start(&mut batch, &pending);
    store.write(batch).await.unwrap();
    assert_eq!(
        payments::unsettled(&store, 10).unwrap(),
        [pending.payment_id]
    );

    let registry = payment_actors(&store, &vault, &system, Gateways::new(None));
    let paid = registry.send("pay_1", Settle).await.unwrap().unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    assert_eq!(paid.gateway_reference.as_deref(), Some("desk_pay_1"));
    assert_eq!(paid.allocations[0].amount, money("60.00"));
    assert!(payments::unsettled(&store, 10).unwrap().is_empty());
    // Settling again changes nothing: the payment is applied once.
    let again = registry.send("pay_1", Settle).await.unwrap().unwrap();
    assert_eq!(again, paid);
    let (_, billed) = load(&store, &vault, &BillId::parse("bill_1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (billed.paid, billed.status),
        (money("60.00"), BillStatus::PartiallyPaid)
    );
}

/// A payment `pending` for `amount`, as the request writes it.
fn pending_payment(
    id: &str,
    patient: &PatientId,
    amount: &str,
    method: medrelay_protocol::payment::PaymentMethod,
) -> super::payments::PaymentRecord {
    super::payments::PaymentRecord {
        payment_id: medrelay_protocol::PaymentId::parse(id).unwrap(),
        patient_id: patient.clone(),
        amount: money(amount),
        method,
        status: medrelay_protocol::payment::PaymentStatus::Pending,
        requested: Vec::new(),
        allocations: Vec::new(),
        credited: Money::ZERO,
        refunded: Money::ZERO,
        gateway_reference: None,
        card_token: None,
        card_last4: None,
        refunding: None,
        refunds_asked: 0,
        history: Vec::new(),
        idempotency_key: None,
        created_by: UserId::parse("usr_admin").unwrap(),
        created_at: Timestamp::now(),
    }
}

/// The payment actors' registry, charging through `gateways`.
fn payment_actors(
    store: &crate::store::Store,
    vault: &std::sync::Arc<Vault>,
    system: &std::sync::Arc<crate::system::ActorSystem>,
    gateways: super::gateway::Gateways,
) -> crate::system::Registry<super::payment_actor::PaymentActor> {
    let (store, vault) = (store.clone(), vault.clone());
    crate::system::Registry::new(system.clone(), move |key, retire| {
        let idle = std::time::Duration::from_secs(30);
        let gateways = gateways.clone();
        super::payment_actor::PaymentActor::new(
            key,
            store.clone(),
            vault.clone(),
            gateways,
            idle,
            retire,
        )
    })
}

/// A card gateway that pays every charge and records what it was asked.
#[derive(Default)]
struct Recording {
    calls: std::sync::Mutex<Vec<String>>,
    /// What `find` answers.
    holds: std::sync::Mutex<Option<super::gateway::Charge>>,
}

impl super::gateway::Gateway for std::sync::Arc<Recording> {
    fn charge(
        &self,
        payment: &super::payments::PaymentRecord,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<super::gateway::Charge, super::gateway::Transient>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push(format!("charge {}", payment.payment_id));
        let paid = super::gateway::Charge::Paid {
            reference: "pi_1".into(),
            last4: Some("4242".into()),
        };
        Box::pin(std::future::ready(Ok(paid)))
    }

    fn outcome(
        &self,
        payment: &super::payments::PaymentRecord,
        _reference: &str,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<super::gateway::Charge, super::gateway::Transient>,
    > {
        self.charge(payment)
    }

    fn find(
        &self,
        payment: &super::payments::PaymentRecord,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Option<super::gateway::Charge>, super::gateway::Transient>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push(format!("find {}", payment.payment_id));
        let held = self.holds.lock().unwrap().clone();
        Box::pin(std::future::ready(Ok(held)))
    }

    fn refund(
        &self,
        _payment: &super::payments::PaymentRecord,
        amount: Money,
        key: String,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<super::gateway::Refunded, super::gateway::Transient>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push(format!("refund {amount} {key}"));
        Box::pin(std::future::ready(Ok(Ok("re_1".into()))))
    }
}

#[tokio::test]
async fn card_money_that_cannot_be_applied_is_given_back_through_the_gateway_once() {
    use std::sync::Arc;

    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};

    use super::gateway::Gateways;
    use super::payment_actor::Settle;
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    let by = UserId::parse("usr_admin").unwrap();
    // The bill the payment names was paid in full before the card money
    // came in.
    let mut paid_bill = bill("bill_1", &patient);
    paid_bill.paid = money("100.00");
    paid_bill.status = BillStatus::Paid;
    let mut batch = WriteBatch::new();
    write(&mut batch, &vault, &paid_bill, &by, BillChange::Created);
    let mut pending = pending_payment("pay_2", &patient, "100.00", PaymentMethod::Card);
    pending.requested = vec![BillId::parse("bill_1").unwrap()];
    pending.card_token = Some("pm_card_visa".into());
    payments::start(&mut batch, &pending);
    store.write(batch).await.unwrap();

    let card = Arc::new(Recording::default());
    let gateways = Gateways::new(Some(Arc::new(card.clone())));
    let registry = payment_actors(&store, &vault, &system, gateways);
    let failed = registry.send("pay_2", Settle).await.unwrap().unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert_eq!(failed.card_last4.as_deref(), Some("4242"));
    assert_eq!(
        failed.card_token, None,
        "the token is not kept once charged"
    );
    let note = failed.history.last().unwrap().note.clone().unwrap();
    assert!(note.contains("given back in full (re_1)"), "{note}");
    assert!(failed.allocations.is_empty());
    // Settled again: final, so the gateway hears nothing more.
    registry.send("pay_2", Settle).await.unwrap().unwrap();
    assert_eq!(
        *card.calls.lock().unwrap(),
        ["charge pay_2", "refund 100.00 pay_2-unapplied"]
    );
    assert!(payments::unsettled(&store, 10).unwrap().is_empty());
}

#[tokio::test]
async fn a_card_payment_without_a_card_gateway_fails_rather_than_waiting() {
    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};

    use super::gateway::Gateways;
    use super::payment_actor::Settle;
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = std::sync::Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    // Taken while the clinic had a card gateway, settled after it was
    // switched off.
    let mut pending = pending_payment("pay_3", &patient, "10.00", PaymentMethod::Card);
    pending.card_token = Some("pm_card_visa".into());
    let mut batch = WriteBatch::new();
    payments::start(&mut batch, &pending);
    store.write(batch).await.unwrap();
    let registry = payment_actors(&store, &vault, &system, Gateways::new(None));
    let failed = registry.send("pay_3", Settle).await.unwrap().unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    let note = failed.history.last().unwrap().note.clone().unwrap();
    assert!(note.contains("no gateway takes card payments"), "{note}");
    assert!(payments::unsettled(&store, 10).unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_older_than_the_gateways_memory_is_looked_for_before_it_is_charged() {
    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};

    use super::gateway::{Charge, Gateways};
    use super::payment_actor::Settle;
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = std::sync::Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    // Sent to the gateway a day ago, its answer lost, the server down since.
    let mut old = pending_payment("pay_old", &patient, "10.00", PaymentMethod::Card);
    old.created_at = Timestamp::now() - jiff::SignedDuration::from_hours(25);
    let young = pending_payment("pay_new", &patient, "10.00", PaymentMethod::Card);
    let mut batch = WriteBatch::new();
    payments::start(&mut batch, &old);
    payments::start(&mut batch, &young);
    store.write(batch).await.unwrap();
    let card = std::sync::Arc::new(Recording::default());
    *card.holds.lock().unwrap() = Some(Charge::Paid {
        reference: "pi_lost".into(),
        last4: None,
    });
    let gateways = Gateways::new(Some(std::sync::Arc::new(card.clone())));
    let registry = payment_actors(&store, &vault, &system, gateways);
    let found = registry.send("pay_old", Settle).await.unwrap().unwrap();
    assert_eq!(found.status, PaymentStatus::Succeeded);
    assert_eq!(found.gateway_reference.as_deref(), Some("pi_lost"));
    registry.send("pay_new", Settle).await.unwrap().unwrap();
    assert_eq!(
        *card.calls.lock().unwrap(),
        ["find pay_old", "charge pay_new"],
        "the old payment is found, not charged again; the young one is charged under its key"
    );
}

#[tokio::test]
async fn a_journalled_refund_with_no_gateway_left_is_cleared_not_kept_for_ever() {
    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};

    use super::gateway::Gateways;
    use super::payment_actor::{PaymentError, Settle};
    use super::payments::{self, RefundAsked};

    let (_dir, store, system) = store_and_system();
    let vault = std::sync::Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    // A card payment whose refund was journalled, then the card gateway
    // was switched off before the refund was made.
    let mut paid = pending_payment("pay_5", &patient, "10.00", PaymentMethod::Card);
    paid.status = PaymentStatus::Succeeded;
    paid.refunds_asked = 1;
    paid.refunding = Some(RefundAsked {
        amount: money("4.00"),
        reason: "overcharged".into(),
        by: UserId::parse("usr_admin").unwrap(),
        request_key: None,
        attempt: "rfd_1".into(),
        number: 1,
    });
    let mut batch = WriteBatch::new();
    payments::start(&mut batch, &paid);
    store.write(batch).await.unwrap();
    let registry = payment_actors(&store, &vault, &system, Gateways::new(None));
    let refused = registry.send("pay_5", Settle).await.unwrap();
    assert!(
        matches!(&refused, Err(PaymentError::NotRefundable(why)) if why.contains("no gateway takes card")),
        "{refused:?}"
    );
    let after = store
        .get::<payments::PaymentRecord>("pay_5")
        .unwrap()
        .unwrap();
    assert_eq!((after.refunding, after.refunded), (None, Money::ZERO));
    assert!(payments::unsettled(&store, 10).unwrap().is_empty());
}
