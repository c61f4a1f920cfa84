//! `/api/records`: medical records (seed: healthcare-api section 4).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use medrelay_protocol::record::{RecordBody, RecordHistory, RecordList, RecordView, RecordWritten};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::{Json, bad_query};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::records::{self, RecordQuery};
use crate::state::AppState;

/// `/api/records`, `/api/records/{recordId}`, `/api/records/{recordId}/history`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(history))
}

/// Writes a record (doctors, for the patients in their care).
#[utoipa::path(post, path = "/api/records", tag = "records", request_body = RecordBody,
    responses((status = 201, body = RecordWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Json(body): Json<RecordBody>,
) -> Result<(StatusCode, axum::Json<RecordWritten>), AppError> {
    let written = records::create(&state, &principal, &origin, body).await?;
    Ok((StatusCode::CREATED, axum::Json(written)))
}

/// A record: the patient, their doctors, admins; another doctor only with
/// `X-Access-Reason` (an audited emergency access).
#[utoipa::path(get, path = "/api/records/{recordId}", tag = "records",
    params(("recordId" = String, Path)),
    responses((status = 200, body = RecordView), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 410, body = ErrorEnvelope, description = "deleted")),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<RecordView>, AppError> {
    records::get(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// Changes the fields sent (the author or an admin); every version is kept.
#[utoipa::path(put, path = "/api/records/{recordId}", tag = "records",
    params(("recordId" = String, Path)), request_body = RecordBody,
    responses((status = 200, body = RecordWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope, description = "deleted")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    Json(body): Json<RecordBody>,
) -> Result<axum::Json<RecordWritten>, AppError> {
    records::update(&state, &principal, &origin, &id, body)
        .await
        .map(axum::Json)
}

/// Deletes a record (the author or an admin): a tombstone, its history kept.
#[utoipa::path(delete, path = "/api/records/{recordId}", tag = "records",
    params(("recordId" = String, Path)),
    responses((status = 200, body = RecordWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope, description = "already deleted")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<RecordWritten>, AppError> {
    records::delete(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// A record's versions: who changed which fields, when.
#[utoipa::path(get, path = "/api/records/{recordId}/history", tag = "records",
    params(("recordId" = String, Path)),
    responses((status = 200, body = RecordHistory), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<RecordHistory>, AppError> {
    records::history(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Whose records (required for staff; patients: their own).
    #[param(value_type = Option<String>)]
    patient_id: Option<medrelay_protocol::PatientId>,
    /// Encounters on or after, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<jiff::civil::Date>,
    /// Encounters on or before, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<jiff::civil::Date>,
    /// Records whose id sorts after this one (the `next` of the last page).
    #[param(value_type = Option<String>)]
    after: Option<medrelay_protocol::RecordId>,
    /// At most this many (1 to 100, the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// A patient's records, not deleted, by id.
#[utoipa::path(get, path = "/api/records", tag = "records", params(ListParams),
    responses((status = 200, body = RecordList), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<axum::Json<RecordList>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = RecordQuery {
        patient_id: q.patient_id,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    records::list(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}
