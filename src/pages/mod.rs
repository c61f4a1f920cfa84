//! The pages a person opens in a browser, served from the binary itself:
//! the live board (`/board/{providerId}`), patient booking (`/app`) and the
//! clinic dashboard (`/admin`). No build step, no CDN, no external fonts:
//! each page is one HTML file and ES modules from `assets/`, compiled in.
//!
//! They call the same JSON API and WebSocket as any client, with the same
//! tokens (kept in memory or session storage). The headers make the browser
//! enforce what the files promise: a Content-Security-Policy that allows
//! only these files (no inline script or style, no eval, no other origin),
//! no framing except the board (a waiting-room screen may embed it), no
//! MIME sniffing, no referrer.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medrelay_protocol::ProviderId;

use crate::error::AppError;
use crate::state::AppState;

/// A compiled-in file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file under `/pages/`.
const ASSETS: &[Asset] = &[
    asset!("common.js", JS),
    asset!("style.css", CSS),
    asset!("board.js", JS),
    asset!("board-model.js", JS),
    asset!("app.js", JS),
    asset!("app-book.js", JS),
    asset!("app-mine.js", JS),
    asset!("app-prefs.js", JS),
    asset!("app-util.js", JS),
    asset!("admin.js", JS),
];

const BOARD: Asset = asset!("board.html", HTML);
const APP: Asset = asset!("app.html", HTML);
const ADMIN: Asset = asset!("admin.html", HTML);

/// Only this origin's files and connections; `'self'` covers the same
/// host's `ws:`/`wss:` for the live socket.
macro_rules! policy {
    () => {
        "default-src 'none'; script-src 'self'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'"
    };
}
/// The board's policy (a waiting-room system may frame it).
const POLICY: &str = policy!();
/// Every other page's: no framing at all.
const POLICY_UNFRAMED: &str = concat!(policy!(), "; frame-ancestors 'none'");

/// The page routes (none of them under `/api`, none in the OpenAPI document).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/board/{provider_id}", get(board))
        .route("/app", get(|| async { page(&APP, false) }))
        .route("/admin", get(|| async { page(&ADMIN, false) }))
        .route("/pages/{file}", get(file))
}

/// Whether a board replica serves `path` (the board and its files: a
/// replica exists to serve boards).
pub fn served_by_replica(path: &str) -> bool {
    path.starts_with("/board/") || path.starts_with("/pages/")
}

async fn board(Path(provider_id): Path<String>) -> Response {
    // The page learns the rest over the socket; an id that cannot exist is
    // a 404 here rather than a board that never fills.
    if ProviderId::parse(&provider_id).is_err() {
        return AppError::NotFound("no such board".into()).into_response();
    }
    page(&BOARD, true)
}

async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => served(asset),
        None => AppError::NotFound("no such page file".into()).into_response(),
    }
}

/// An asset with the headers every page file gets.
fn served(asset: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

fn page(asset: &Asset, frameable: bool) -> Response {
    let mut response = served(asset);
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let policy = if frameable {
        POLICY
    } else {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        POLICY_UNFRAMED
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}
