//! Operations: health, readiness, metrics, gateway status, and the generated
//! API descriptions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::{Channel, Role};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use crate::auth::Principal;
use crate::auth::principal::bearer;
use crate::error::AppError;
use crate::state::AppState;

/// `/healthz`, `/readyz`, `/metrics`, `/api/gateway`, `/api/protocol.schema.json`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(gateway))
        .routes(routes!(protocol_schema))
}

/// The process is up (no dependencies checked).
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "up")))]
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The store answers reads and the actor threads run messages. With NATS
/// configured but unreachable the answer is 200 `degraded`.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.channel_head(&Channel::Users).is_ok();
    let actors_ok = state.actors_responsive(Duration::from_secs(2)).await;
    let stopping = *state.shutdown.borrow();
    let ready = store_ok && actors_ok && !stopping;
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let mut checks =
        json!({ "store": word(store_ok), "actors": word(actors_ok), "accepting": word(!stopping) });
    // NATS is optional: while it is away the node still serves (and the
    // outbox keeps events), so it is reported as degraded, not down.
    let nats_ok = match &state.nats {
        None => true,
        Some(link) => {
            let connected = link.is_connected();
            checks["nats"] = json!(if connected { "ok" } else { "disconnected" });
            if let Ok((head, acked)) = state.store.outbox_positions() {
                checks["outboxPending"] = json!(head.saturating_sub(acked));
            }
            connected
        }
    };
    let status = match (ready, nats_ok) {
        (false, _) => "not_ready",
        (true, true) => "ready",
        (true, false) => "degraded",
    };
    let body = json!({ "status": status, "checks": checks });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics; for admins, or for the `server.metrics_token` bearer.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let token = bearer(&headers)?
        .ok_or_else(|| AppError::Unauthorized("this needs a bearer token".into()))?;
    let static_token = state.settings.server.metrics_token.expose_secret();
    let by_token =
        !static_token.is_empty() && constant_time_eq(static_token.as_bytes(), token.as_bytes());
    if !by_token {
        Principal::from_token(&state, token)?.require(&[Role::Admin])?;
    }
    metrics::gauge!("hub_channels").set(state.hub.channel_count() as f64);
    metrics::gauge!("hub_ring_slots").set(state.hub.ring_slots() as f64);
    metrics::gauge!("login_lockout_entries").set(state.lockout.len() as f64);
    // Without NATS nothing publishes the outbox, so head minus acked would
    // count every event ever kept: there is no backlog to report.
    if state.nats.is_some() {
        if let Ok((head, acked)) = state.store.outbox_positions() {
            metrics::gauge!("outbox_pending").set(head.saturating_sub(acked) as f64);
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
        .into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Serialize, ToSchema)]
struct GatewayMetrics {
    /// Requests answered since start.
    requests: u64,
    /// Requests answered with a 4xx or 5xx.
    errors: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GatewayStatus {
    /// `Running`, or `Stopping` during shutdown.
    status: &'static str,
    metrics: GatewayMetrics,
    /// WebSockets open now.
    open_sockets: usize,
    /// Channels someone listens to now (each has a ring in the event hub).
    hub_channels: usize,
}

/// Gateway status in the seed's shape (admins).
#[utoipa::path(get, path = "/api/gateway", tag = "ops",
    responses((status = 200, body = GatewayStatus), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn gateway(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<GatewayStatus>, AppError> {
    principal.require(&[Role::Admin])?;
    Ok(axum::Json(GatewayStatus {
        status: if *state.shutdown.borrow() {
            "Stopping"
        } else {
            "Running"
        },
        metrics: GatewayMetrics {
            requests: state.counters.requests.load(Ordering::Relaxed),
            errors: state.counters.errors.load(Ordering::Relaxed),
        },
        open_sockets: state.sockets.open(),
        hub_channels: state.hub.channel_count(),
    }))
}

/// The JSON Schema of WebSocket protocol v1, generated from the protocol types.
#[utoipa::path(get, path = "/api/protocol.schema.json", tag = "ops",
    responses((status = 200, description = "JSON Schema")))]
async fn protocol_schema() -> axum::Json<serde_json::Value> {
    axum::Json(medrelay_protocol::ws::json_schema())
}
