//! How a payment is settled: charged through its gateway (asked again
//! while the gateway is briefly away), then recorded, applied or refused,
//! in one compare-and-swapped transaction ([`conclude`]), whether the
//! charge's answer came from the request, from asking the gateway again
//! after a stop, or from a webhook. The [`PaymentActor`](super::payment_actor::PaymentActor)
//! runs these one at a time per payment.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use medrelay_protocol::payment::PaymentStatus;

use super::gateway::{Charge, Desk, Gateway, Gateways, Refunded, Transient};
use super::payments::{self, ApplyError, GatewayEvent, PaymentRecord};
use crate::audit::AuditEntry;
use crate::fault::Fault;
use crate::idempotency::{self, IdempotencyRecord};
use crate::patients::PatientError;
use crate::phi::Vault;
use crate::store::{Store, Table, WriteBatch, WriteError};

/// How often a write that lost a compare-and-swap, or a charge that met a
/// gateway briefly away, is tried.
pub(super) const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// How long a gateway is trusted to remember an idempotency key (Stripe
/// keeps them 24 hours), with an hour to spare.
pub(super) const KEY_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(23);

/// Why a payment could not be settled or refunded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PaymentError {
    /// No such payment.
    #[error("no payment {0}")]
    NotFound(String),
    /// The refund asks for more than is left, or the payment is not paid.
    #[error("{0}")]
    NotRefundable(String),
    /// The gateway stayed away: a payment stays pending and is settled
    /// again later; a refund is not made.
    #[error("the payment gateway is unavailable: {0}")]
    Gateway(String),
    /// Its bills kept changing under it.
    #[error("the patient's bills kept changing; try again")]
    Busy,
    /// Another request took the payment's idempotency key (or its id)
    /// first: nothing was written.
    #[error("another request took this idempotency key first")]
    Taken,
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

pub(super) async fn settle(
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
    let Some(gateway) = gateways.of(payment.method).cloned() else {
        // The clinic no longer has a gateway for this method (its card
        // gateway was switched off): the payment cannot be charged, and
        // waiting would keep it, and its request's key, open for ever.
        let why = format!(
            "no gateway takes {} payments here any more",
            payment.method.as_str()
        );
        let refused = Charge::Refused(why);
        return conclude(&store, &vault, &Desk, &id, &refused, (None, None)).await;
    };
    // A charge the gateway took as processing is asked about; any other is
    // sent (again): the payment's id as idempotency key makes the gateway
    // answer a repeat with the first charge, never a second one.
    // A payment old enough for the gateway to have forgotten its key is
    // looked for by its id first: a charge whose answer was lost must not
    // be made again.
    let found = if Timestamp::now().duration_since(payment.created_at) > KEY_KEPT {
        ask(&payment, || gateway.find(&payment)).await?
    } else {
        None
    };
    let charge = match (found, &payment.status, &payment.gateway_reference) {
        (Some(found), _, _) => found,
        (None, PaymentStatus::Processing, Some(reference)) => {
            let reference = reference.clone();
            ask(&payment, || gateway.outcome(&payment, &reference)).await?
        }
        _ => ask(&payment, || gateway.charge(&payment)).await?,
    };
    conclude(&store, &vault, gateway.as_ref(), &id, &charge, (None, None)).await
}

/// Records the payment `opening` holds and settles it in one transaction,
/// for a gateway that answers at once (the desk: the money is in hand):
/// nothing can happen between writing it and applying it, so there is no
/// pending state to write first. A card payment is written `pending`
/// first instead, and settled by [`settle`].
pub(super) async fn open(
    store: &Store,
    vault: &Vault,
    gateways: &Gateways,
    opening: &Opening,
) -> Result<PaymentRecord, PaymentError> {
    let payment = &opening.payment;
    let gateway = gateway_of(gateways, payment)?;
    let charge = ask(payment, || gateway.charge(payment)).await?;
    let id = payment.payment_id.as_str();
    conclude(
        store,
        vault,
        gateway.as_ref(),
        id,
        &charge,
        (None, Some(opening)),
    )
    .await
}

/// The gateway's later word on a charge (a webhook's event), acted on once.
pub(super) async fn told(
    store: &Store,
    vault: &Vault,
    gateways: &Gateways,
    id: &str,
    charge: &Charge,
    event: &str,
) -> Result<PaymentRecord, PaymentError> {
    let Some(payment) = store.get::<PaymentRecord>(id)? else {
        return Err(PaymentError::NotFound(id.to_owned()));
    };
    let gateway = gateway_of(gateways, &payment)?;
    conclude(
        store,
        vault,
        gateway.as_ref(),
        id,
        charge,
        (Some(event), None),
    )
    .await
}

