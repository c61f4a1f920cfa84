//! Payments (seed: "Payment by patient Id", "Track payment by payment Id")
//! and refunds. Staff record desk payments (cash, the desk's card
//! terminal); patients (or staff for them) pay by card through the card
//! gateway, sending the gateway's token for the card. Each payment is
//! settled by its own `PaymentActor`, which applies it to the patient's
//! bills. Every request that moves money may carry an
//! `Idempotency-Key`: the first answer is kept for 24 hours and given again
//! for the same request; the same key with another request is 422
//! `idempotency_mismatch`; a second request while the first is in flight is
//! 409. Every access is audited like a bill's.

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action, AuditEntry};
use medrelay_actors::billing::payment_actor::{Begun, Open, Opening, PaymentError, Refund, Settle};
use medrelay_actors::billing::payments::{self, PaymentRecord};
use medrelay_actors::billing::{self, StoredBill};
use medrelay_actors::idempotency::{self, IdempotencyRecord};
use medrelay_actors::ids::new_id;
use medrelay_actors::patients;
use medrelay_actors::store::{Table, WriteBatch, WriteError};
use medrelay_protocol::payment::{
    PaymentList, PaymentMethod, PaymentRequest, PaymentStatus, PaymentView, RefundRequest,
};
use medrelay_protocol::{Money, PatientId, PaymentId, Role};

use super::{MAX_PAGE, MAX_SCANNED, in_days, may_see_payments, page};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, durably, entity, entry, refused};
pub use crate::service::idempotency::Answer;
use crate::service::idempotency::{Keyed, in_flight, keyed};
use crate::state::AppState;

/// Most bills one payment names.
const MAX_BILLS: usize = 100;
const MAX_REASON: usize = 200;

fn payment_id(raw: &str) -> Result<PaymentId, AppError> {
    PaymentId::parse(raw).map_err(|e| AppError::invalid("paymentId", e))
}

fn attempt(principal: &Principal, origin: &Origin, action: Action, id: &str) -> AuditEntry {
    entry(
        principal,
        origin,
        action,
        entity("Payment", Some(id), Vec::new()),
    )
}

impl From<PaymentError> for AppError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::NotFound(id) => AppError::NotFound(format!("no payment {id}")),
            PaymentError::NotRefundable(message) => AppError::Conflict {
                message,
                field: Some("amount".into()),
            },
            PaymentError::Gateway(why) => AppError::Unavailable(format!(
                "the payment gateway is unavailable ({why}); the payment stays pending and is settled when it is back"
            )),
            e @ (PaymentError::Busy | PaymentError::Taken) => AppError::Conflict {
                message: e.to_string(),
                field: None,
            },
            e @ (PaymentError::Storage(_) | PaymentError::Internal) => AppError::internal(e),
        }
    }
}

