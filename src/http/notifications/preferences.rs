//! A user's notification preferences.

use std::sync::Arc;

use axum::extract::State;
use medrelay_protocol::notification::NotificationPreferences;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::service::notification;
use crate::state::AppState;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

/// Your notification preferences (defaults until you set them).
#[utoipa::path(get, path = "/api/users/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = NotificationPreferences), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
    notification::preferences(&state, &principal).map(axum::Json)
}

/// Replaces your notification preferences; in force at once, also for
/// reminders already scheduled.
#[utoipa::path(put, path = "/api/users/me/notification-preferences", tag = "notifications",
    request_body = NotificationPreferences,
    responses((status = 200, body = NotificationPreferences), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn put_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(prefs): Json<NotificationPreferences>,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
    notification::set_preferences(&state, &principal, prefs)
        .await
        .map(axum::Json)
}
