//! A notification's delivery report: the route parses, calls
//! [`crate::service::delivery_report`], and renders. (Delivery figures are
//! in `GET /api/analytics/notifications`.)

use std::sync::Arc;

use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::AppError;
use crate::http::ErrorEnvelope;
use crate::service::delivery_report;
use crate::state::AppState;
use medrelay_protocol::report::Report;

/// The routes of this file.
pub(super) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(report))
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
