//! Twilio's delivery-status callbacks.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use medrelay_protocol::notification::DeliveryStatus;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::delivery::providers::{status_callback_url, verify_twilio_signature};
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::state::AppState;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(twilio_status))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    notification_id: String,
}

/// Twilio's delivery callback; answered only when `X-Twilio-Signature` is
/// right for the configured auth token and public URL.
#[utoipa::path(post, path = "/api/notifications/twilio/status", tag = "notifications",
    params(CallbackQuery),
    responses((status = 204), (status = 403, body = ErrorEnvelope)))]
async fn twilio_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    use secrecy::ExposeSecret;
    let forbidden = || AppError::Forbidden("missing or wrong X-Twilio-Signature".into());
    let settings = state.notifier.settings();
    let token = settings.sms.auth_token.expose_secret();
    if token.is_empty() || settings.public_url.trim().is_empty() {
        return Err(forbidden());
    }
    let Ok(Query(q)) = query else {
        return Err(forbidden());
    };
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        tracing::warn!("Twilio callback without a signature refused");
        return Err(forbidden());
    };
    let params: Vec<(String, String)> = serde_urlencoded_pairs(&body).ok_or_else(forbidden)?;
    let url = status_callback_url(&settings.public_url, &q.notification_id);
    if !verify_twilio_signature(token, &url, &params, signature) {
        tracing::warn!(notification = %q.notification_id, "Twilio callback with a wrong signature refused");
        return Err(forbidden());
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let sid = field("MessageSid");
    let (status, detail) = match field("MessageStatus").as_deref() {
        Some("delivered") => (DeliveryStatus::Delivered, None),
        Some("sent") => (DeliveryStatus::Sent, None),
        Some(s @ ("undelivered" | "failed")) => (
            DeliveryStatus::Undeliverable,
            Some(format!(
                "Twilio reports {s} (error {})",
                field("ErrorCode").unwrap_or_default()
            )),
        ),
        // queued, sending, accepted: nothing new to record.
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    state
        .notifier
        .provider_report(&q.notification_id, status, sid, detail)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in order.
fn serde_urlencoded_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    if body.len() > 16 * 1024 {
        return None;
    }
    Some(
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}
