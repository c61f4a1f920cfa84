//! `/api/audit` and `/api/patients/{patientId}/access-log`, and the
//! [`Origin`] of a REST request that every audit entry records.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use medrelay_actors::audit::{Action, reason_place as audit_reason_place};
use medrelay_protocol::audit::{AccessLog, AuditPage};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::bad_query;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{self, AuditQuery, MAX_ORIGIN_TEXT, Origin};
use crate::state::AppState;

/// The header a caller states their reason in.
pub const ACCESS_REASON: &str = "x-access-reason";

/// `/api/audit`, `/api/patients/{patientId}/access-log`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(access_log))
}

impl FromRequestParts<Arc<AppState>> for Origin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let text = |name: &str| -> Result<Option<String>, AppError> {
            let Some(value) = parts.headers.get(name) else {
                return Ok(None);
            };
            let value = value
                .to_str()
                .map_err(|_| AppError::invalid(name, "must be visible ASCII"))?
                .trim();
            Ok((!value.is_empty()).then(|| value.chars().take(MAX_ORIGIN_TEXT).collect()))
        };
        let reason = text(ACCESS_REASON)?;
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() >= MAX_ORIGIN_TEXT)
        {
            return Err(AppError::invalid(
                ACCESS_REASON,
                format!("must be shorter than {MAX_ORIGIN_TEXT} characters"),
            ));
        }
        // Sealed at once: the reason is free text about a patient.
        let reason = reason.map(|r| {
            let request = crate::error::current_request_id();
            state
                .vault
                .seal_json(audit_reason_place(request.as_deref()), &r)
        });
        Ok(Origin {
            channel: "rest",
            client_ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip().to_string()),
            user_agent: text("user-agent").unwrap_or(None),
            reason,
        })
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Entries about this patient.
    #[param(value_type = Option<String>)]
    patient_id: Option<medrelay_protocol::PatientId>,
    /// Entries by this user.
    #[param(value_type = Option<String>)]
    user_id: Option<medrelay_protocol::UserId>,
    /// `C`, `R`, `U`, `D` or `E`.
    #[param(value_type = Option<String>, pattern = "^[CRUDE]$")]
    action: Option<Action>,
    /// Recorded at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<jiff::Timestamp>,
    /// Recorded before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<jiff::Timestamp>,
    /// Entries after this number (the `next` of the last page).
    after: Option<u64>,
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The audit log, oldest first, filtered (admins). Reading it is audited too.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<axum::Json<AuditPage>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    let query = AuditQuery {
        patient_id: q.patient_id,
        user_id: q.user_id,
        action: q.action,
        from: q.from,
        to: q.to,
        after: q.after,
        limit: q.limit,
    };
    audit::query(&state, &principal, &origin, query)
        .await
        .map(axum::Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AfterParam {
    /// Entries after this number (the `next` of the last page).
    after: Option<u64>,
}

/// Who opened this patient's data, when and why (the patient and admins).
#[utoipa::path(get, path = "/api/patients/{patientId}/access-log", tag = "audit",
    params(("patientId" = String, Path), AfterParam),
    responses((status = 200, body = AccessLog), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn access_log(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    origin: Origin,
    Path(patient_id): Path<String>,
    query: Result<Query<AfterParam>, QueryRejection>,
) -> Result<axum::Json<AccessLog>, AppError> {
    let Query(q) = query.map_err(bad_query)?;
    audit::access_log(&state, &principal, &origin, &patient_id, q.after)
        .await
        .map(axum::Json)
}
