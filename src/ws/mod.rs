//! The WebSocket gateway at `/ws`: protocol v1 (subprotocol `medrelay.v1`).
//!
//! One task per socket reads frames and runs commands; one writer task drains
//! the socket's bounded outbound queue and also runs each subscription's
//! forwarding loop, which moves events from the hub into that queue (so an
//! event wakes one task per socket). Anything that would
//! overfill the queue closes the socket with 4008 instead, so a client that
//! stops reading costs at most `outbound_queue` frames of memory.
//!
//! # Layout
//! - `connection`: the per-socket loop (auth, limits, heartbeat, commands).
//! - `subscription`: subscribe with replay, live forwarding, catch-up.
//! - `outbound`: the bounded queue and the writer task (which runs the
//!   subscriptions' forwarding loops).

mod connection;
mod outbound;
mod subscription;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use medrelay_protocol::WS_SUBPROTOCOL;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::auth::Principal;
use crate::auth::principal::bearer;
use crate::error::AppError;
use crate::state::AppState;

/// The socket a connection task owns.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The `/ws` route.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/ws", get(upgrade))
}

/// tungstenite's own hard limit, above the protocol limit, so a frame a little
/// too large still gets a clean 1009 from us while a huge one is cut off
/// before it is buffered.
const HARD_LIMIT_FACTOR: usize = 4;

/// Initial read and write buffer of each socket. tungstenite keeps its write
/// buffer at the size of the largest frame it has written, so large frames go
/// out in fragments of [`outbound::FRAGMENT`] bytes (see `outbound`).
const SOCKET_BUFFER: usize = 2 * 1024;

/// Whether a comma-separated header holds `token` (case-insensitive).
fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The WebSocket handshake (RFC 6455), done here rather than by a framework
/// wrapper so the connection owns a tokio-tungstenite stream and can write
/// raw fragments.
async fn upgrade(
    State(state): State<Arc<AppState>>,
    mut req: Request,
) -> Result<Response, AppError> {
    let headers = req.headers();
    let bad = |message: &str, field: Option<&str>| AppError::BadRequest {
        message: message.to_owned(),
        field: field.map(str::to_owned),
    };
    if req.method() != Method::GET
        || !header_has(headers, header::CONNECTION, "upgrade")
        || !header_has(headers, header::UPGRADE, "websocket")
    {
        return Err(bad(
            "expected a WebSocket upgrade (GET with Connection: upgrade, Upgrade: websocket)",
            None,
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(bad(
            "only WebSocket version 13 is supported",
            Some("Sec-WebSocket-Version"),
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| bad("missing Sec-WebSocket-Key", Some("Sec-WebSocket-Key")))?;
    let accept = derive_accept_key(key.as_bytes());
    if !header_has(headers, header::SEC_WEBSOCKET_PROTOCOL, WS_SUBPROTOCOL) {
        return Err(bad(
            &format!("offer the subprotocol {WS_SUBPROTOCOL} (Sec-WebSocket-Protocol)"),
            Some("Sec-WebSocket-Protocol"),
        ));
    }
    let principal = match bearer(headers)? {
        Some(token) => Some(Principal::from_socket_token(&state, token)?),
        None => None,
    };
    let settings = &state.settings.websocket;
    let guard = state
        .sockets
        .try_open(settings.max_connections)
        .ok_or_else(|| AppError::Unavailable("too many open WebSockets; try again later".into()))?;
    let hard_limit = settings.max_frame_bytes.saturating_mul(HARD_LIMIT_FACTOR);
    let config = WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(outbound::FRAGMENT * 4)
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit));
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                connection::run(socket, state, principal, guard).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, WS_SUBPROTOCOL)
        .body(Body::empty())
        .map_err(AppError::internal)
}
