//! A user's notification preferences.

use std::sync::Arc;

use axum::extract::State;
use medrelay_actors::notify::PreferencesRecord;
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::notification::{NotificationChannel, NotificationPreferences};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::state::AppState;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

/// Your notification preferences (defaults until you set them).
#[utoipa::path(get, path = "/api/users/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
    Ok(axum::Json(medrelay_actors::notify::preferences(
        &state.store,
        &principal.user_id,
    )?))
}

/// Replaces your notification preferences; in force at once, also for
/// reminders already scheduled.
#[utoipa::path(put, path = "/api/users/me/notification-preferences", tag = "notifications",
    request_body = Object,
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn put_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(prefs): Json<NotificationPreferences>,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
    if !matches!(
        prefs.preferred_channel,
        NotificationChannel::Email | NotificationChannel::Sms
    ) {
        return Err(AppError::invalid(
            "preferredChannel",
            "must be email or sms",
        ));
    }
    if let Some(tz) = &prefs.time_zone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(AppError::invalid(
            "timeZone",
            format!("unknown IANA time zone {tz:?}"),
        ));
    }
    if let Some(q) = &prefs.quiet_hours
        && q.start == q.end
    {
        return Err(AppError::invalid("quietHours", "start and end must differ"));
    }
    let mut batch = WriteBatch::new();
    batch.put(
        principal.user_id.as_str(),
        &PreferencesRecord(prefs.clone()),
    );
    state.store.write(batch).await.map_err(AppError::internal)?;
    tracing::info!(user = %principal.user_id, "notification preferences saved");
    Ok(axum::Json(prefs))
}
