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
use medrelay_protocol::{Money, UserId};

use super::gateway::{Charge, Gateways};
use super::payments::{PaymentRecord, RefundAsked};
use super::refunds;
pub use super::settling::{Begun, Opening, PaymentError};
use super::settling::{open, settle, told};
use crate::audit::AuditEntry;
use crate::phi::Vault;
use crate::store::Store;
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
    /// The store key of the request's idempotency record (in flight).
    pub request_key: Option<String>,
    /// The request's own id, written with the journal.
    pub attempt: String,
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
        let id = self.life.key().to_owned();
        // A refund a stop interrupted is completed; else the payment is
        // settled (nothing happens to one already final).
        let work = async move {
            match refunds::interrupted(&store, &vault, &gateways, &id).await? {
                Some(refunded) => Ok(refunded),
                None => settle(store, vault, gateways, id).await,
            }
        };
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
        let id = self.life.key().to_owned();
        let work = async move {
            let asked = RefundAsked {
                amount: msg.amount,
                reason: msg.reason,
                by: msg.by,
                request_key: msg.request_key,
                attempt: msg.attempt,
                asked_at: jiff::Timestamp::now(),
                number: 0,
            };
            refunds::refund(&store, &vault, &gateways, &id, asked, &msg.audit).await
        };
        keyed::after(self, work, |record, _| Ok(record))
    }
}
