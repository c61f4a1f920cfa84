//! The payment actor: settling desk and card payments, unapplied money given
//! back, payments and refunds a stop interrupted, a gateway switched off.

use jiff::Timestamp;
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};
use medrelay_protocol::{BillId, Money, PatientId, UserId};

use super::tests::{bill, money};
use super::*;
use crate::phi::Vault;
use crate::store::WriteBatch;
use crate::test_support::{register_patient, store_and_system};

#[tokio::test]
async fn a_pending_payment_is_settled_once_by_its_actor() {
    use std::sync::Arc;

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
pub(crate) fn pending_payment(
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
        refunds_made: Vec::new(),
        history: Vec::new(),
        idempotency_key: None,
        created_by: UserId::parse("usr_admin").unwrap(),
        created_at: Timestamp::now(),
    }
}

/// A card payment of 10.00, paid, with a refund of 4.00 journalled at
/// `asked_at` and not yet made.
fn journalled(
    id: &str,
    patient: &PatientId,
    asked_at: Timestamp,
) -> super::payments::PaymentRecord {
    let mut paid = pending_payment(id, patient, "10.00", PaymentMethod::Card);
    paid.status = PaymentStatus::Succeeded;
    paid.gateway_reference = Some(format!("pi_{id}"));
    paid.refunds_asked = 1;
    paid.refunding = Some(super::payments::RefundAsked {
        amount: money("4.00"),
        reason: "overcharged".into(),
        by: UserId::parse("usr_admin").unwrap(),
        request_key: None,
        attempt: "rfd_1".into(),
        asked_at,
        number: 1,
    });
    paid
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
    /// What `find_refund` answers.
    refunded: std::sync::Mutex<Option<super::gateway::Refunded>>,
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

    fn find_refund(
        &self,
        _payment: &super::payments::PaymentRecord,
        key: &str,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Option<super::gateway::Refunded>, super::gateway::Transient>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push(format!("find_refund {key}"));
        let made = self.refunded.lock().unwrap().clone();
        Box::pin(std::future::ready(Ok(made)))
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
    use super::gateway::Gateways;
    use super::payment_actor::{PaymentError, Settle};
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = std::sync::Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    // A card payment whose refund was journalled, then the card gateway
    // was switched off before the refund was made.
    let paid = journalled("pay_5", &patient, Timestamp::now());
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

#[tokio::test]
async fn a_refund_journalled_over_a_day_ago_is_looked_for_not_made_again() {
    use super::gateway::Gateways;
    use super::payment_actor::Settle;
    use super::payments;

    let (_dir, store, system) = store_and_system();
    let vault = std::sync::Arc::new(Vault::ephemeral());
    let patient = register_patient(&store, "vinay").await.patient_id.unwrap();
    // Journalled, sent to the gateway, then the server was down for a day.
    let day_ago = Timestamp::now() - jiff::SignedDuration::from_hours(25);
    let paid = journalled("pay_6", &patient, day_ago);
    let mut batch = WriteBatch::new();
    payments::start(&mut batch, &paid);
    store.write(batch).await.unwrap();
    let card = std::sync::Arc::new(Recording::default());
    *card.refunded.lock().unwrap() = Some(Ok("re_made".into()));
    let gateways = Gateways::new(Some(std::sync::Arc::new(card.clone())));
    let registry = payment_actors(&store, &vault, &system, gateways);
    let refunded = registry.send("pay_6", Settle).await.unwrap().unwrap();
    assert_eq!(refunded.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(refunded.refunded, money("4.00"));
    assert_eq!(refunded.refunding, None);
    assert_eq!(
        *card.calls.lock().unwrap(),
        ["find_refund pay_6-refund-1"],
        "found at the gateway, not asked for again"
    );
}
