//! `PaymentActor`: one per payment in flight, supervised like every keyed
//! actor. It records desk payments and settles them in one transaction
//! ([`Open`]), settles card payments through the card gateway ([`Settle`],
//! retrying a gateway that is briefly away), takes the card gateway's later
//! word on a charge ([`Outcome`], from a webhook), and takes refunds, one at
//! a time, so two refunds of one payment never both spend what is left of
//! it. How each is written is in `settling.rs`. It keeps nothing in memory:
//! the payment record is the truth, and a payment left `pending` or
//! `processing` by a crash is settled again at start-up
//! ([`super::payments::unsettled`]), asking the gateway rather than
//! charging twice.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use medrelay_protocol::payment::PaymentStatus;
use medrelay_protocol::{Money, UserId};

use super::gateway::{Charge, Gateways};
use super::payments::{self, PaymentRecord};
use super::settling::{ATTEMPTS, ask, gateway_of, open, settle, told};
pub use super::settling::{Begun, Opening, PaymentError};
use crate::audit::AuditEntry;
use crate::fault::Fault;
use crate::idempotency::{self, IdempotencyRecord};
use crate::phi::Vault;
use crate::store::{Store, WriteBatch, WriteError};
use crate::system::Retire;
use crate::system::keyed::{self, Lifecycle, Owner};

/// Charge and apply the payment (no-op once it is final).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentRecord, PaymentError>")]
pub struct Settle;

/// Record a desk payment and settle it, in one transaction.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentRecord, PaymentError>")]
pub struct Open(pub Opening);

/// What the card gateway later said about the charge (a webhook's event,
/// acted on once).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentRecord, PaymentError>")]
pub struct Outcome {
    /// The gateway's word.
    pub charge: Charge,
    /// The gateway's event id.
    pub event: String,
}

/// Give back part or all of a succeeded payment.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentRecord, PaymentError>")]
pub struct Refund {
    /// How much.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: UserId,
    /// The request's idempotency record (in flight) and its store key.
    pub idempotency: Option<(String, IdempotencyRecord)>,
    /// The audit entry written with the refund.
    pub audit: AuditEntry,
}

/// One payment in flight.
pub struct PaymentActor {
    life: Lifecycle<PaymentActor>,
    vault: Arc<Vault>,
    gateways: Gateways,
}

impl PaymentActor {
    /// The actor for payment `id`.
    pub fn new(
        id: String,
        store: Store,
        vault: Arc<Vault>,
        gateways: Gateways,
        idle_after: Duration,
        retire: Retire<PaymentActor>,
    ) -> Self {
        Self {
            life: Lifecycle::new(id, store, retire, idle_after),
            vault,
            gateways,
        }
    }
}

keyed::keyed_actor!(PaymentActor, "payment");

impl PaymentActor {
    /// What the work of one message needs, owned.
    fn parts(&self) -> (Store, Arc<Vault>, Gateways) {
        (
            self.life.store().clone(),
            self.vault.clone(),
            self.gateways.clone(),
        )
    }
}

impl Owner for PaymentActor {
    fn lifecycle(&mut self) -> &mut Lifecycle<Self> {
        &mut self.life
    }

    fn forget(&mut self) {}

    fn load_now(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl Handler<Settle> for PaymentActor {
    type Result = AtomicResponse<Self, Result<PaymentRecord, PaymentError>>;

    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            let forwarded = keyed::forward(next, msg, PaymentError::Internal);
            return AtomicResponse::new(Box::pin(forwarded.into_actor(self)));
        }
        let (store, vault, gateways) = self.parts();
        let work = settle(store, vault, gateways, self.life.key().to_owned());
        keyed::after(self, work, |record, _| Ok(record))
    }
}

impl Handler<Outcome> for PaymentActor {
    type Result = AtomicResponse<Self, Result<PaymentRecord, PaymentError>>;

    fn handle(&mut self, msg: Outcome, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            let forwarded = keyed::forward(next, msg, PaymentError::Internal);
            return AtomicResponse::new(Box::pin(forwarded.into_actor(self)));
        }
        let (store, vault, gateways) = self.parts();
        let id = self.life.key().to_owned();
        let work =
            async move { told(&store, &vault, &gateways, &id, &msg.charge, &msg.event).await };
        keyed::after(self, work, |record, _| Ok(record))
    }
}

