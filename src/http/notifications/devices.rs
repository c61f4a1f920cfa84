//! Push devices: register, list, remove.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use medrelay_actors::notify::{DeviceRecord, Platform, device_key};
use medrelay_actors::store::WriteBatch;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::state::AppState;

use super::*;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register_device, list_devices))
        .routes(routes!(remove_device))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeviceRequest {
    /// 1 to 4096 printable characters, without spaces or `/`.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[!-.0-~]+$")]
    token: String,
    /// `android`, `ios` or `web`.
    #[schema(pattern = "^(android|ios|web)$")]
    platform: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeviceView {
    token: String,
    /// `android`, `ios` or `web`.
    #[schema(value_type = String)]
    platform: Platform,
    #[schema(value_type = String)]
    registered_at: Timestamp,
}

/// Registers a push device for your account.
#[utoipa::path(post, path = "/api/devices", tag = "notifications", request_body = DeviceRequest,
    responses((status = 201, body = DeviceView), (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn register_device(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<DeviceRequest>,
) -> Result<(StatusCode, axum::Json<DeviceView>), AppError> {
    let token = device_token("token", &body.token)?;
    let platform = Platform::parse(&body.platform)
        .ok_or_else(|| AppError::invalid("platform", "must be android, ios or web"))?;
    let known = state.notifier.devices(&principal.user_id)?;
    let max = state.notifier.settings().max_devices_per_user;
    if !known.iter().any(|d| d.token == token) && known.len() >= max {
        return Err(AppError::Conflict {
            message: format!("at most {max} devices per account; remove one first"),
            field: Some("token".into()),
        });
    }
    let record = DeviceRecord {
        token,
        platform,
        registered_at: Timestamp::now(),
    };
    let mut batch = WriteBatch::new();
    batch.put(device_key(&principal.user_id, &record.token), &record);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(DeviceView::from(record))))
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        DeviceView {
            token: d.token,
            platform: d.platform,
            registered_at: d.registered_at,
        }
    }
}

/// Your registered push devices.
#[utoipa::path(get, path = "/api/devices", tag = "notifications",
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_devices(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<Vec<DeviceView>>, AppError> {
    let devices = state.notifier.devices(&principal.user_id)?;
    Ok(axum::Json(
        devices.into_iter().map(DeviceView::from).collect(),
    ))
}

/// Removes one of your push devices.
#[utoipa::path(delete, path = "/api/devices/{token}", tag = "notifications",
    params(("token" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn remove_device(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(token): Path<String>,
) -> Result<StatusCode, AppError> {
    let token = device_token("token", &token)?;
    let key = device_key(&principal.user_id, &token);
    if state.store.get::<DeviceRecord>(&key)?.is_none() {
        return Err(AppError::NotFound("no such device".into()));
    }
    let mut batch = WriteBatch::new();
    batch.delete(medrelay_actors::store::Table::Devices, key);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}
