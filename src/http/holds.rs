//! `/api/providers/{providerId}/holds`: a patient keeps a slot for a few
//! minutes while they fill in a booking form. Each route parses, calls
//! [`crate::service::holds`], and renders.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use medrelay_protocol::ProviderId;
use medrelay_protocol::schedule::{HoldSlot, SlotHold};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::{holds, schedule};
use crate::state::AppState;

/// The routes of this file.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(hold))
        .routes(routes!(release))
}

fn provider_id(raw: &str) -> Result<ProviderId, AppError> {
    ProviderId::parse(raw).map_err(|e| AppError::invalid("providerId", e))
}

/// Holds a slot for a patient for `schedule.hold_secs` (300): nobody else
/// may book or move into it meanwhile; booking with its `holdId` takes it.
#[utoipa::path(post, path = "/api/providers/{providerId}/holds", tag = "appointments",
    request_body = HoldSlot,
    params(("providerId" = String, Path, description = "The doctor")),
    responses((status = 201, body = SlotHold), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn hold(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(provider): Path<String>,
    Json(body): Json<HoldSlot>,
) -> Result<(StatusCode, axum::Json<SlotHold>), AppError> {
    let provider = provider_id(&provider)?;
    let viewer = schedule::viewer(&state, &principal)?;
    let held = holds::hold(&state, &viewer, &provider, body).await?;
    Ok((StatusCode::CREATED, axum::Json(held)))
}

/// Ends a hold before its time (its patient, the doctor, an admin).
#[utoipa::path(delete, path = "/api/providers/{providerId}/holds/{holdId}", tag = "appointments",
    params(("providerId" = String, Path, description = "The doctor"),
        ("holdId" = String, Path, description = "The hold")),
    responses((status = 204), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn release(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((provider, hold_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let provider = provider_id(&provider)?;
    let viewer = schedule::viewer(&state, &principal)?;
    holds::release(&state, &viewer, &provider, &hold_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
