//! `PaymentActor`: one per payment in flight, supervised like every keyed
//! actor. It charges the payment through its [`Gateway`] (retrying a
//! gateway that is briefly away), applies it to the patient's bills in one
//! transaction, and takes refunds, one at a time, so two refunds of one
//! payment never both spend what is left of it. It keeps nothing in memory:
//! the payment record is the truth, and a payment left `pending` by a crash
//! is settled again at start-up ([`super::payments::unsettled`]).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use medrelay_protocol::payment::PaymentStatus;
use medrelay_protocol::{Money, UserId};

use super::gateway::{Charge, Gateway};
use super::payments::{self, ApplyError, PaymentRecord};
use crate::audit::AuditEntry;
use crate::fault::Fault;
use crate::idempotency::{self, IdempotencyRecord};
use crate::patients::PatientError;
use crate::phi::Vault;
use crate::store::{Store, Table, WriteBatch, WriteError};
use crate::system::Retire;
use crate::system::keyed::{self, Lifecycle, Owner};

/// How often a write that lost a compare-and-swap, or a charge that met a
/// gateway briefly away, is tried.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Why a payment could not be settled or refunded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PaymentError {
    /// No such payment.
    #[error("no payment {0}")]
    NotFound(String),
    /// The refund asks for more than is left, or the payment is not paid.
    #[error("{0}")]
    NotRefundable(String),
    /// The gateway stayed away; the payment stays pending and is settled
    /// again later.
    #[error("the payment gateway is unavailable: {0}")]
    Gateway(String),
    /// Its bills kept changing under it.
    #[error("the patient's bills kept changing; try again")]
    Busy,
    /// A storage failure.
    #[error("storage failure: {0}")]
    Storage(Fault),
    /// A bug or a lost actor.
    #[error("internal error")]
    Internal,
}

impl From<PatientError> for PaymentError {
    fn from(e: PatientError) -> Self {
        PaymentError::Storage(Fault::new(e))
    }
}

impl From<crate::store::StoreError> for PaymentError {
    fn from(e: crate::store::StoreError) -> Self {
        PaymentError::Storage(Fault::new(e))
    }
}

/// Charge and apply the payment (no-op once it is final).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PaymentRecord, PaymentError>")]
pub struct Settle;

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
    gateway: Arc<dyn Gateway>,
}

impl PaymentActor {
    /// The actor for payment `id`.
    pub fn new(
        id: String,
        store: Store,
        vault: Arc<Vault>,
        gateway: Arc<dyn Gateway>,
        idle_after: Duration,
        retire: Retire<PaymentActor>,
    ) -> Self {
        Self {
            life: Lifecycle::new(id, store, retire, idle_after),
            vault,
            gateway,
        }
    }
}

keyed::keyed_actor!(PaymentActor, "payment");

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
        let (store, vault, gateway) = (
            self.life.store().clone(),
            self.vault.clone(),
            self.gateway.clone(),
        );
        let work = settle(store, vault, gateway, self.life.key().to_owned());
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
        let (store, vault) = (self.life.store().clone(), self.vault.clone());
        let work = refund(store, vault, self.life.key().to_owned(), msg);
        keyed::after(self, work, |record, _| Ok(record))
    }
}

async fn settle(
    store: Store,
    vault: Arc<Vault>,
    gateway: Arc<dyn Gateway>,
    id: String,
) -> Result<PaymentRecord, PaymentError> {
    let Some(payment) = store.get::<PaymentRecord>(&id)? else {
        return Err(PaymentError::NotFound(id));
    };
    if payment.status.is_final() {
        return Ok(payment);
    }
    let charge = charge(gateway.as_ref(), &payment).await?;
    for _ in 0..ATTEMPTS {
        let Some(payment) = store.get::<PaymentRecord>(&id)? else {
            return Err(PaymentError::NotFound(id));
        };
        if payment.status.is_final() {
            return Ok(payment);
        }
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        batch.require_equal(&id, &payment);
        batch.delete(Table::PaymentQueue, &id);
        let settled = match &charge {
            Charge::Paid(reference) => {
                let mut charged = payment.clone();
                charged.gateway_reference = Some(reference.clone());
                let mut applied = WriteBatch::new();
                let by = payment.created_by.clone();
                match payments::apply(&mut applied, &store, &vault, &charged, &by, now)? {
                    Ok(paid) => {
                        batch.absorb(applied);
                        paid
                    }
                    Err(e) => failed(&mut batch, charged, &e, now),
                }
            }
            Charge::Refused(why) => {
                let refused = payment.clone().step(
                    PaymentStatus::Failed,
                    None,
                    Some(format!("the gateway refused it: {why}")),
                    now,
                );
                payments::write(&mut batch, &refused);
                refused
            }
        };
        if let Some(key) = &payment.idempotency_key {
            let body = payments::written_body(&settled);
            finish(&mut batch, &store, key, &payment, body)?;
        }
        match store.write(batch).await {
            Ok(_) => {
                tracing::info!(payment = %id, status = settled.status.as_str(), amount = %settled.amount, "payment settled");
                return Ok(settled);
            }
            Err(WriteError::Changed { .. } | WriteError::Exists { .. }) => continue,
            Err(e) => return Err(PaymentError::Storage(Fault::new(e))),
        }
    }
    Err(PaymentError::Busy)
}

/// A payment that cannot be applied as asked (a named bill was paid or
/// voided meanwhile): failed, nothing applied. Desk money is handed back.
fn failed(
    batch: &mut WriteBatch,
    payment: PaymentRecord,
    why: &ApplyError,
    at: Timestamp,
) -> PaymentRecord {
    let failed = payment.step(PaymentStatus::Failed, None, Some(why.to_string()), at);
    payments::write(batch, &failed);
    failed
}

/// The gateway's answer, asking again (with growing pauses) while it is
/// briefly away.
async fn charge(gateway: &dyn Gateway, payment: &PaymentRecord) -> Result<Charge, PaymentError> {
    let mut pause = FIRST_BACKOFF;
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        match gateway.charge(payment).await {
            Ok(charge) => return Ok(charge),
            Err(e) => {
                tracing::warn!(payment = %payment.payment_id, error = %e, "payment gateway unavailable; asking again");
                last = e.0;
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    Err(PaymentError::Gateway(last))
}

/// Adds the answer (201) to the idempotency record of the request that
/// made `payment`, if that record is still in flight and names it.
fn finish(
    batch: &mut WriteBatch,
    store: &Store,
    key: &str,
    payment: &PaymentRecord,
    body: String,
) -> Result<(), PaymentError> {
    if let Some(started) = store.get::<IdempotencyRecord>(key)?
        && started.response.is_none()
        && started.work.as_deref() == Some(payment.payment_id.as_str())
    {
        batch.require_equal(key, &started);
        idempotency::finish(batch, key, &started, 201, body);
    }
    Ok(())
}

async fn refund(
    store: Store,
    vault: Arc<Vault>,
    id: String,
    msg: Refund,
) -> Result<PaymentRecord, PaymentError> {
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
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        batch.require_equal(&id, &payment);
        let note = format!("refunded {}: {}", msg.amount, msg.reason);
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
            Err(e) => return Err(PaymentError::Storage(Fault::new(e))),
        }
    }
    Err(PaymentError::Busy)
}
