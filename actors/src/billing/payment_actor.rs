//! `PaymentActor`: one per payment in flight, supervised like every keyed
//! actor. It charges the payment through its [`Gateway`] (retrying a
//! gateway that is briefly away), applies it to the patient's bills in one
//! transaction, takes the card gateway's later word on it ([`Outcome`],
//! from a webhook), and takes refunds, one at a time, so two refunds of one
//! payment never both spend what is left of it. It keeps nothing in memory:
//! the payment record is the truth, and a payment left `pending` or
//! `processing` by a crash is settled again at start-up
//! ([`super::payments::unsettled`]), asking the gateway rather than
//! charging twice.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use medrelay_protocol::payment::PaymentStatus;
use medrelay_protocol::{Money, UserId};

use super::gateway::{Charge, Gateway, Gateways, Refunded, Transient};
use super::payments::{self, ApplyError, GatewayEvent, PaymentRecord};
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
        let (store, vault, gateways) = (
            self.life.store().clone(),
            self.vault.clone(),
            self.gateways.clone(),
        );
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
        let (store, vault, gateways) = (
            self.life.store().clone(),
            self.vault.clone(),
            self.gateways.clone(),
        );
        let id = self.life.key().to_owned();
        let work = async move {
            let Some(payment) = store.get::<PaymentRecord>(&id)? else {
                return Err(PaymentError::NotFound(id));
            };
            let gateway = gateway_of(&gateways, &payment)?;
            conclude(
                &store,
                &vault,
                gateway.as_ref(),
                &id,
                &msg.charge,
                Some(&msg.event),
            )
            .await
        };
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
        let (store, vault, gateways) = (
            self.life.store().clone(),
            self.vault.clone(),
            self.gateways.clone(),
        );
        let work = refund(store, vault, gateways, self.life.key().to_owned(), msg);
        keyed::after(self, work, |record, _| Ok(record))
    }
}

async fn settle(
    store: Store,
    vault: Arc<Vault>,
    gateways: Gateways,
    id: String,
) -> Result<PaymentRecord, PaymentError> {
    let Some(payment) = store.get::<PaymentRecord>(&id)? else {
        return Err(PaymentError::NotFound(id));
    };
    if payment.status.is_final() {
        return Ok(payment);
    }
    let gateway = gateway_of(&gateways, &payment)?;
    // A charge the gateway took as processing is asked about; any other is
    // sent (again): the payment's id as idempotency key makes the gateway
    // answer a repeat with the first charge, never a second one.
    let charge = match (&payment.status, &payment.gateway_reference) {
        (PaymentStatus::Processing, Some(reference)) => {
            let reference = reference.clone();
            ask(&payment, || gateway.outcome(&payment, &reference)).await?
        }
        _ => ask(&payment, || gateway.charge(&payment)).await?,
    };
    conclude(&store, &vault, gateway.as_ref(), &id, &charge, None).await
}