impl Handler<Open> for PaymentActor {
    type Result = AtomicResponse<Self, Result<PaymentRecord, PaymentError>>;

    fn handle(&mut self, msg: Open, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            let forwarded = keyed::forward(next, msg, PaymentError::Internal);
            return AtomicResponse::new(Box::pin(forwarded.into_actor(self)));
        }
        let (store, vault, gateways) = self.parts();
        let work = async move { open(&store, &vault, &gateways, &msg.0).await };
        keyed::after(self, work, |record, _| Ok(record))
    }
}

impl Handler<Refund> for PaymentActor {
    type Result = AtomicResponse<Self, Result<PaymentRecord, PaymentError>>;

    fn handle(&mut self, msg: Refund, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            let forwarded = keyed::forward(next, msg, PaymentError::Internal);
            return AtomicResponse::new(Box::pin(forwarded.into_actor(self)));
        }
        let (store, vault, gateways) = self.parts();
        let work = refund(store, vault, gateways, self.life.key().to_owned(), msg);
        keyed::after(self, work, |record, _| Ok(record))
    }
}

async fn refund(
    store: Store,
    vault: Arc<Vault>,
    gateways: Gateways,
    id: String,
    msg: Refund,
) -> Result<PaymentRecord, PaymentError> {
    let mut given_back: Option<String> = None;
    for _ in 0..ATTEMPTS {
        let Some(payment) = store.get::<PaymentRecord>(&id)? else {
            return Err(PaymentError::NotFound(id));
        };
        if !matches!(
            payment.status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
        ) {
            return Err(PaymentError::NotRefundable(format!(
                "a {} payment is not refunded",
                payment.status.as_str()
            )));
        }
        if msg.amount > payment.refundable() {
            return Err(PaymentError::NotRefundable(format!(
                "only {} of this payment is left to refund",
                payment.refundable()
            )));
        }
        // The money goes back first, once, under a key naming this refund
        // of this payment: a refund sent again after a crash between the
        // gateway's answer and the write below is given back once.
        let reference = match &given_back {
            Some(reference) => reference.clone(),
            None => {
                // No gateway for its method any more: nothing can be given back here.
                let gateway = gateway_of(&gateways, &payment)
                    .map_err(|e| PaymentError::NotRefundable(e.to_string()))?;
                let key = format!("{id}-refund-{}", payment.refunds() + 1);
                let asked = || gateway.refund(&payment, msg.amount, key.clone());
                let reference = ask(&payment, asked).await?.map_err(|why| {
                    PaymentError::NotRefundable(format!("the gateway refused the refund: {why}"))
                })?;
                given_back = Some(reference.clone());
                reference
            }
        };
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        batch.require_equal(&id, &payment);
        let note = format!("refunded {} ({reference}): {}", msg.amount, msg.reason);
        let refunded = payments::refund(
            &mut batch, &store, &vault, &payment, msg.amount, note, &msg.by, now,
        )?;
        crate::audit::record(&mut batch, &msg.audit);
        if let Some((key, started)) = &msg.idempotency {
            batch.require_equal(key.as_str(), started);
            idempotency::finish(
                &mut batch,
                key,
                started,
                201,
                payments::written_body(&refunded),
            );
        }
        match store.write(batch).await {
            Ok(_) => {
                tracing::info!(payment = %id, amount = %msg.amount, status = refunded.status.as_str(), "payment refunded");
                return Ok(refunded);
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => {
                return Err(unrecorded(
                    &id,
                    &given_back,
                    PaymentError::Storage(Fault::new(e)),
                ));
            }
        }
    }
    Err(unrecorded(&id, &given_back, PaymentError::Busy))
}

/// `e`, said loudly when the gateway already gave the money back: the
/// refund is not recorded. The same refund asked again is given back once
/// (its gateway key names the refund's number, unchanged) and recorded.
fn unrecorded(id: &str, given_back: &Option<String>, e: PaymentError) -> PaymentError {
    if let Some(reference) = given_back {
        tracing::error!(payment = %id, refund = %reference, error = %e, "a refund the gateway made is not recorded; asking for the same refund again records it");
    }
    e
}
