//! `/api/patients/{patientId}/payments`, `/api/payments` and refunds (seed:
//! "Payment by patient Id", "Track payment by payment Id"). The POSTs take
//! an optional `Idempotency-Key` header; a request sent again under it is
//! answered with the first answer, byte for byte.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::payment::{
    PaymentList, PaymentRequest, PaymentStatus, PaymentView, PaymentWritten, RefundRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::{Json, bad_query};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::billing::payments::{self, Answer, PaymentQuery};
use crate::state::AppState;

/// The payment routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(pay))
        .routes(routes!(get_one))
        .routes(routes!(list))
        .routes(routes!(refund))
        .routes(routes!(webhook))
}

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::invalid("Idempotency-Key", "visible ASCII characters only"))
        })
        .transpose()
}

fn answer(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], a.body).into_response()
}

/// Records a desk payment (cash or the desk's card terminal) for a patient
/// and applies it: to the bills named, in order, or else to the oldest open
/// bills; what is left becomes credit (staff).
#[utoipa::path(post, path = "/api/patients/{patientId}/payments", tag = "billing",
    params(("patientId" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key and request within 24 h get the first answer again")),
    request_body = PaymentRequest,
    responses((status = 201, body = PaymentWritten),
        (status = 202, body = PaymentWritten, description = "a card payment taken while its gateway is away: settled later, followed by its id"),
        (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "a request under this Idempotency-Key is in flight")),
    security(("bearer" = [])))]
async fn pay(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PaymentRequest>,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    payments::pay(&state, &principal, &origin, &patient, key, body)
        .await
        .map(answer)
}

/// The card gateway's events (Stripe's webhook). No bearer token: the
/// `Stripe-Signature` header, HMAC-SHA256 under the webhook's signing
/// secret, fresh within 300 s, is the proof. Each event acts once.
#[utoipa::path(post, path = "/api/payments/webhook", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">")),
    request_body(content = String, content_type = "application/json", description = "the gateway's event"),
    responses((status = 200, description = "taken, or of no use here"),
        (status = 400, body = ErrorEnvelope, description = "unsigned, stale or forged"),
        (status = 404, body = ErrorEnvelope, description = "the clinic has no card gateway"),
        (status = 503, body = ErrorEnvelope, description = "send it again later")))]
async fn webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    if body.len() > crate::card_gateway::webhook::MAX_BODY {
        return Err(AppError::PayloadTooLarge);
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let outcome = crate::service::billing::webhook::receive(&state, signature, &body).await?;
    Ok(axum::Json(
        serde_json::json!({ "received": true, "outcome": outcome }),
    ))
}

/// Gives back part or all of a succeeded payment (admins).
#[utoipa::path(post, path = "/api/payments/{paymentId}/refunds", tag = "billing",
    params(("paymentId" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key and request within 24 h get the first answer again")),
    request_body = RefundRequest,
    responses((status = 201, body = PaymentWritten), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "more than is left, or in flight")),
    security(("bearer" = [])))]
async fn refund(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RefundRequest>,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    payments::refund(&state, &principal, &origin, &id, key, body)
        .await
        .map(answer)
}

/// A payment: its state, what it paid on which bills, its history.
#[utoipa::path(get, path = "/api/payments/{paymentId}", tag = "billing",
    params(("paymentId" = String, Path)),
    responses((status = 200, body = PaymentView), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<axum::Json<PaymentView>, AppError> {
    payments::get(&state, &principal, &origin, &id)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Whose payments (patients: their own; admins: any).
    #[param(value_type = Option<String>)]
    patient_id: Option<medrelay_protocol::PatientId>,
    /// Only payments in this state.
    #[param(value_type = Option<String>)]
    status: Option<PaymentStatus>,
    /// Made on or after this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<jiff::civil::Date>,
    /// Made on or before this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<jiff::civil::Date>,
    /// Payments whose id sorts after this one (the `next` of the last page).
    #[param(value_type = Option<String>)]
    after: Option<medrelay_protocol::PaymentId>,
    /// At most this many (1 to 100, the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// Payments by id, filtered.
#[utoipa::path(get, path = "/api/payments", tag = "billing", params(ListParams),
    responses((status = 200, body = PaymentList), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<axum::Json<PaymentList>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = PaymentQuery {
        patient_id: q.patient_id,
        status: q.status,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    payments::list(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}
