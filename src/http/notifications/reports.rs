//! A notification's delivery report and the delivery statistics: each route
//! parses, calls [`crate::service::delivery_report`], and renders.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::service::delivery_report;
use crate::state::AppState;
use medrelay_protocol::report::{Report, Statistics, StatsQuery};

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(statistics))
}

/// A notification's delivery report: the people it is for, the sender, admins.
#[utoipa::path(get, path = "/api/notifications/{notificationId}", tag = "notifications",
    params(("notificationId" = String, Path)),
    responses((status = 200, body = Report), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Report>, AppError> {
    delivery_report::report(&state, &principal, &id).map(axum::Json)
}

/// Delivery statistics by channel and status (admins).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(StatsQuery),
    responses((status = 200, body = Statistics), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn statistics(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<axum::Json<Statistics>, AppError> {
    let q = query
        .map(|Query(q)| q)
        .map_err(crate::http::json::bad_query);
    delivery_report::statistics(&state, &principal, q)
        .await
        .map(axum::Json)
}
