//! `/api/patients`: register, read, change and list patients (seed:
//! healthcare-api section 2, patient-management-readme).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use medrelay_protocol::patient::{
    InviteRequest, InviteSent, MedicalHistoryVersions, PatientBody, PatientList, PatientWritten,
};
use medrelay_protocol::profile::Patient;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::{Json, bad_query};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::patient::{self, PatientQuery};
use crate::state::AppState;

/// `/api/patients`, `/api/patients/{patientId}`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(get_patient, update, delete))
        .routes(routes!(invite))
        .routes(routes!(restore))
        .routes(routes!(history))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RegisterQuery {
    /// Register even when a patient with the same name, date of birth and
    /// e-mail or phone exists.
    allow_duplicate: Option<bool>,
}

/// Registers a patient who need not have a login (admins and doctors),
/// in either seed shape.
#[utoipa::path(post, path = "/api/patients", tag = "patients",
    params(RegisterQuery), request_body = PatientBody,
    responses((status = 201, body = PatientWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "a duplicate; `existingId` names the patient")),
    security(("bearer" = [])))]
async fn register(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<RegisterQuery>, QueryRejection>,
    Json(body): Json<PatientBody>,
) -> Result<(StatusCode, axum::Json<PatientWritten>), AppError> {
    let Query(query) = query.map_err(bad_query)?;
    let allow = query.allow_duplicate.unwrap_or(false);
    let written = patient::register(&state, &principal, &origin, body, allow).await?;
    Ok((StatusCode::CREATED, axum::Json(written)))
}

/// A patient's profile: admins any, doctors the patients in their care,
/// patients their own.
#[utoipa::path(get, path = "/api/patients/{patientId}", tag = "patients",
    params(("patientId" = String, Path)),
    responses((status = 200, body = Patient), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_patient(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
) -> Result<axum::Json<Patient>, AppError> {
    patient::get(&state, &principal, &origin, &patient_id)
        .await
        .map(axum::Json)
}

/// Changes the fields sent, in either seed shape. Patients may change only
/// their contact details and address.
#[utoipa::path(put, path = "/api/patients/{patientId}", tag = "patients",
    params(("patientId" = String, Path)), request_body = PatientBody,
    responses((status = 200, body = PatientWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
    Json(body): Json<PatientBody>,
) -> Result<axum::Json<PatientWritten>, AppError> {
    patient::update(&state, &principal, &origin, &patient_id, body)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Exact full name (case and spacing ignored).
    name: Option<String>,
    /// Exact date of birth, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    dob: Option<jiff::civil::Date>,
    /// Exact e-mail.
    #[param(value_type = Option<String>)]
    email: Option<medrelay_protocol::Email>,
    /// Exact phone, E.164.
    #[param(value_type = Option<String>)]
    phone: Option<medrelay_protocol::profile::Phone>,
    /// Return patients whose id sorts after this one (the `next` of the last page).
    #[param(value_type = Option<String>)]
    after: Option<medrelay_protocol::PatientId>,
    /// At most this many (1 to `records.page_limit`, which is also the default).
    #[param(minimum = 1)]
    limit: Option<usize>,
}

/// The patients the caller may see, by id; exact-match search by name,
/// date of birth, e-mail or phone.
#[utoipa::path(get, path = "/api/patients", tag = "patients", params(ListParams),
    responses((status = 200, body = PatientList), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<axum::Json<PatientList>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = PatientQuery {
        name: q.name,
        dob: q.dob,
        email: q.email,
        phone: q.phone,
        after: q.after,
        limit: q.limit,
    };
    patient::list(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}

/// Sends a patient registered at the desk a one-time sign-up code by e-mail
/// or SMS (admins, and doctors for patients in their care); the code, given
/// to `POST /api/auth/signup` as `inviteToken`, links the new login to this
/// record.
#[utoipa::path(post, path = "/api/patients/{patientId}/invite", tag = "patients",
    params(("patientId" = String, Path)), request_body(content = InviteRequest, description = "optional"),
    responses((status = 202, body = InviteSent), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "the patient has a login already")),
    security(("bearer" = [])))]
async fn invite(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<InviteSent>), AppError> {
    // The body is optional: none means the default channel.
    let body = if body.is_empty() {
        InviteRequest::default()
    } else {
        super::json::parse(&body)?
    };
    let sent = patient::invite(&state, &principal, &origin, &patient_id, body).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(sent)))
}

/// Deletes a patient (admins): hidden at once (reads answer 410), future
/// appointments cancelled, sessions ended; restorable until the retention
/// (`records.retention_days`) has passed, then purged.
#[utoipa::path(delete, path = "/api/patients/{patientId}", tag = "patients",
    params(("patientId" = String, Path)),
    responses((status = 200, body = PatientWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope, description = "already deleted")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
) -> Result<axum::Json<PatientWritten>, AppError> {
    let now = state.notifier.clock.now();
    patient::delete(&state, &principal, &origin, &patient_id, now)
        .await
        .map(axum::Json)
}

/// Restores a deleted patient within the retention (admins).
#[utoipa::path(post, path = "/api/patients/{patientId}/restore", tag = "patients",
    params(("patientId" = String, Path)),
    responses((status = 200, body = PatientWritten), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "not deleted")),
    security(("bearer" = [])))]
async fn restore(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
) -> Result<axum::Json<PatientWritten>, AppError> {
    patient::restore(&state, &principal, &origin, &patient_id)
        .await
        .map(axum::Json)
}

/// Every version of a patient's medical history, who changed it and when
/// (as `GET /api/patients/{patientId}`: audited as a read).
#[utoipa::path(get, path = "/api/patients/{patientId}/history", tag = "patients",
    params(("patientId" = String, Path)),
    responses((status = 200, body = MedicalHistoryVersions), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 410, body = ErrorEnvelope, description = "deleted")),
    security(("bearer" = [])))]
async fn history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
) -> Result<axum::Json<MedicalHistoryVersions>, AppError> {
    patient::history(&state, &principal, &origin, &patient_id)
        .await
        .map(axum::Json)
}
