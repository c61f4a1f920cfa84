//! One socket's life: authenticate, run commands, keep the heartbeat, close.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use futures_util::future::AbortHandle;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use medrelay_actors::channels::Viewer;
use medrelay_actors::session::{Attach, Detach, PatientSession};
use medrelay_protocol::ws::{Command, Reply, close, parse_client_frame};
use medrelay_protocol::{Channel, ErrorCode, PatientId, Role};
use serde_json::json;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message};

use super::Socket;
use super::outbound::{Frame, Outbox, spawn_writer};
use super::subscription;
use crate::auth::Principal;
use crate::error::AppError;
use crate::ratelimit::quota;
use crate::service::commands::{self, ScheduleCommand};
use crate::service::schedule;
use crate::state::AppState;
use crate::state::SocketGuard;

/// Device ids for patient sessions, unique in this process.
static NEXT_DEVICE: AtomicU64 = AtomicU64::new(1);

/// One of the socket's subscriptions; dropping it ends it.
enum Subscription {
    /// The loop forwarding the channel's events to this socket (it runs on
    /// the socket's writer task).
    Forwarder(AbortHandle),
    /// The socket is a device in its patient's session.
    Session {
        session: Addr<PatientSession>,
        device: u64,
    },
}

impl Drop for Subscription {
    fn drop(&mut self) {
        match self {
            Subscription::Forwarder(forwarder) => forwarder.abort(),
            Subscription::Session { session, device } => {
                session.do_send(Detach { device: *device });
            }
        }
    }
}

/// The patient whose own channel `channel` is, when `viewer` is that
/// patient: such subscriptions go through the patient's session.
fn own_patient_channel(viewer: &Viewer, channel: &Channel) -> Option<PatientId> {
    match channel {
        Channel::Patient(patient)
            if viewer.role == Role::Patient && viewer.patient_id.as_ref() == Some(patient) =>
        {
            Some(patient.clone())
        }
        _ => None,
    }
}

/// State of one socket, owned by its reading task.
struct Connection {
    state: Arc<AppState>,
    principal: Option<Principal>,
    out: Outbox,
    subscriptions: HashMap<Channel, Subscription>,
    limiter: DefaultDirectRateLimiter,
    /// When the socket must be closed unless it (re)authenticates.
    deadline: Instant,
}

/// Runs a socket until it closes.
pub async fn run(
    socket: Socket,
    state: Arc<AppState>,
    principal: Option<Principal>,
    _guard: SocketGuard,
) {
    let settings = state.settings.websocket.clone();
    let (sink, mut stream) = socket.split();
    let (out, writer) = spawn_writer(sink, settings.outbound_queue);
    let heartbeat_every = Duration::from_secs(settings.heartbeat_secs);
    let deadline = match &principal {
        Some(p) => expiry_instant(p),
        None => Instant::now() + Duration::from_secs(settings.auth_timeout_secs),
    };
    let mut conn = Connection {
        limiter: RateLimiter::direct(quota(settings.commands_per_sec, settings.commands_burst)),
        state: state.clone(),
        principal,
        out: out.clone(),
        subscriptions: HashMap::new(),
        deadline,
    };
    let mut shutdown = state.shutdown.clone();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > settings.max_frame_bytes {
                            out.close(close::MESSAGE_TOO_BIG, "frame larger than the server accepts");
                            break;
                        }
                        conn.handle_text(text.as_str()).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        out.reply(Reply::error(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames"));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        // tungstenite's hard limit: the frame was far too large.
                        out.close(close::MESSAGE_TOO_BIG, "frame larger than the server accepts");
                        break;
                    }
                    Some(Err(_)) => break,
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > heartbeat_every * 2 {
                    out.close(close::HEARTBEAT_TIMEOUT, "no answer to pings");
                    break;
                }
                if conn.revoked() {
                    out.close(close::UNAUTHORIZED, "token revoked");
                    break;
                }
                out.push(Frame::Ping);
            }
            _ = sleep_until(conn.deadline) => {
                let reason = if conn.principal.is_some() { "token expired" } else { "authentication timeout" };
                out.close(close::UNAUTHORIZED, reason);
                break;
            }
            () = stopping(&mut shutdown) => {
                out.close(close::GOING_AWAY, "server shutting down");
                break;
            }
            _ = out.closing() => break,
        }
    }
    drop(conn);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
}

/// Resolves when shutdown starts (the watch guard is dropped inside, so the
/// select stays `Send`).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

