//! `/api/bills`, `/api/claims` and `/api/billing-accounts` (seed:
//! healthcare-api section 3; patient-management's `GetBillingAccount`).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use medrelay_protocol::billing::{
    BillBody, BillList, BillRevisions, BillStatus, BillView, BillWritten, BillingAccountView,
};
use medrelay_protocol::claim::{ClaimDecision, ClaimList, ClaimStatus, ClaimView, ClaimWritten};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::{Json, bad_query};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::billing::claims::{self, ClaimQuery};
use crate::service::billing::{self, BillQuery};
use crate::state::AppState;

/// `/api/bills`, `/api/bills/{billId}`, `/api/bills/{billId}/revisions`,
/// `/api/billing-accounts/{patientId}`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(revisions))
        .routes(routes!(account))
        .routes(routes!(submit_claim))
        .routes(routes!(get_claim, decide_claim))
        .routes(routes!(list_claims))
}

/// Writes a bill (admins; doctors for the patients in their care). The
/// server computes the total; a `totalAmount` that differs is 422
/// `total_mismatch`.
#[utoipa::path(post, path = "/api/bills", tag = "billing", request_body = BillBody,
    responses((status = 201, body = BillWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "the billId is in use")),
    security(("bearer" = [])))]
async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Json(body): Json<BillBody>,
) -> Result<(StatusCode, axum::Json<BillWritten>), AppError> {
    let written = billing::create(&state, &principal, &origin, body).await?;
    Ok((StatusCode::CREATED, axum::Json(written)))
}

/// A bill: the seed's shape, with the currency, payments applied and the
/// balance due.
#[utoipa::path(get, path = "/api/bills/{billId}", tag = "billing",
    params(("billId" = String, Path)),
    responses((status = 200, body = BillView), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<BillView>, AppError> {
    billing::get(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// Changes the fields sent, until the bill is paid or void; every change is
/// kept as a revision.
#[utoipa::path(put, path = "/api/bills/{billId}", tag = "billing",
    params(("billId" = String, Path)), request_body = BillBody,
    responses((status = 200, body = BillWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "paid or void, or below what is paid")),
    security(("bearer" = [])))]
async fn update(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    Json(body): Json<BillBody>,
) -> Result<axum::Json<BillWritten>, AppError> {
    billing::update(&state, &principal, &origin, &id, body)
        .await
        .map(axum::Json)
}

/// Deletes (voids) a bill; it stays readable as `Void`.
#[utoipa::path(delete, path = "/api/bills/{billId}", tag = "billing",
    params(("billId" = String, Path)),
    responses((status = 200, body = BillWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "a payment is applied"),
        (status = 410, body = ErrorEnvelope, description = "already deleted")),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<BillWritten>, AppError> {
    billing::void(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// A bill's revisions, oldest first.
#[utoipa::path(get, path = "/api/bills/{billId}/revisions", tag = "billing",
    params(("billId" = String, Path)),
    responses((status = 200, body = BillRevisions), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn revisions(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<BillRevisions>, AppError> {
    billing::revisions(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Whose bills (patients: their own; doctors: required; admins: any).
    #[param(value_type = Option<String>)]
    patient_id: Option<medrelay_protocol::PatientId>,
    /// Only bills in this state.
    #[param(value_type = Option<String>)]
    status: Option<BillStatus>,
    /// Bills written on or after this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<jiff::civil::Date>,
    /// Bills written on or before this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<jiff::civil::Date>,
    /// Bills whose id sorts after this one (the `next` of the last page).
    #[param(value_type = Option<String>)]
    after: Option<medrelay_protocol::BillId>,
    /// At most this many (1 to 100, the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// Bills by id, filtered.
#[utoipa::path(get, path = "/api/bills", tag = "billing", params(ListParams),
    responses((status = 200, body = BillList), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<axum::Json<BillList>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = BillQuery {
        patient_id: q.patient_id,
        status: q.status,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    billing::list(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}

/// A patient's billing account: balance, open bills and credit (the
/// patient, their doctors, admins).
#[utoipa::path(get, path = "/api/billing-accounts/{patientId}", tag = "billing",
    params(("patientId" = String, Path)),
    responses((status = 200, body = BillingAccountView), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn account(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient): Path<String>,
) -> Result<axum::Json<BillingAccountView>, AppError> {
    billing::account(&state, &principal, &origin, &patient)
        .await
        .map(axum::Json)
}

/// Sends the bill's insurance claim to the insurer (a draft, or a denied
/// claim corrected through the bill's `insuranceClaim`).
#[utoipa::path(post, path = "/api/bills/{billId}/claim/submit", tag = "billing",
    params(("billId" = String, Path)),
    responses((status = 200, body = ClaimWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "the bill is not issued, or the claim is already with the insurer")),
    security(("bearer" = [])))]
async fn submit_claim(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<ClaimWritten>, AppError> {
    claims::submit(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// A claim with its history and the patient's share.
#[utoipa::path(get, path = "/api/claims/{claimId}", tag = "billing",
    params(("claimId" = String, Path)),
    responses((status = 200, body = ClaimView), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_claim(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<ClaimView>, AppError> {
    claims::get(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

/// Records the insurer's progress or decision (admins); `paid` applies the
/// insurer's payment to the bill.
#[utoipa::path(put, path = "/api/claims/{claimId}", tag = "billing",
    params(("claimId" = String, Path)), request_body = ClaimDecision,
    responses((status = 200, body = ClaimWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "not a transition the claim's state allows")),
    security(("bearer" = [])))]
async fn decide_claim(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    Json(decision): Json<ClaimDecision>,
) -> Result<axum::Json<ClaimWritten>, AppError> {
    claims::decide(&state, &principal, &origin, &id, decision)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ClaimParams {
    /// Only claims in this state.
    #[param(value_type = Option<String>)]
    status: Option<ClaimStatus>,
    /// Only claims to this insurer (exact).
    insurance_provider: Option<String>,
    /// Claims whose id sorts after this one (the `next` of the last page).
    #[param(value_type = Option<String>)]
    after: Option<medrelay_protocol::ClaimId>,
    /// At most this many (1 to 100, the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// Claims by id, filtered (admins).
#[utoipa::path(get, path = "/api/claims", tag = "billing", params(ClaimParams),
    responses((status = 200, body = ClaimList), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_claims(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<ClaimParams>, QueryRejection>,
) -> Result<axum::Json<ClaimList>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = ClaimQuery {
        status: q.status,
        insurance_provider: q.insurance_provider,
        after: q.after,
        limit: q.limit,
    };
    claims::list(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}
