//! `/api/providers`: doctors' profiles and hours (seed section 6), and their
//! bookable slots.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::civil::Date;
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::schedule::create_provider;
use medrelay_actors::schedule::messages::{
    DeleteProvider, GetBoard, ProviderPatch, UpdateProvider,
};
use medrelay_protocol::profile::ContactInfo;
use medrelay_protocol::schedule::{DateException, DayAvailability};
use medrelay_protocol::{ProviderId, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::directory::{DoctorList, Page};
use super::json::Json;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::schedule;
use crate::state::AppState;

/// `/api/providers/*`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(slots))
        .routes(routes!(display_token))
}

const MAX_TEXT: usize = 200;

fn text(field: &str, value: String) -> Result<String, AppError> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    Ok(value)
}

fn provider_id(raw: &str) -> Result<ProviderId, AppError> {
    ProviderId::parse(raw).map_err(|e| AppError::invalid("providerId", e))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateProvider {
    /// Generated when absent.
    #[schema(value_type = Option<String>, example = "prov001", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    provider_id: Option<ProviderId>,
    /// 1 to 200 characters.
    #[schema(
        example = "Dr. Jane Doe",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    specialization: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    contact_info: Option<ContactInfo>,
    /// Weekly hours: `[{"day":"Monday","slots":["09:00-12:00"]}]`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    availability: Vec<DayAvailability>,
    /// Dates with other hours (`slots: []` for a day off).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    exceptions: Vec<DateException>,
    /// IANA time zone of the hours, e.g. `Europe/Berlin`.
    #[schema(example = "Europe/Berlin")]
    time_zone: String,
    /// Slot length in minutes (multiple of 5, default 30).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 240, multiple_of = 5)]
    slot_minutes: Option<u16>,
    /// A doctor account without a profile to attach this profile to.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    user_id: Option<UserId>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProviderStatus {
    #[schema(value_type = String)]
    provider_id: ProviderId,
    /// `Created`, `Updated` or `Deleted`.
    status: &'static str,
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
    principal.require(&[Role::Admin])?;
    let link = match &body.user_id {
        Some(user) => Some(
            state
                .store
                .get::<UserRecord>(user.as_str())?
                .ok_or_else(|| AppError::invalid("userId", "no such account"))?,
        ),
        None => None,
    };
    let record = ProviderRecord {
        provider_id: body.provider_id.unwrap_or_else(|| {
            ProviderId::parse(&medrelay_actors::ids::new_id("prv"))
                .expect("generated ids are valid")
        }),
        user_id: body.user_id,
        name: text("name", body.name)?,
        specialization: text(
            "specialization",
            body.specialization
                .unwrap_or_else(|| "General practice".into()),
        )?,
        contact_info: body.contact_info.unwrap_or_default(),
        time_zone: body.time_zone,
        slot_minutes: body.slot_minutes.unwrap_or(30),
        availability: body.availability,
        exceptions: body.exceptions,
        created_at: jiff::Timestamp::now(),
    };
    let created = create_provider(&state.store, record, link).await?;
    tracing::info!(provider = %created.provider_id, "provider created");
    Ok((
        StatusCode::CREATED,
        axum::Json(ProviderStatus {
            provider_id: created.provider_id,
            status: "Created",
        }),
    ))
}

/// Lists providers (the same list as `GET /api/doctors`).
#[utoipa::path(get, path = "/api/providers", tag = "providers", params(Page),
    responses((status = 200, body = DoctorList), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    _principal: Principal,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<DoctorList>, AppError> {
    super::directory::list(&state, query).map(axum::Json)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProviderView {
    #[schema(value_type = String)]
    provider_id: ProviderId,
    name: String,
    specialization: String,
    #[schema(value_type = Object)]
    contact_info: ContactInfo,
    #[schema(value_type = Vec<Object>)]
    availability: Vec<DayAvailability>,
    #[schema(value_type = Vec<Object>)]
    exceptions: Vec<DateException>,
    time_zone: String,
    slot_minutes: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    user_id: Option<UserId>,
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
    let id = provider_id(&id)?;
    let p = state
        .store
        .get::<ProviderRecord>(id.as_str())?
        .ok_or_else(|| AppError::NotFound(format!("no provider {id}")))?;
    Ok(axum::Json(ProviderView {
        provider_id: p.provider_id,
        name: p.name,
        specialization: p.specialization,
        contact_info: p.contact_info,
        availability: p.availability,
        exceptions: p.exceptions,
        time_zone: p.time_zone,
        slot_minutes: p.slot_minutes,
        user_id: p.user_id,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchProvider {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    specialization: Option<String>,
    #[schema(value_type = Option<Object>)]
    contact_info: Option<ContactInfo>,
    #[schema(value_type = Option<Vec<Object>>)]
    availability: Option<Vec<DayAvailability>>,
    #[schema(value_type = Option<Vec<Object>>)]
    exceptions: Option<Vec<DateException>>,
    time_zone: Option<String>,
    #[schema(minimum = 5, maximum = 240, multiple_of = 5)]
    slot_minutes: Option<u16>,
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
    let id = provider_id(&id)?;
    let viewer = schedule::viewer(&state, &principal)?;
    if !viewer.manages(&id) {
        return Err(AppError::Forbidden(
            "only admins and that doctor may change a provider".into(),
        ));
    }
    let patch = ProviderPatch {
        name: body.name.map(|n| text("name", n)).transpose()?,
        specialization: body
            .specialization
            .map(|s| text("specialization", s))
            .transpose()?,
        contact_info: body.contact_info,
        time_zone: body.time_zone,
        slot_minutes: body.slot_minutes,
        availability: body.availability,
        exceptions: body.exceptions,
    };
    let updated = schedule::ask(&state, &id, UpdateProvider { patch }).await??;
    Ok(axum::Json(ProviderStatus {
        provider_id: updated.provider_id,
        status: "Updated",
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Cancel the provider's appointments ahead instead of refusing.
    #[serde(default)]
    cancel_appointments: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    /// Always `Deleted`.
    status: &'static str,
    #[schema(value_type = String)]
    provider_id: ProviderId,
    /// How many appointments ahead were cancelled.
    cancelled_appointments: usize,
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
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Deleted>, AppError> {
    principal.require(&[Role::Admin])?;
    let id = provider_id(&id)?;
    let Query(query) = query.map_err(|e| AppError::BadRequest {
        message: e.body_text(),
        field: None,
    })?;
    let message = DeleteProvider {
        cancel_appointments: query.cancel_appointments,
        by: Some(principal.user_id.clone()),
    };
    let cancelled = schedule::ask(&state, &id, message).await??;
    tracing::info!(provider = %id, cancelled, "provider deleted");
    Ok(axum::Json(Deleted {
        status: "Deleted",
        provider_id: id,
        cancelled_appointments: cancelled,
    }))
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
    query: Result<Query<SlotQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let id = provider_id(&id)?;
    let Query(q) = query.map_err(|e| AppError::BadRequest {
        message: e.body_text(),
        field: None,
    })?;
    let (from, to) = match (q.date, q.from, q.to) {
        (Some(d), None, None) => (Some(d), Some(d)),
        (None, from, to) => (from, to),
        _ => return Err(AppError::invalid("date", "give either date, or from/to")),
    };
    let viewer = schedule::viewer(&state, &principal)?;
    let board = schedule::ask(&state, &id, GetBoard { from, to }).await??;
    Ok(axum::Json(schedule::board_json(
        &board,
        viewer.manages(&id),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DisplayTokenRequest {
    /// Validity in hours (1 to 8760, default 720).
    #[serde(default)]
    ttl_hours: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DisplayToken {
    /// Use as a bearer token on `/ws` (or in an `auth` frame).
    token: String,
    #[schema(value_type = String)]
    provider_id: ProviderId,
    #[schema(value_type = String)]
    expires_at: jiff::Timestamp,
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
    let id = provider_id(&id)?;
    let viewer = schedule::viewer(&state, &principal)?;
    if !viewer.manages(&id) {
        return Err(AppError::Forbidden(
            "only admins and that doctor may issue display tokens".into(),
        ));
    }
    if state.store.get::<ProviderRecord>(id.as_str())?.is_none() {
        return Err(AppError::NotFound(format!("no provider {id}")));
    }
    let hours = body.ttl_hours.unwrap_or(720);
    if !(1..=8760).contains(&hours) {
        return Err(AppError::invalid("ttlHours", "must be 1 to 8760"));
    }
    let issued = state
        .tokens
        .issue_display(&id, i64::from(hours) * 3600)
        .map_err(AppError::internal)?;
    tracing::info!(provider = %id, by = %principal.user_id, hours, "display token issued");
    Ok((
        StatusCode::CREATED,
        axum::Json(DisplayToken {
            token: issued.token,
            provider_id: id,
            expires_at: jiff::Timestamp::from_second(issued.claims.exp)
                .map_err(AppError::internal)?,
        }),
    ))
}