fn expiry_instant(principal: &Principal) -> Instant {
    let left = principal.claims.exp - jiff::Timestamp::now().as_second();
    Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

impl Connection {
    fn revoked(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| {
            self.state
                .revocations
                .is_revoked(&p.claims.jti, &p.claims.fam)
        })
    }

    async fn handle_text(&mut self, text: &str) {
        let frame = match parse_client_frame(text.as_bytes()) {
            Ok(frame) => frame,
            Err(reply) => {
                self.out.reply(*reply);
                return;
            }
        };
        let id = frame.id.clone();
        if self.limiter.check().is_err() {
            self.out.reply(Reply::error(
                id,
                ErrorCode::RateLimited,
                "too many commands; slow down",
            ));
            return;
        }
        let reply = self.run_command(id.clone(), frame.command).await;
        if let Some(reply) = reply {
            self.out.reply(reply);
        }
    }

    /// Runs a command; `None` when the command already queued its own reply.
    async fn run_command(&mut self, id: Option<String>, command: Command) -> Option<Reply> {
        if let Command::Auth { token } = command {
            return Some(self.authenticate(id, &token));
        }
        let Some(principal) = self.principal.clone() else {
            return Some(Reply::error(
                id,
                ErrorCode::Unauthorized,
                "authenticate first: send {\"type\":\"auth\",\"token\":\"...\"}",
            ));
        };
        if self.revoked() {
            self.out.close(close::UNAUTHORIZED, "token revoked");
            return None;
        }
        match command {
            // Answered above, before the principal is required.
            Command::Auth { token } => Some(self.authenticate(id, &token)),
            Command::Ping => Some(Reply::ok(
                id,
                json!({ "pong": true, "time": jiff::Timestamp::now() }),
            )),
            Command::Whoami => Some(Reply::ok(id, whoami(&principal))),
            Command::Subscribe {
                channel,
                since,
                from,
                to,
            } => {
                if !self.subscriptions.contains_key(&channel)
                    && self.subscriptions.len() >= self.state.settings.websocket.max_subscriptions
                {
                    return Some(Reply::error(
                        id,
                        ErrorCode::BadRequest,
                        "too many subscriptions on this socket",
                    ));
                }
                if let Some(board) = principal.display_board()
                    && channel != Channel::Board(board.clone())
                {
                    return Some(Reply::error(
                        id,
                        ErrorCode::Forbidden,
                        format!("this display may watch only board:{board}"),
                    ));
                }
                let request = subscription::Request {
                    id: id.clone(),
                    channel: channel.clone(),
                    since,
                    from,
                    to,
                };
                let started = if self.state.is_replica() {
                    subscription::start_on_replica(&self.state, &principal, &self.out, request)
                        .await
                        .map(Subscription::Forwarder)
                } else {
                    match schedule::viewer(&self.state, &principal) {
                        Ok(viewer) => match own_patient_channel(&viewer, &channel) {
                            Some(patient) => {
                                // The socket's old device leaves first, so no
                                // event reaches this socket twice.
                                self.subscriptions.remove(&channel);
                                self.join_session(patient, request).await
                            }
                            None => subscription::start(&self.state, &viewer, &self.out, request)
                                .await
                                .map(Subscription::Forwarder),
                        },
                        Err(e) => Err(e),
                    }
                };
                match started {
                    Ok(subscription) => {
                        // A replaced subscription ends as it is dropped.
                        self.subscriptions.insert(channel, subscription);
                        None
                    }
                    Err(e) => Some(Reply::err(id, e.body())),
                }
            }
            Command::Unsubscribe { channel } => {
                let was = self.subscriptions.remove(&channel).is_some();
                Some(Reply::ok(
                    id,
                    json!({ "channel": channel, "subscribed": false, "was": was }),
                ))
            }
            Command::Ack { channel, seq } => {
                Some(match self.ack(&principal, &channel, seq).await {
                    Ok(acked) => Reply::ok(id, acked),
                    Err(e) => Reply::err(id, e.body()),
                })
            }
            _ if self.state.is_replica() => Some(Reply::error(
                id,
                ErrorCode::Unavailable,
                "this node is a board replica: send schedule commands to the owner node",
            )),
            other => match ScheduleCommand::from_protocol(other) {
                Some(command) => {
                    let result = commands::run(&self.state, &principal, command).await;
                    Some(match result {
                        Ok(data) => Reply::ok(id, data),
                        Err(e) => Reply::err(id, e.body()),
                    })
                }
                // A command the protocol knows and this gateway does not
                // route: the client hears so, the socket stays open.
                None => Some(Reply::error(
                    id,
                    ErrorCode::BadRequest,
                    "this command is not served over this socket",
                )),
            },
        }
    }

    /// Makes this socket a device of `patient`'s session; the session sends
    /// the subscribe reply and what the socket is owed.
    async fn join_session(
        &self,
        patient: PatientId,
        request: subscription::Request,
    ) -> Result<Subscription, AppError> {
        let device = NEXT_DEVICE.fetch_add(1, Ordering::Relaxed);
        let attach = Attach {
            device,
            sink: Arc::new(self.out.clone()),
            request_id: request.id,
            since: request.since,
        };
        let session = self.state.sessions.attach(&patient, attach).await?;
        Ok(Subscription::Session { session, device })
    }

    /// Acknowledges the in-app notifications of the patient's own channel.
    async fn ack(
        &self,
        principal: &Principal,
        channel: &Channel,
        seq: u64,
    ) -> Result<serde_json::Value, AppError> {
        if self.state.is_replica() {
            return Err(AppError::Unavailable(
                "this node is a board replica: acknowledge on the owner node".into(),
            ));
        }
        let viewer = schedule::viewer(&self.state, principal)?;
        let Some(patient) = own_patient_channel(&viewer, channel) else {
            return Err(AppError::Forbidden(format!(
                "only the patient may acknowledge the notifications of {channel}"
            )));
        };
        let acked = self.state.sessions.ack(&patient, seq).await?;
        serde_json::to_value(acked).map_err(AppError::internal)
    }

    fn authenticate(&mut self, id: Option<String>, token: &str) -> Reply {
        match Principal::from_socket_token(&self.state, token) {
            Ok(principal) => {
                if let Some(current) = &self.principal
                    && current.user_id != principal.user_id
                {
                    return Reply::error(
                        id,
                        ErrorCode::Forbidden,
                        "this socket belongs to another user",
                    );
                }
                self.deadline = expiry_instant(&principal);
                let data = whoami(&principal);
                self.principal = Some(principal);
                Reply::ok(id, data)
            }
            Err(e) => Reply::err(id, e.body()),
        }
    }
}

/// A schedule command arriving over the socket.
fn whoami(principal: &Principal) -> serde_json::Value {
    json!({
        "userId": principal.user_id,
        "role": principal.role,
        "expiresAt": jiff::Timestamp::from_second(principal.claims.exp).ok(),
    })
}
