//! Refunds, journalled. The refund is written on its payment
//! ([`RefundAsked`]) and queued before the gateway is asked; then the
//! gateway gives the money back under `<payment>-refund-<n>`, and the refund
//! is recorded: credit first, then the bills the payment paid. A stop in
//! between leaves the journal and the queue entry, and the sweep completes
//! the refund, asking the gateway again under the same key, so the money
//! goes back once and is recorded once.

use jiff::Timestamp;
use medrelay_protocol::payment::PaymentStatus;

use super::gateway::{Gateway, Gateways};
use super::payments::{self, PaymentRecord, RefundAsked, UnsettledPayment};
use super::settling::{ATTEMPTS, KEY_KEPT, PaymentError, ask, gateway_of};
use crate::audit::AuditEntry;
use crate::fault::Fault;
use crate::idempotency::{self, IdempotencyRecord};
use crate::phi::Vault;
use crate::store::{Store, Table, WriteBatch, WriteError};

/// Journals a refund of `asked.amount` of payment `id` and completes it.
///
/// # Errors
/// [`PaymentError::NotRefundable`] for a payment not paid, more than is
/// left, or a refusal by the gateway; [`PaymentError::Gateway`] while the
/// gateway is away (the journal stays; the sweep completes it).
pub(super) async fn refund(
    store: &Store,
    vault: &Vault,
    gateways: &Gateways,
    id: &str,
    asked: RefundAsked,
    audit: &AuditEntry,
) -> Result<PaymentRecord, PaymentError> {
    for _ in 0..ATTEMPTS {
        let Some(payment) = store.get::<PaymentRecord>(id)? else {
            return Err(PaymentError::NotFound(id.to_owned()));
        };
        // No gateway for its method any more: nothing can be given back here.
        let gateway = gateway_of(gateways, &payment)
            .map_err(|e| PaymentError::NotRefundable(e.to_string()))?;
        if payment.refunding.is_some() {
            // An earlier refund a stop interrupted goes first; its refusal
            // is its own, not this one's.
            match complete(store, vault, Some(gateway.as_ref()), payment).await {
                Ok(_) | Err(PaymentError::NotRefundable(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        if !matches!(
            payment.status,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
        ) {
            return Err(PaymentError::NotRefundable(format!(
                "a {} payment is not refunded",
                payment.status.as_str()
            )));
        }
        if asked.amount > payment.refundable() {
            return Err(PaymentError::NotRefundable(format!(
                "only {} of this payment is left to refund",
                payment.refundable()
            )));
        }
        let mut journalled = payment.clone();
        journalled.refunds_asked += 1;
        journalled.refunding = Some(RefundAsked {
            number: journalled.refunds_asked,
            ..asked.clone()
        });
        let mut batch = WriteBatch::new();
        batch.require_equal(id, &payment);
        batch.put(id, &journalled);
        batch.put(id, &UnsettledPayment {});
        crate::audit::record(&mut batch, audit);
        match store.write(batch).await {
            Ok(_) => return complete(store, vault, Some(gateway.as_ref()), journalled).await,
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => return Err(PaymentError::Storage(Fault::new(e))),
        }
    }
    Err(PaymentError::Busy)
}

/// Completes a refund a stop interrupted, if payment `id` has one
/// (`None`: it has none).
///
/// # Errors
/// As [`refund`].
pub(super) async fn interrupted(
    store: &Store,
    vault: &Vault,
    gateways: &Gateways,
    id: &str,
) -> Result<Option<PaymentRecord>, PaymentError> {
    let Some(payment) = store
        .get::<PaymentRecord>(id)?
        .filter(|p| p.refunding.is_some())
    else {
        return Ok(None);
    };
    let gateway = gateways.of(payment.method).map(AsRef::as_ref);
    complete(store, vault, gateway, payment).await.map(Some)
}

/// Completes the refund journalled on `payment`: the gateway gives it back
/// (once, under its key), then it is recorded and the journal cleared, or,
/// refused (or with no gateway for the payment's method any more), the
/// journal is cleared and nothing changes.
///
/// # Errors
/// As [`refund`].
pub(super) async fn complete(
    store: &Store,
    vault: &Vault,
    gateway: Option<&dyn Gateway>,
    payment: PaymentRecord,
) -> Result<PaymentRecord, PaymentError> {
    let Some(asked) = payment.refunding.clone() else {
        return Ok(payment);
    };
    let id = payment.payment_id.to_string();
    let key = format!("{id}-refund-{}", asked.number);
    let back = match gateway {
        Some(gateway) => {
            // Past the gateway's memory of the key, the refund is looked
            // for first: a refund made before a long stop is not made again.
            let found = if Timestamp::now().duration_since(asked.asked_at) > KEY_KEPT {
                ask(&payment, || gateway.find_refund(&payment, &key)).await?
            } else {
                None
            };
            match found {
                Some(back) => back,
                None => {
                    ask(&payment, || {
                        gateway.refund(&payment, asked.amount, key.clone())
                    })
                    .await?
                }
            }
        }
        None => Err(format!(
            "no gateway takes {} payments here any more",
            payment.method.as_str()
        )),
    };
    for _ in 0..ATTEMPTS {
        let Some(current) = store.get::<PaymentRecord>(&id)? else {
            return Err(PaymentError::NotFound(id));
        };
        if current.refunding.as_ref() != Some(&asked) {
            return Ok(current);
        }
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        batch.require_equal(id.as_str(), &current);
        batch.delete(Table::PaymentQueue, id.as_str());
        let mut base = current.clone();
        base.refunding = None;
        let answer = match &back {
            Ok(reference) => {
                let note = format!("refunded {} ({reference}): {}", asked.amount, asked.reason);
                let refunded = payments::refund(
                    &mut batch,
                    store,
                    vault,
                    &base,
                    asked.amount,
                    note,
                    &asked.by,
                    now,
                )?;
                Ok(refunded)
            }
            Err(why) => {
                batch.put(id.as_str(), &base);
                Err(PaymentError::NotRefundable(format!(
                    "the gateway refused the refund: {why}"
                )))
            }
        };
        if let Some(request) = &asked.request_key {
            answered(&mut batch, store, request, &answer)?;
        }
        match store.write(batch).await {
            Ok(_) => {
                if let Ok(refunded) = &answer {
                    tracing::info!(payment = %id, amount = %asked.amount, status = refunded.status.as_str(), "payment refunded");
                }
                return answer;
            }
            Err(WriteError::Changed { .. }) => continue,
            Err(e) => {
                return Err(unrecorded(&id, &back, PaymentError::Storage(Fault::new(e))));
            }
        }
    }
    Err(unrecorded(&id, &back, PaymentError::Busy))
}

/// Adds to `batch` the answer of the request that asked for the refund,
/// kept under its idempotency key while in flight: 201 for a refund made;
/// a refused one frees the key for a corrected request.
fn answered(
    batch: &mut WriteBatch,
    store: &Store,
    request: &str,
    answer: &Result<PaymentRecord, PaymentError>,
) -> Result<(), PaymentError> {
    let Some(started) = store.get::<IdempotencyRecord>(request)? else {
        return Ok(());
    };
    if started.response.is_some() {
        return Ok(());
    }
    batch.require_equal(request, &started);
    match answer {
        Ok(refunded) => {
            idempotency::finish(
                batch,
                request,
                &started,
                201,
                payments::written_body(refunded),
            );
        }
        Err(_) => {
            batch.delete(Table::IdempotencyKeys, request);
        }
    }
    Ok(())
}

/// `e`, said loudly when the gateway already gave the money back: the
/// refund is not recorded yet. Its journal stays, and the sweep completes
/// it under the same key (given back once).
fn unrecorded(id: &str, back: &Result<String, String>, e: PaymentError) -> PaymentError {
    if let Ok(reference) = back {
        tracing::error!(payment = %id, refund = %reference, error = %e, "a refund the gateway made is not recorded yet; the sweep completes it");
    }
    e
}
