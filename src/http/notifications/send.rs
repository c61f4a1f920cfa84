//! Sending a notification now: e-mail, SMS and push (seed section 5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::service::notification;
use crate::state::AppState;
use medrelay_protocol::notification::{Accepted, EmailRequest, PushRequest, SmsRequest};

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(send_email))
        .routes(routes!(send_sms))
        .routes(routes!(send_push))
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
    let accepted = notification::send_email(&state, &principal, body).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)))
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
    let accepted = notification::send_sms(&state, &principal, body).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)))
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
    let accepted = notification::send_push(&state, &principal, body).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)))
}
