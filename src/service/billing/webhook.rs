//! The card gateway's webhook (`POST /api/payments/webhook`): an event is
//! taken only with a fresh, matching `Stripe-Signature`
//! ([`crate::card_gateway::webhook`]); what it says about a charge goes to
//! that payment's `PaymentActor`, which acts on each event id once.

use medrelay_actors::billing::payment_actor::{Outcome, PaymentError};
use medrelay_actors::billing::payments::{GatewayEvent, PaymentRecord};
use medrelay_protocol::PaymentId;
use secrecy::ExposeSecret;

use crate::card_gateway::webhook::{self, Event, Rejected};
use crate::error::AppError;
use crate::state::AppState;

/// Longest event id taken.
const MAX_EVENT_ID: usize = 255;

/// Takes one webhook request. Events medrelay has no use for (other kinds,
/// other systems' payments) are answered 200 and dropped, so the gateway
/// stops sending them.
///
/// # Errors
/// 400 for an unsigned, stale or forged request or an unreadable event,
/// 422 for an event id out of bounds; 404 when the clinic has no card
/// gateway; 503 while the payment cannot take the news (the gateway sends
/// it again later).
pub async fn receive(
    state: &AppState,
    signature: Option<&str>,
    body: &[u8],
) -> Result<&'static str, AppError> {
    let card = &state.settings.billing.card;
    if !card.enabled() {
        return Err(AppError::NotFound("this clinic has no card gateway".into()));
    }
    let secret = card.webhook_secret.expose_secret().as_bytes();
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) = webhook::verify(secret, signature.unwrap_or_default(), body, now) {
        tracing::warn!(reason = %e, "card gateway webhook refused");
        return Err(e.into());
    }
    let event: Event = serde_json::from_slice(body).map_err(|e| AppError::BadRequest {
        message: format!("not a gateway event: {e}"),
        field: Some("body".into()),
    })?;
    if event.id.is_empty() || event.id.len() > MAX_EVENT_ID {
        return Err(AppError::invalid(
            "id",
            format!("1 to {MAX_EVENT_ID} characters"),
        ));
    }
    // Acted on already: said so without asking the payment (the write that
    // records an event requires it absent, so a replay racing the first
    // delivery changes nothing either).
    if state.store.get::<GatewayEvent>(&event.id)?.is_some() {
        tracing::debug!(event = %event.id, "card gateway event delivered again");
        return Ok("replayed");
    }
    let Some(intent) = event.payment_intent() else {
        tracing::debug!(event = %event.id, kind = %event.kind, "card gateway event of no use here");
        return Ok("ignored");
    };
    let ours = intent
        .metadata
        .get("payment_id")
        .and_then(|id| PaymentId::parse(id).ok());
    let Some(id) = ours else {
        tracing::info!(event = %event.id, "card gateway event for a charge medrelay did not make");
        return Ok("ignored");
    };
    let Some(payment) = state.store.get::<PaymentRecord>(id.as_str())? else {
        tracing::warn!(event = %event.id, payment = %id, "card gateway event for an unknown payment");
        return Ok("ignored");
    };
    if payment
        .gateway_reference
        .as_deref()
        .is_some_and(|known| known != intent.id)
    {
        tracing::warn!(event = %event.id, payment = %id, "card gateway event names another charge of this payment");
        return Ok("ignored");
    }
    let told = Outcome {
        charge: intent.charge(),
        event: event.id.clone(),
    };
    match state.payments.send(id.as_str(), told).await {
        Ok(Ok(p)) => {
            tracing::info!(event = %event.id, payment = %id, status = p.status.as_str(), "card gateway event taken");
            Ok("taken")
        }
        Ok(Err(e @ (PaymentError::Gateway(_) | PaymentError::Busy))) => {
            Err(AppError::Unavailable(e.to_string()))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(AppError::internal(e)),
    }
}

impl From<Rejected> for AppError {
    fn from(e: Rejected) -> Self {
        AppError::BadRequest {
            message: e.to_string(),
            field: Some("Stripe-Signature".into()),
        }
    }
}
