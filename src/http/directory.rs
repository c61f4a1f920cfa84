//! Doctors as the seed's "actor service" exposes them.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::bad_query;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::provider;
use crate::state::AppState;
use medrelay_protocol::provider::DoctorList;

/// `/api/doctors`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_doctors))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// Return doctors whose id sorts after this one.
    after: Option<String>,
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Lists doctors (any signed-in user).
#[utoipa::path(get, path = "/api/doctors", tag = "directory", params(Page),
    responses((status = 200, body = DoctorList), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_doctors(
    State(state): State<Arc<AppState>>,
    _principal: Principal,
    query: PageQuery,
) -> Result<axum::Json<DoctorList>, AppError> {
    page(&state, query).map(axum::Json)
}

/// The query of a page of the directory, or why it could not be read.
pub(super) type PageQuery = Result<Query<Page>, QueryRejection>;

/// One page of provider profiles (shared by `/api/doctors` and `/api/providers`).
pub(super) fn page(state: &AppState, query: PageQuery) -> Result<DoctorList, AppError> {
    let Query(page) = query.map_err(bad_query)?;
    provider::list(state, page.after.as_deref(), page.limit)
}
