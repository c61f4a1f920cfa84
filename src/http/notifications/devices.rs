//! Push devices: register, list, remove.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::http::json::Json;
use crate::service::notification;
use crate::state::AppState;
use medrelay_protocol::notification::{DeviceRequest, DeviceView};

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register_device, list_devices))
        .routes(routes!(remove_device))
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
    let device = notification::register_device(&state, &principal, body).await?;
    Ok((StatusCode::CREATED, axum::Json(device)))
}

/// Your registered push devices.
#[utoipa::path(get, path = "/api/devices", tag = "notifications",
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_devices(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<Vec<DeviceView>>, AppError> {
    notification::devices(&state, &principal).map(axum::Json)
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
    notification::remove_device(&state, &principal, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
