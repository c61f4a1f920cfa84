//! `/api/calendar`: your private feed URL, and the feeds themselves
//! (`text/calendar`, fetched by calendars with the URL's token alone).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::calendar::{CreateFeed, FeedCreated, FeedView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::calendar::{self, Served};
use crate::state::AppState;

/// The calendar routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_feed, show_feed, disable_feed))
        .routes(routes!(feed))
}

/// Creates your calendar feed (doctors: your schedule; patients: your
/// appointments), replacing any earlier one. The URL is shown only here.
#[utoipa::path(post, path = "/api/calendar/feeds", tag = "calendar", request_body = CreateFeed,
    responses((status = 201, body = FeedCreated), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create_feed(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Json(body): Json<CreateFeed>,
) -> Result<(StatusCode, axum::Json<FeedCreated>), AppError> {
    let base = base_url(&state, &headers);
    let created = calendar::create(&state, &principal, body, &base).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Your calendar feed's settings (the URL is not shown again).
#[utoipa::path(get, path = "/api/calendar/feeds", tag = "calendar",
    responses((status = 200, body = FeedView), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn show_feed(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<FeedView>, AppError> {
    calendar::current(&state, &principal).map(axum::Json)
}

/// Disables your calendar feed; its URL answers 404 from now on.
#[utoipa::path(delete, path = "/api/calendar/feeds", tag = "calendar",
    responses((status = 204), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn disable_feed(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<StatusCode, AppError> {
    calendar::disable(&state, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A calendar feed (`<token>.ics`), iCalendar text. Answers 304 when
/// `If-None-Match` names its current `ETag`.
#[utoipa::path(get, path = "/api/calendar/{file}", tag = "calendar",
    params(("file" = String, Path, description = "`<token>.ics`, as in the feed's URL")),
    responses((status = 200, content_type = "text/calendar", body = String),
        (status = 304), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn feed(
    State(state): State<Arc<AppState>>,
    origin: Origin,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let served = calendar::serve(&state, &file, if_none_match, &origin).await?;
    let (status, etag, body) = match served {
        Served::NotModified { etag } => (StatusCode::NOT_MODIFIED, etag, String::new()),
        Served::Feed { etag, body } => (StatusCode::OK, etag, body),
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    if status == StatusCode::OK {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/calendar; charset=utf-8"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Personal data: shared caches keep none of it.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

/// Where clients reach this server: `notifications.public_url` when set,
/// else the request's own `Host` (plain HTTP, for a proxy in front).
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let configured = state.settings.notifications.public_url.trim();
    if !configured.is_empty() {
        return configured.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    tracing::warn!(
        "a calendar feed URL was built from the request's Host as plain http; set notifications.public_url to the address clients use"
    );
    format!("http://{host}")
}
