//! The WebSocket gateway at `/ws`: protocol v1 (subprotocol `medrelay.v1`).
//!
//! One task per socket reads frames and runs commands; one writer task drains
//! the socket's bounded outbound queue; one forwarder task per subscribed
//! channel moves events from the hub into that queue. Anything that would
//! overfill the queue closes the socket with 4008 instead, so a client that
//! stops reading costs at most `outbound_queue` frames of memory.
//!
//! # Layout
//! - [`connection`]: the per-socket loop (auth, limits, heartbeat, commands).
//! - [`subscription`]: subscribe with replay, live forwarding, catch-up.
//! - [`outbound`]: the bounded queue and the writer task.

mod connection;
mod outbound;
mod subscription;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use medrelay_protocol::WS_SUBPROTOCOL;
use tokio::sync::Notify;

use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::principal::bearer;
use crate::http::error::ApiError;

/// The `/ws` route.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/ws", get(upgrade))
}

/// tungstenite's own hard limit, above the protocol limit, so a frame a little
/// too large still gets a clean 1009 from us while a huge one is cut off
/// before it is buffered.
const HARD_LIMIT_FACTOR: usize = 4;

/// Initial read and write buffer of each socket.
const SOCKET_BUFFER: usize = 4 * 1024;

/// The largest frame the server writes: a board snapshot of the longest range
/// (31 days of 5-minute slots) is about 1.5 MB.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::BadRequest {
        message: format!("expected a WebSocket upgrade: {e}"),
        field: None,
    })?;
    let ws = ws.protocols([WS_SUBPROTOCOL]);
    if ws.selected_protocol().is_none() {
        return Err(ApiError::BadRequest {
            message: format!("offer the subprotocol {WS_SUBPROTOCOL} (Sec-WebSocket-Protocol)"),
            field: Some("Sec-WebSocket-Protocol".into()),
        });
    }
    let principal = match bearer(&headers)? {
        Some(token) => Some(Principal::from_socket_token(&state, token)?),
        None => None,
    };
    let settings = &state.settings.websocket;
    let guard = state
        .sockets
        .try_open(settings.max_connections)
        .ok_or_else(|| ApiError::Unavailable("too many open WebSockets; try again later".into()))?;
    let hard_limit = settings.max_frame_bytes.saturating_mul(HARD_LIMIT_FACTOR);
    Ok(ws
        // tungstenite allocates its read buffer up front (128 KiB by default);
        // small buffers that grow on demand keep an idle socket to a few KiB.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| connection::run(socket, state, principal, guard)))
}

/// Counts open sockets so shutdown can wait for them and a cap can be enforced.
#[derive(Default)]
pub struct Sockets {
    open: AtomicUsize,
    drained: Notify,
}

/// Held by a socket's task; releases its slot when dropped.
pub struct SocketGuard(Arc<Sockets>);

impl Sockets {
    /// Takes a slot unless `max` sockets are open.
    pub fn try_open(self: &Arc<Self>, max: usize) -> Option<SocketGuard> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        metrics::gauge!("ws_open_sockets").increment(1.0);
        Some(SocketGuard(self.clone()))
    }

    /// Open sockets now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every socket has closed, or `limit` passes.
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if self.open() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        metrics::gauge!("ws_open_sockets").decrement(1.0);
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
