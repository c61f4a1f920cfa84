//! Sending a notification now: e-mail, SMS and push (seed section 5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use medrelay_protocol::notification::NotificationChannel;
use medrelay_protocol::profile::Phone;
use medrelay_protocol::{Email, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::delivery::Draft;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::state::AppState;

use super::*;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(send_email))
        .routes(routes!(send_sms))
        .routes(routes!(send_push))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EmailRequest {
    #[schema(example = "johndoe@example.com")]
    to: String,
    #[schema(example = "Appointment Reminder")]
    subject: String,
    body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SmsRequest {
    #[schema(example = "+1234567890")]
    to: String,
    message: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    /// A device token.
    to: String,
    title: String,
    message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    /// `Queued` (a channel worker sends it), or `Sent` once it is out.
    status: &'static str,
    notification_id: String,
}

fn direct(
    channel: NotificationChannel,
    recipient: String,
    subject: Option<String>,
    body: String,
    by: &Principal,
) -> Draft {
    Draft {
        channel,
        recipient,
        subject,
        body,
        category: None,
        user_id: None,
        patient_id: None,
        appointment_id: None,
        due_at: None,
        created_by: Some(by.user_id.clone()),
        fallback: Vec::new(),
        fallback_of: None,
    }
}

async fn accept(
    state: &AppState,
    draft: Draft,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    let record = state.notifier.submit(draft).await?;
    tracing::info!(notification = %record.notification_id, channel = %record.channel, "notification queued");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "Queued",
            notification_id: record.notification_id,
        }),
    ))
}

/// Sends an e-mail (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/email", tag = "notifications", request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_email(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<EmailRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let limits = state.notifier.settings();
    let to = Email::parse(&body.to).map_err(|e| AppError::invalid("to", e))?;
    let subject = bounded("subject", &body.subject, limits.max_subject_chars)?;
    let text = bounded("body", &body.body, limits.max_body_chars)?;
    let draft = direct(
        NotificationChannel::Email,
        to.as_str().to_owned(),
        Some(subject),
        text,
        &principal,
    );
    accept(&state, draft).await
}

/// Sends a text message to an E.164 number (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/sms", tag = "notifications", request_body = SmsRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_sms(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<SmsRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let to = Phone::parse(&body.to).map_err(|e| AppError::invalid("to", e))?;
    let text = bounded(
        "message",
        &body.message,
        state.notifier.settings().max_sms_chars,
    )?;
    let draft = direct(
        NotificationChannel::Sms,
        to.as_str().to_owned(),
        None,
        text,
        &principal,
    );
    accept(&state, draft).await
}

/// Sends a push notification to a device token (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/push", tag = "notifications", request_body = PushRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_push(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<PushRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let limits = state.notifier.settings();
    let to = device_token("to", &body.to)?;
    let title = bounded("title", &body.title, limits.max_subject_chars)?;
    let text = bounded("message", &body.message, limits.max_body_chars)?;
    let draft = direct(NotificationChannel::Push, to, Some(title), text, &principal);
    accept(&state, draft).await
}
