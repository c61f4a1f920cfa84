//! The HTTP API: routes, middleware (request ids, metrics, rate limits,
//! panics), and the JSON error contract.
//!
//! # Layout
//! - [`error`]: how an [`crate::error::AppError`] becomes a status,
//!   headers and a JSON body.
//! - [`json`]: the JSON body extractor with field-naming rejections, and the
//!   query-string rejection.
//! - `openapi`: the answers every route of a kind gives, declared on each
//!   operation of the document.
//! - [`auth`]: `/api/auth/*` (sign-up, login, refresh, logout, me).
//! - [`directory`]: `/api/doctors`, `/api/patients/{id}`.
//! - [`providers`]: the `/api/providers` routes (profiles, hours, slots).
//! - [`appointments`]: the `/api/appointments` routes.
//! - [`notifications`]: `/api/notifications`, preferences, devices, Twilio callbacks.
//! - [`calendar`]: `/api/calendar/feeds` and the `.ics` feeds themselves.
//! - [`analytics`]: `/api/analytics/*`, the clinic's reports, as JSON or CSV.
//! - [`ops`]: health, readiness, metrics, gateway status, API descriptions.
//!
//! Routes are declared once, through `utoipa-axum`, so the OpenAPI document
//! served at `/api/openapi.json` is generated from the same declarations the
//! router uses and cannot drift from it.

pub mod analytics;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod calendar;
pub mod directory;
pub mod error;
#[cfg(feature = "fault-injection")]
mod faults;
mod holds;
pub mod invoices;
pub mod json;
pub mod notifications;
mod openapi;
pub mod ops;
pub mod patients;
pub mod payments;
pub mod providers;
pub mod records;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medrelay_protocol::ErrorBody;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{AppError, REQUEST_ID};
use crate::state::AppState;

/// The body of every error response: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "medrelay", description = "Real-time clinic backend. Errors are `{\"error\":{\"code\",\"message\",\"field\"}}`."),
    modifiers(&BearerAuth),
    components(schemas(ErrorEnvelope))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole application router, ready to serve.
pub fn router(state: Arc<AppState>, https: bool) -> Router {
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(directory::router())
        .merge(patients::router())
        .merge(audit::router())
        .merge(records::router())
        .merge(billing::router())
        .merge(payments::router())
        .merge(invoices::router())
        .merge(providers::router())
        .merge(holds::router())
        .merge(appointments::router())
        .merge(calendar::router())
        .merge(analytics::router())
        .merge(notifications::router())
        .merge(ops::router());
    #[cfg(feature = "fault-injection")]
    let api = api.merge(faults::router());
    let (routes, mut openapi) = api.split_for_parts();
    openapi::declare_shared_responses(&mut openapi);
    let openapi = Arc::new(openapi);
    let body_limit = state.settings.server.body_limit_bytes;
    let routes = routes
        .route(
            "/api/openapi.json",
            get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .merge(crate::ws::router())
        .merge(crate::pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_panic| {
            AppError::internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), replica_guard));
    // Preflights are answered here, inside the request id, metrics and the
    // per-IP limit, before any route asks who is calling.
    let routes = match cors(&state) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    let routes = routes.layer(middleware::from_fn_with_state(state.clone(), observe));
    let routes = if https {
        routes.layer(middleware::map_response(strict_transport))
    } else {
        routes
    };
    routes.with_state(state)
}

/// What a board replica answers itself.
fn served_by_replica(path: &str) -> bool {
    matches!(
        path,
        "/ws" | "/healthz" | "/readyz" | "/metrics" | "/api/protocol.schema.json"
    ) || crate::pages::served_by_replica(path)
}

/// HSTS on every answer over HTTPS: browsers that saw it once refuse plain
/// HTTP to this host for a year. Not sent without TLS, where a proxy in
/// front owns that decision.
async fn strict_transport(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// CORS for the configured origins (`server.cors_origins`), or none: then
/// no CORS header is sent at all. Exact origins, the API's methods and the
/// headers its clients send; no credentials (tokens travel in the
/// `Authorization` header, not in cookies).
fn cors(state: &AppState) -> Option<CorsLayer> {
    // Checked when the settings were loaded.
    let origins = state.settings.server.cors_origins().unwrap_or_default();
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// A board replica owns no data: it answers the WebSocket gateway, the
/// board pages and the operational routes, and sends every other client to
/// the owner node.
async fn replica_guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.is_replica() && !served_by_replica(req.uri().path()) {
        return AppError::Unavailable(
            "this node is a board replica: it serves live boards (/ws, /board) only; send API requests to the owner node"
                .into(),
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Paths that answer even to a client over its rate limit.
fn exempt_from_ip_limit(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Per request: an id (echoed as `x-request-id`), the per-IP rate limit, a
/// tracing span, metrics by route and status, and the gateway counters.
async fn observe(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| medrelay_actors::ids::new_id("req"), str::to_owned);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!("http", request_id = %id, %method, %route);
    let response = if !exempt_from_ip_limit(&route)
        && let Err(wait) = state.limits.check_ip(peer.ip())
    {
        REQUEST_ID
            .scope(id.clone(), async {
                AppError::RateLimited(wait).into_response()
            })
            .await
    } else {
        REQUEST_ID
            .scope(id.clone(), next.run(req))
            .instrument(span.clone())
            .await
    };
    let mut response = response;
    let status = response.status();
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    if status.is_client_error() || status.is_server_error() {
        state.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ms, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), ms, "request");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
