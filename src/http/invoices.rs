//! `/api/invoices` (seed: "Generates invoice for all payments", "invoice by
//! patient IDs"). JSON by default; `Accept: text/html` gives a printable
//! page of the same invoice, rendered by a template that escapes every
//! value.

use std::sync::{Arc, OnceLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::PatientId;
use medrelay_protocol::invoice::{Invoice, InvoiceRequest};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::{Json, bad_query};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::billing::invoices;
use crate::state::AppState;

/// The invoice routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(preview, issue))
        .routes(routes!(get_one))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InvoiceParams {
    /// Comma-separated patient ids (default: all; patients: themselves).
    patient_ids: Option<String>,
    /// Payments made on or after this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<jiff::civil::Date>,
    /// Payments made on or before this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<jiff::civil::Date>,
}

/// The invoice as it would be issued now (`invoiceId` `draft`): admins for
/// all payments or chosen patients; a patient for their own.
#[utoipa::path(get, path = "/api/invoices", tag = "billing", params(InvoiceParams),
    responses((status = 200, body = Invoice, description = "JSON, or a printable page with Accept: text/html"),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn preview(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    headers: HeaderMap,
    query: Result<Query<InvoiceParams>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let patient_ids = match q.patient_ids.as_deref() {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|id| {
                    PatientId::parse(id.trim()).map_err(|e| AppError::invalid("patientIds", e))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let req = InvoiceRequest {
        patient_ids,
        from: q.from,
        to: q.to,
    };
    let invoice = invoices::preview(&state, &principal, &origin, req).await?;
    if wants_html(&headers) {
        return html(&state, &invoice);
    }
    Ok(axum::Json(invoice).into_response())
}

/// Issues an invoice: the next number of a gapless sequence; kept as
/// answered, and never changed.
#[utoipa::path(post, path = "/api/invoices", tag = "billing", request_body = InvoiceRequest,
    responses((status = 201, body = Invoice), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn issue(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Json(req): Json<InvoiceRequest>,
) -> Result<Response, AppError> {
    let (_, body) = invoices::issue(&state, &principal, &origin, req).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// An issued invoice, byte for byte as first answered (or its printable page).
#[utoipa::path(get, path = "/api/invoices/{invoiceId}", tag = "billing",
    params(("invoiceId" = String, Path)),
    responses((status = 200, body = Invoice, description = "JSON, or a printable page with Accept: text/html"),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if id.len() > 32 || !id.starts_with("INV-") {
        return Err(AppError::invalid(
            "invoiceId",
            "invoice ids look like INV-000001",
        ));
    }
    let body = invoices::get(&state, &principal, &origin, &id).await?;
    if wants_html(&headers) {
        let invoice: Invoice = serde_json::from_slice(&body).map_err(AppError::internal)?;
        return html(&state, &invoice);
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The printable page: amounts as their exact text, every value escaped.
fn html(state: &AppState, invoice: &Invoice) -> Result<Response, AppError> {
    static PAGE: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    let env = PAGE.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.add_template("invoice.html", include_str!("templates/invoice.html"))
            .expect("the invoice template parses");
        env
    });
    let lines: Vec<_> = invoice
        .lines
        .iter()
        .map(|l| {
            minijinja::context! {
                patient_id => l.patient_id.as_str(),
                patient_name => &l.patient_name,
                item => &l.item,
                description => &l.description,
                amount => l.amount.to_string(),
            }
        })
        .collect();
    let billing = &state.settings.billing;
    let page = env
        .get_template("invoice.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                clinic_name => &billing.clinic_name,
                clinic_address => &billing.clinic_address,
                invoice_id => &invoice.invoice_id,
                invoice_date => invoice.invoice_date.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                currency => &invoice.currency,
                lines => lines,
                total_amount => invoice.total_amount.to_string(),
                payments_applied => invoice.payments_applied.to_string(),
                balance_due => invoice.balance_due.to_string(),
            })
        })
        .map_err(AppError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}
