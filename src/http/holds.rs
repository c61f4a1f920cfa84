//! `/api/providers/{providerId}/holds` and `/waitlist`: a patient keeps a
//! slot for a few minutes while they fill in a booking form, or waits for
//! one to come free. Each route parses, calls [`crate::service::holds`],
//! and renders.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use medrelay_protocol::ProviderId;
use medrelay_protocol::hold::{HoldSlot, SlotHold};
use medrelay_protocol::waitlist::{JoinWaitlist, WaitlistEntryView, WaitlistView};
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
        .routes(routes!(join, list))
        .routes(routes!(leave))
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

/// Joins a doctor's waitlist: freed slots in the range and times wanted are
/// offered (held for `schedule.offer_secs`) in the order patients joined.
#[utoipa::path(post, path = "/api/providers/{providerId}/waitlist", tag = "appointments",
    request_body = JoinWaitlist,
    params(("providerId" = String, Path, description = "The doctor")),
    responses((status = 201, body = WaitlistEntryView), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn join(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(provider): Path<String>,
    Json(body): Json<JoinWaitlist>,
) -> Result<(StatusCode, axum::Json<WaitlistEntryView>), AppError> {
    let provider = provider_id(&provider)?;
    let viewer = schedule::viewer(&state, &principal)?;
    let entry = holds::join(&state, &viewer, &provider, body).await?;
    Ok((StatusCode::CREATED, axum::Json(entry)))
}

/// A doctor's waitlist in offer order: all of it for the doctor and admins,
/// their own entries for a patient.
#[utoipa::path(get, path = "/api/providers/{providerId}/waitlist", tag = "appointments",
    params(("providerId" = String, Path, description = "The doctor")),
    responses((status = 200, body = WaitlistView), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(provider): Path<String>,
) -> Result<axum::Json<WaitlistView>, AppError> {
    let provider = provider_id(&provider)?;
    let viewer = schedule::viewer(&state, &principal)?;
    Ok(axum::Json(holds::list(&state, &viewer, &provider)?))
}

/// Leaves a waitlist (the entry's patient, the doctor, an admin).
#[utoipa::path(delete, path = "/api/providers/{providerId}/waitlist/{entryId}", tag = "appointments",
    params(("providerId" = String, Path, description = "The doctor"),
        ("entryId" = String, Path, description = "The entry")),
    responses((status = 204), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn leave(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((provider, entry_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let provider = provider_id(&provider)?;
    let viewer = schedule::viewer(&state, &principal)?;
    holds::leave(&state, &viewer, &provider, &entry_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