/// Records a desk payment for a patient and settles it (staff).
///
/// # Errors
/// 403; 404 for an unknown patient; 422 naming the field; the
/// answers an `Idempotency-Key` gives (see the module).
pub async fn pay(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_patient: &str,
    key: Option<&str>,
    body: PaymentRequest,
) -> Result<Answer, AppError> {
    let patient = crate::service::parse_patient_id(raw_patient)?;
    let id = PaymentId::parse(&new_id("pay")).expect("generated ids are valid");
    let mut this = attempt(principal, origin, Action::C, id.as_str());
    this.entity.patients = vec![patient.clone()];
    let allowed = match body.method {
        PaymentMethod::Card => may_see_payments(state, principal, &patient),
        PaymentMethod::Cash | PaymentMethod::CardTerminal => {
            principal.require(&[Role::Admin]).map_err(|_| {
                AppError::Forbidden("desk payments are recorded by the clinic's staff".into())
            })
        }
    };
    if let Err(e) = allowed {
        return Err(refused(state, this, e).await);
    }
    if !patients::is_live(&state.store, &patient)? {
        return Err(AppError::NotFound(format!("no patient {patient}")));
    }
    let card_token = super::input::card_token(
        state.settings.billing.card.enabled(),
        body.method,
        body.card_token.as_deref(),
    )?;
    let amount = positive("amount", body.amount, state.settings.billing.ceiling())?;
    let requested = named_bills(
        state,
        &patient,
        body.bill_ids.as_deref().unwrap_or_default(),
    )?;
    let canonical = serde_json::to_vec(&body).map_err(AppError::internal)?;
    for _ in 0..3 {
        let started = match keyed(
            state,
            principal,
            key,
            &[b"pay", patient.as_str().as_bytes(), &canonical],
        )? {
            Keyed::Replay(answer) => return Ok(answer),
            Keyed::InFlight(work) => {
                // Its payment may be stuck (a gateway away, a lost race):
                // drive it on; the retry after that gets the answer.
                if let Some(work) = work {
                    let payments = state.payments.clone();
                    tokio::spawn(async move { payments.send(&work, Settle).await });
                }
                return Err(in_flight());
            }
            started => started,
        };
        let now = Timestamp::now();
        let mut payment = PaymentRecord {
            payment_id: id.clone(),
            patient_id: patient.clone(),
            amount,
            method: body.method,
            status: PaymentStatus::Pending,
            requested: requested.clone(),
            allocations: Vec::new(),
            credited: Money::ZERO,
            refunded: Money::ZERO,
            gateway_reference: None,
            card_token: card_token.clone(),
            card_last4: None,
            refunding: None,
            refunds_asked: 0,
            refunds_made: Vec::new(),
            history: Vec::new(),
            idempotency_key: None,
            created_by: principal.user_id.clone(),
            created_at: now,
        };
        let begun = match started {
            Keyed::Start {
                key,
                record,
                expired,
            } => {
                payment.idempotency_key = Some(key.clone());
                let started = IdempotencyRecord {
                    work: Some(id.to_string()),
                    ..record
                };
                Some(Begun {
                    key,
                    expired,
                    started,
                })
            }
            _ => None,
        };
        let payment = payment.step(
            PaymentStatus::Pending,
            Some(principal.user_id.clone()),
            None,
            now,
        );
        let settled = if body.method == PaymentMethod::Card {
            // Written pending first: the gateway is asked only once the
            // payment is durable, so a crash meanwhile is settled again.
            let mut batch = WriteBatch::new();
            if let Some(begun) = &begun {
                idempotency::begin(
                    &mut batch,
                    &begun.key,
                    begun.expired.as_ref(),
                    &begun.started,
                );
            }
            payments::start(&mut batch, &payment);
            audit::record(&mut batch, &this);
            match state.store.write(batch).await {
                Ok(_) => {}
                // Another request under the same key started first: ask again.
                Err(WriteError::Exists { .. } | WriteError::Changed { .. }) => continue,
                Err(e) => return Err(AppError::internal(e)),
            }
            match state.payments.send(id.as_str(), Settle).await {
                Ok(Ok(settled)) => settled,
                // Durable and queued: the sweep settles it. Answered with
                // its id, so that the client follows this payment rather
                // than making another.
                Ok(Err(e @ (PaymentError::Gateway(_) | PaymentError::Busy))) => {
                    tracing::warn!(payment = %id, error = %e, "card payment accepted, not yet settled");
                    return Ok(Answer {
                        status: 202,
                        body: payments::written_body(&payment),
                    });
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => return Err(AppError::internal(e)),
            }
        } else {
            // The money is in hand: recorded and applied in one transaction.
            let opening = Opening {
                payment,
                idempotency: begun,
                audit: this.clone(),
            };
            match state.payments.send(id.as_str(), Open(opening)).await? {
                Err(PaymentError::Taken) => continue,
                settled => settled?,
            }
        };
        return Ok(Answer {
            status: 201,
            body: payments::written_body(&settled),
        });
    }
    Err(in_flight())
}

/// An amount above zero, acceptable as money here, or 422 naming `field`.
fn positive(field: &str, amount: Money, ceiling: Money) -> Result<Money, AppError> {
    let amount = amount
        .check(ceiling)
        .map_err(|e| AppError::invalid(field, e))?;
    if amount == Money::ZERO {
        return Err(AppError::invalid(field, "must be more than 0"));
    }
    Ok(amount)
}

/// The bills a payment names: each this patient's open bill, once.
fn named_bills(
    state: &AppState,
    patient: &PatientId,
    ids: &[medrelay_protocol::BillId],
) -> Result<Vec<medrelay_protocol::BillId>, AppError> {
    if ids.len() > MAX_BILLS {
        return Err(AppError::invalid(
            "billIds",
            format!("at most {MAX_BILLS} bills"),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let open = state
            .store
            .get::<StoredBill>(id.as_str())?
            .is_some_and(|b| b.patient_id == *patient && b.status.is_open());
        if !open || ids[..i].contains(id) {
            return Err(AppError::invalid(
                &format!("billIds[{i}]"),
                format!("{id} is not an open bill of patient {patient}, or is named twice"),
            ));
        }
    }
    Ok(ids.to_vec())
}

/// Gives back part or all of a succeeded payment (admins): credit first,
/// then what it paid on its bills, newest first.
///
/// # Errors
/// 403, 404; 409 for more than is left; 422 naming the field; the
/// answers an `Idempotency-Key` gives (see the module).
pub async fn refund(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_payment: &str,
    key: Option<&str>,
    body: RefundRequest,
) -> Result<Answer, AppError> {
    let id = payment_id(raw_payment)?;
    let mut this = attempt(principal, origin, Action::U, id.as_str());
    this.entity.detail = Some("refund".into());
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    let Some(payment) = state.store.get::<PaymentRecord>(id.as_str())? else {
        return Err(AppError::NotFound(format!("no payment {id}")));
    };
    this.entity.patients = vec![payment.patient_id.clone()];
    let amount = positive("amount", body.amount, state.settings.billing.ceiling())?;
    let reason = crate::service::text("reason", &body.reason, MAX_REASON)?;
    let canonical = serde_json::to_vec(&body).map_err(AppError::internal)?;
    let idempotency = match keyed(
        state,
        principal,
        key,
        &[b"refund", id.as_str().as_bytes(), &canonical],
    )? {
        Keyed::Replay(answer) => return Ok(answer),
        Keyed::InFlight(work) => {
            // A refund a stop interrupted: drive it on; the retry after
            // that gets the answer.
            if let Some(work) = work {
                let payments = state.payments.clone();
                tokio::spawn(async move { payments.send(&work, Settle).await });
            }
            return Err(in_flight());
        }
        Keyed::None => None,
        Keyed::Start {
            key,
            record,
            expired,
        } => {
            // The record names the payment, whose journalled refund
            // answers it, even when the sweep completes the refund.
            let record = IdempotencyRecord {
                work: Some(id.to_string()),
                ..record
            };
            let mut batch = WriteBatch::new();
            idempotency::begin(&mut batch, &key, expired.as_ref(), &record);
            match state.store.write(batch).await {
                Ok(_) => Some((key, record)),
                Err(WriteError::Exists { .. } | WriteError::Changed { .. }) => {
                    return Err(in_flight());
                }
                Err(e) => return Err(AppError::internal(e)),
            }
        }
    };
    let attempt = new_id("rfd");
    let asked = Refund {
        amount,
        reason,
        by: principal.user_id.clone(),
        request_key: idempotency.as_ref().map(|(key, _)| key.clone()),
        attempt: attempt.clone(),
        audit: this.clone(),
    };
    let outcome = match state.payments.send(id.as_str(), asked).await {
        Ok(outcome) => outcome,
        Err(mailbox) => {
            tracing::error!(payment = %id, error = %mailbox, "no payment actor took a refund");
            Err(PaymentError::Internal)
        }
    };
    match outcome {
        Ok(refunded) => Ok(Answer {
            status: 201,
            body: payments::written_body(&refunded),
        }),
        Err(e) => {
            // Journalled and not yet recorded (the gateway away, a write
            // that failed): the sweep completes it and answers the key,
            // so the key is kept and the request told it is under way.
            let journalled = state
                .store
                .get::<PaymentRecord>(id.as_str())?
                .and_then(|p| p.refunding)
                .is_some_and(|r| r.attempt == attempt);
            if journalled {
                tracing::warn!(payment = %id, error = %e, "refund accepted, not yet made");
                return Ok(Answer {
                    status: 202,
                    body: payments::written_body(&payment),
                });
            }
            // Not journalled, or refused (before the gateway was asked, or
            // by it): the key is free for a corrected request. A refusal
            // by the gateway has freed it already.
            if let Some((key, record)) = idempotency {
                let mut batch = WriteBatch::new();
                batch.require_equal(key.as_str(), &record);
                batch.delete(Table::IdempotencyKeys, key);
                match state.store.write(batch).await {
                    Ok(_) | Err(WriteError::Changed { .. } | WriteError::Missing { .. }) => {}
                    Err(w) => {
                        tracing::warn!(error = %w, "could not free an idempotency key after a refused refund");
                    }
                }
            }
            Err(refused(state, this, e.into()).await)
        }
    }
}

/// A payment: the patient's own, or any for admins.
///
/// # Errors
/// 403, 404.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    raw_payment: &str,
) -> Result<PaymentView, AppError> {
    let id = payment_id(raw_payment)?;
    let mut this = attempt(principal, origin, Action::R, id.as_str());
    let Some(payment) = state.store.get::<PaymentRecord>(id.as_str())? else {
        let e = if principal.role == Role::Patient {
            AppError::Forbidden("patients read only their own payments".into())
        } else {
            AppError::NotFound(format!("no payment {id}"))
        };
        return Err(refused(state, this, e).await);
    };
    this.entity.patients = vec![payment.patient_id.clone()];
    if let Err(e) = may_see_payments(state, principal, &payment.patient_id) {
        return Err(refused(state, this, e).await);
    }
    durably(state, &this).await?;
    Ok(view(state, payment))
}

/// The filters of `GET /api/payments`.
#[derive(Debug, Default)]
pub struct PaymentQuery {
    /// Whose payments (patients: their own, the default).
    pub patient_id: Option<PatientId>,
    /// Only payments in this state.
    pub status: Option<PaymentStatus>,
    /// Made on or after this day (UTC).
    pub from: Option<jiff::civil::Date>,
    /// Made on or before this day (UTC).
    pub to: Option<jiff::civil::Date>,
    /// Payments whose id sorts after this one.
    pub after: Option<PaymentId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// Payments by id, filtered; admins may leave out `patientId`.
///
/// # Errors
/// 403; 422 for a bad limit.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    q: PaymentQuery,
) -> Result<PaymentList, AppError> {
    let limit = crate::service::page_size(q.limit, MAX_PAGE, MAX_PAGE)?;
    let patient = match (&q.patient_id, principal.role) {
        (Some(p), _) => Some(p.clone()),
        (None, Role::Admin) => None,
        (None, _) => crate::service::schedule::viewer(state, principal)?.patient_id,
    };
    let mut this = entry(
        principal,
        origin,
        Action::E,
        entity("Payment", None, patient.iter().cloned().collect()),
    );
    this.entity.detail = Some("list".into());
    let ids = match &patient {
        Some(p) => {
            if let Err(e) = may_see_payments(state, principal, p) {
                return Err(refused(state, this, e).await);
            }
            let mut ids = payments::of_patient(&state.store, p, billing::MAX_PATIENT_BILLS)?;
            if let Some(after) = &q.after {
                ids.retain(|id| id > after);
            }
            ids.truncate(MAX_SCANNED);
            ids
        }
        None if principal.role == Role::Admin => state
            .store
            .scan::<PaymentRecord>(q.after.as_ref().map(PaymentId::as_str), MAX_SCANNED)?
            .into_iter()
            .map(|(_, p)| p.payment_id)
            .collect(),
        None => {
            let e = AppError::Forbidden(
                "payments are read by the patient and the clinic's staff".into(),
            );
            return Err(refused(state, this, e).await);
        }
    };
    let (found, next) = page(ids, limit, PaymentId::to_string, |id| {
        let Some(payment) = state.store.get::<PaymentRecord>(id.as_str())? else {
            return Ok(None);
        };
        let wanted = q.status.is_none_or(|s| payment.status == s)
            && in_days(payment.created_at, q.from, q.to);
        Ok(wanted.then(|| view(state, payment)))
    })?;
    durably(state, &this).await?;
    Ok(PaymentList {
        payments: found,
        next,
    })
}

fn view(state: &AppState, p: PaymentRecord) -> PaymentView {
    PaymentView {
        payment_id: p.payment_id,
        patient_id: p.patient_id,
        amount: p.amount,
        currency: state.settings.billing.currency.clone(),
        method: p.method,
        status: p.status,
        allocations: p.allocations,
        credited: p.credited,
        refunded: p.refunded,
        gateway_reference: p.gateway_reference,
        card_last4: p.card_last4,
        history: p.history,
        created_at: p.created_at,
    }
}