/// Records what the gateway said about the payment (and, for a webhook,
/// the event, so that it acts once), applying the money if it was paid.
/// Nothing changes for a payment already final.
async fn conclude(
    store: &Store,
    vault: &Vault,
    gateway: &dyn Gateway,
    id: &str,
    charge: &Charge,
    event: Option<&str>,
) -> Result<PaymentRecord, PaymentError> {
    let mut given_back: Option<Refunded> = None;
    for _ in 0..ATTEMPTS {
        let Some(payment) = store.get::<PaymentRecord>(id)? else {
            return Err(PaymentError::NotFound(id.to_owned()));
        };
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        if let Some(event) = event {
            batch.require_absent(Table::GatewayEvents, event);
            batch.put(event, &GatewayEvent { received_at: now });
        }
        let unchanged = payment.status.is_final()
            || matches!(charge, Charge::Processing { .. })
                && payment.status == PaymentStatus::Processing;
        if unchanged {
            if event.is_some() {
                write_or_replayed(store, batch, event).await?;
            }
            return Ok(payment);
        }
        batch.require_equal(id, &payment);
        let settled = match charge {
            Charge::Paid { reference, last4 } => {
                let mut charged = payment.clone();
                charged.gateway_reference = Some(reference.clone());
                charged.card_last4.clone_from(last4);
                charged.card_token = None;
                let mut applied = WriteBatch::new();
                let by = payment.created_by.clone();
                match payments::apply(&mut applied, store, vault, &charged, &by, now)? {
                    Ok(paid) => {
                        batch.absorb(applied);
                        paid
                    }
                    Err(e) => {
                        // Taken but not wanted as asked (a named bill was
                        // paid or voided meanwhile): given back in full,
                        // under a key that makes asking again give it once.
                        if given_back.is_none() {
                            let key = format!("{id}-unapplied");
                            let asked = || gateway.refund(&charged, charged.amount, key.clone());
                            given_back = Some(ask(&charged, asked).await?);
                        }
                        let back = given_back.clone().unwrap_or_else(|| Err(String::new()));
                        failed(&mut batch, charged, &e, &back, now)
                    }
                }
            }
            Charge::Processing { reference } => {
                let mut taken = payment.clone().step(
                    PaymentStatus::Processing,
                    None,
                    Some("the card gateway is processing it".into()),
                    now,
                );
                taken.gateway_reference = Some(reference.clone());
                payments::write(&mut batch, &taken);
                taken
            }
            Charge::Refused(why) | Charge::Canceled(why) => {
                let status = if matches!(charge, Charge::Canceled(_)) {
                    PaymentStatus::Canceled
                } else {
                    PaymentStatus::Failed
                };
                let note = format!("the gateway refused it: {why}");
                let mut refused = payment.clone().step(status, None, Some(note), now);
                refused.card_token = None;
                payments::write(&mut batch, &refused);
                refused
            }
        };
        if settled.status.is_final() {
            batch.delete(Table::PaymentQueue, id);
        }
        if let Some(key) = &payment.idempotency_key {
            let body = payments::written_body(&settled);
            finish(&mut batch, store, key, &payment, body)?;
        }
        match store.write(batch).await {
            Ok(_) => {
                tracing::info!(payment = %id, status = settled.status.as_str(), amount = %settled.amount, "payment settled");
                return Ok(settled);
            }
            Err(WriteError::Changed { .. } | WriteError::Exists { .. }) => {
                if let Some(event) = event
                    && store.get::<GatewayEvent>(event)?.is_some()
                {
                    return Ok(store.get::<PaymentRecord>(id)?.unwrap_or(payment));
                }
            }
            Err(e) => return Err(PaymentError::Storage(Fault::new(e))),
        }
    }
    Err(PaymentError::Busy)
}

/// Writes a batch that records only a gateway event; an event recorded
/// already (a replay) is no error.
async fn write_or_replayed(
    store: &Store,
    batch: WriteBatch,
    event: Option<&str>,
) -> Result<(), PaymentError> {
    match store.write(batch).await {
        Ok(_) => Ok(()),
        Err(WriteError::Exists { .. }) => {
            tracing::debug!(event = ?event, "a card gateway event arrived again; nothing changes");
            Ok(())
        }
        Err(e) => Err(PaymentError::Storage(Fault::new(e))),
    }
}

/// The gateway that takes this payment's method.
fn gateway_of(
    gateways: &Gateways,
    payment: &PaymentRecord,
) -> Result<Arc<dyn Gateway>, PaymentError> {
    gateways.of(payment.method).cloned().ok_or_else(|| {
        PaymentError::Gateway(format!(
            "no gateway takes {} payments here",
            payment.method.as_str()
        ))
    })
}

/// A payment that cannot be applied as asked (a named bill was paid or
/// voided meanwhile): failed, nothing applied, the money given back
/// (`back`: the gateway's refund, or why it refused one).
fn failed(
    batch: &mut WriteBatch,
    payment: PaymentRecord,
    why: &ApplyError,
    back: &Refunded,
    at: Timestamp,
) -> PaymentRecord {
    let note = match back {
        Ok(reference) => format!("{why}; given back in full ({reference})"),
        Err(refusal) => {
            tracing::error!(payment = %payment.payment_id, refusal = %refusal, "a payment that could not be applied was not given back; staff must refund it at the gateway");
            format!("{why}; the gateway refused to give it back ({refusal}): staff must refund it")
        }
    };
    let failed = payment.step(PaymentStatus::Failed, None, Some(note), at);
    payments::write(batch, &failed);
    failed
}

/// The gateway's answer, asking again (with growing pauses) while it is
/// briefly away.
async fn ask<T, F>(payment: &PaymentRecord, mut call: impl FnMut() -> F) -> Result<T, PaymentError>
where
    F: Future<Output = Result<T, Transient>>,
{
    let mut pause = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match call().await {
            Ok(answer) => return Ok(answer),
            Err(e) => {
                tracing::warn!(payment = %payment.payment_id, error = %e, attempt, "payment gateway unavailable");
                last = e.0;
                if attempt < ATTEMPTS {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
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
                let gateway = gateway_of(&gateways, &payment)?;
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
            Err(e) => return Err(PaymentError::Storage(Fault::new(e))),
        }
    }
    Err(PaymentError::Busy)
}