/// A payment to record and settle at once (see [`Open`](super::payment_actor::Open)), with the request's
/// idempotency record and audit entry, written in the same transaction.
#[derive(Debug, Clone)]
pub struct Opening {
    /// The payment, `pending`.
    pub payment: PaymentRecord,
    /// The request's idempotency key, taken by this transaction.
    pub idempotency: Option<Begun>,
    /// The audit entry of the request.
    pub audit: AuditEntry,
}

/// An idempotency key a request takes.
#[derive(Debug, Clone)]
pub struct Begun {
    /// Its store key.
    pub key: String,
    /// The expired record it replaces, if any.
    pub expired: Option<IdempotencyRecord>,
    /// The record, in flight.
    pub started: IdempotencyRecord,
}

impl Opening {
    /// Adds to `batch` what the request writes: its key and the payment's
    /// id required free, the audit entry. The payment itself is written
    /// once, settled: it is never seen pending, so no `pending` event is
    /// sent for it (its history keeps the step).
    fn open(&self, batch: &mut WriteBatch) {
        if let Some(begun) = &self.idempotency {
            idempotency::begin(batch, &begun.key, begun.expired.as_ref(), &begun.started);
        }
        batch.require_absent(Table::Payments, self.payment.payment_id.as_str());
        crate::audit::record(batch, &self.audit);
    }
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
    (event, opening): (Option<&str>, Option<&Opening>),
) -> Result<PaymentRecord, PaymentError> {
    // Card money given back because it could not be applied as asked: a
    // later attempt must not apply it after all (a bill reopened meanwhile).
    let mut given_back: Option<(Refunded, ApplyError)> = None;
    for _ in 0..ATTEMPTS {
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        let payment = match opening {
            Some(opening) => {
                opening.open(&mut batch);
                opening.payment.clone()
            }
            None => match store.get::<PaymentRecord>(id)? {
                Some(payment) => {
                    batch.require_equal(id, &payment);
                    payment
                }
                None => return Err(PaymentError::NotFound(id.to_owned())),
            },
        };
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
        let settled = match charge {
            Charge::Paid { reference, last4 } => {
                let mut charged = payment.clone();
                charged.gateway_reference = Some(reference.clone());
                charged.card_last4.clone_from(last4);
                charged.card_token = None;
                let mut applied = WriteBatch::new();
                let by = payment.created_by.clone();
                let outcome = match &given_back {
                    Some((_, why)) => Err(why.clone()),
                    None => payments::apply(&mut applied, store, vault, &charged, &by, now)?,
                };
                match outcome {
                    Ok(paid) => {
                        batch.absorb(applied);
                        paid
                    }
                    Err(e) => {
                        // Taken but not wanted as asked (a named bill was
                        // paid or voided meanwhile): given back in full,
                        // under a key that makes asking again give it once.
                        let back = match given_back.take() {
                            Some((back, _)) => back,
                            None => {
                                let key = format!("{id}-unapplied");
                                let asked =
                                    || gateway.refund(&charged, charged.amount, key.clone());
                                ask(&charged, asked).await?
                            }
                        };
                        let settled = failed(&mut batch, charged, &e, &back, now);
                        given_back = Some((back, e));
                        settled
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
        let body = || payments::written_body(&settled);
        match opening {
            // Opened and settled in this one transaction: nothing to queue,
            // and the request's key is answered as it is taken.
            Some(Opening {
                idempotency: Some(begun),
                ..
            }) => idempotency::finish(&mut batch, &begun.key, &begun.started, 201, body()),
            Some(_) => {}
            None => {
                if settled.status.is_final() {
                    batch.delete(Table::PaymentQueue, id);
                }
                if let Some(key) = &payment.idempotency_key {
                    finish(&mut batch, store, key, &payment, body())?;
                }
            }
        }
        match store.write(batch).await {
            Ok(_) => {
                tracing::info!(payment = %id, status = settled.status.as_str(), amount = %settled.amount, "payment settled");
                return Ok(settled);
            }
            Err(
                WriteError::Changed { table, .. }
                | WriteError::Exists { table, .. }
                | WriteError::Missing { table, .. },
            ) => {
                if let Some(event) = event
                    && store.get::<GatewayEvent>(event)?.is_some()
                {
                    return Ok(store.get::<PaymentRecord>(id)?.unwrap_or(payment));
                }
                let key_taken = [Table::IdempotencyKeys, Table::Payments]
                    .iter()
                    .any(|t| t.name() == table);
                if opening.is_some() && key_taken {
                    return Err(PaymentError::Taken);
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
        // The payment moved meanwhile: the gateway sends the event again.
        Err(WriteError::Changed { .. } | WriteError::Missing { .. }) => Err(PaymentError::Busy),
        Err(e) => Err(PaymentError::Storage(Fault::new(e))),
    }
}

/// The gateway that takes this payment's method.
pub(super) fn gateway_of(
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
pub(super) async fn ask<T, F>(
    payment: &PaymentRecord,
    mut call: impl FnMut() -> F,
) -> Result<T, PaymentError>
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
