//! `/api/providers`: doctors' profiles and hours (seed section 6), and their
//! bookable slots. Each route parses, calls [`crate::service::provider`],
//! and renders.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::civil::Date;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::directory::{Page, PageQuery};
use super::json::Json;
use super::json::bad_query;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::provider;
use crate::state::AppState;
use medrelay_protocol::provider::{
    CreateProvider, Deleted, DisplayToken, DisplayTokenRequest, DoctorList, PatchProvider,
    ProviderStatus, ProviderView,
};

/// `/api/providers/*`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(slots))
        .routes(routes!(display_token))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Cancel the provider's appointments ahead instead of refusing.
    #[serde(default)]
    cancel_appointments: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SlotQuery {
    /// One date (`YYYY-MM-DD`, the doctor's zone).
    #[param(value_type = Option<String>)]
    date: Option<Date>,
    /// First date of a range.
    #[param(value_type = Option<String>)]
    from: Option<Date>,
    /// Last date of a range (at most 31 days).
    #[param(value_type = Option<String>)]
    to: Option<Date>,
}

/// Adds a provider (admins).
#[utoipa::path(post, path = "/api/providers", tag = "providers", request_body = CreateProvider,
    responses((status = 201, body = ProviderStatus), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<CreateProvider>,
) -> Result<(StatusCode, axum::Json<ProviderStatus>), AppError> {
    let created = provider::create(&state, &principal, body).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Lists providers (the same list as `GET /api/doctors`).
#[utoipa::path(get, path = "/api/providers", tag = "providers", params(Page),
    responses((status = 200, body = DoctorList), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    _principal: Principal,
    query: PageQuery,
) -> Result<axum::Json<DoctorList>, AppError> {
    super::directory::page(&state, query).map(axum::Json)
}

/// A provider's profile (any signed-in user).
#[utoipa::path(get, path = "/api/providers/{providerId}", tag = "providers",
    params(("providerId" = String, Path)),
    responses((status = 200, body = ProviderView), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    _principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, AppError> {
    provider::get(&state, &id).map(axum::Json)
}

/// Updates a provider (admins, or that doctor); absent fields stay as they are.
/// Boards see an `availability_changed` event.
#[utoipa::path(put, path = "/api/providers/{providerId}", tag = "providers",
    params(("providerId" = String, Path)), request_body = PatchProvider,
    responses((status = 200, body = ProviderStatus), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<PatchProvider>,
) -> Result<axum::Json<ProviderStatus>, AppError> {
    provider::update(&state, &principal, &id, body)
        .await
        .map(axum::Json)
}

/// Deletes a provider (admins). Refused with 409 while it has appointments
/// ahead, unless `cancelAppointments=true`.
#[utoipa::path(delete, path = "/api/providers/{providerId}", tag = "providers",
    params(("providerId" = String, Path), DeleteQuery),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<axum::Json<Deleted>, AppError> {
    let cancel = query
        .map(|Query(q)| q.cancel_appointments)
        .map_err(bad_query);
    provider::delete(&state, &principal, &id, cancel)
        .await
        .map(axum::Json)
}

/// The bookable slots of a date or range, each `free` or `booked`, computed in
/// the doctor's time zone (any signed-in user; patient ids only for that
/// doctor and admins).
#[utoipa::path(get, path = "/api/providers/{providerId}/slots", tag = "providers",
    params(("providerId" = String, Path), SlotQuery),
    responses((status = 200, description = "slots"), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn slots(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    query: Result<Query<SlotQuery>, QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let dates = query
        .map(|Query(q)| (q.date, q.from, q.to))
        .map_err(bad_query);
    provider::slots(&state, &principal, &id, dates)
        .await
        .map(axum::Json)
}

/// Issues a display token: it lets a screen with no account watch this
/// doctor's board over the WebSocket, showing slot state only (admins, or
/// that doctor). It opens no REST route and books nothing.
#[utoipa::path(post, path = "/api/providers/{providerId}/display-tokens", tag = "providers",
    params(("providerId" = String, Path)), request_body = DisplayTokenRequest,
    responses((status = 201, body = DisplayToken), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn display_token(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<DisplayTokenRequest>,
) -> Result<(StatusCode, axum::Json<DisplayToken>), AppError> {
    let issued = provider::display_token(&state, &principal, &id, body)?;
    Ok((StatusCode::CREATED, axum::Json(issued)))
}
