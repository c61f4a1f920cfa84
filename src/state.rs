//! The state every surface and background task shares: settings, the
//! store, the actors' registries, the limits and counters, and the links to
//! the outside (the NATS connection, the open-socket count). It imports no
//! surface (`http`, `ws`, `nats`), so each of them can depend on it without
//! an import circle through the application that wires them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use medrelay_actors::accounts::{AccountActor, Revocations};
use medrelay_actors::billing::payment_actor::PaymentActor;
use medrelay_actors::hub::EventHub;
use medrelay_actors::phi::Vault;
use medrelay_actors::schedule::ScheduleActor;
use medrelay_actors::session::Sessions;
use medrelay_actors::store::Store;
use medrelay_actors::system::{ActorSystem, Registry};
use medrelay_protocol::nats::Subjects;
use tokio::sync::{Notify, watch};

use crate::auth::lockout::LoginLockout;
use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::config::{NodeRole, Settings};
use crate::delivery::Notifier;
use crate::ratelimit::RateLimits;

/// Request counters for `GET /api/gateway`.
#[derive(Default)]
pub struct GatewayCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of those, 4xx and 5xx.
    pub errors: AtomicU64,
}

/// Everything a request handler may need.
pub struct AppState {
    /// Settings in force.
    pub settings: Settings,
    /// The durable store.
    pub store: Store,
    /// Seals and opens patient data.
    pub vault: Arc<Vault>,
    /// Live event fan-out.
    pub hub: EventHub,
    /// The actor threads.
    pub system: Arc<ActorSystem>,
    /// One actor per account.
    pub accounts: Registry<AccountActor>,
    /// One actor per doctor.
    pub schedules: Registry<ScheduleActor>,
    /// One actor per payment in flight.
    pub payments: Registry<PaymentActor>,
    /// One actor per connected patient.
    pub sessions: Sessions,
    /// Revoked tokens and sessions.
    pub revocations: Revocations,
    /// JWT keys.
    pub tokens: TokenKeys,
    /// argon2.
    pub passwords: Passwords,
    /// Failed-login lock-out.
    pub lockout: LoginLockout,
    /// Rate limits.
    pub limits: RateLimits,
    /// For `/api/gateway`.
    pub counters: GatewayCounters,
    /// Open WebSockets.
    pub sockets: Arc<Sockets>,
    /// Becomes `true` when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
    /// The NATS connection, when `nats.url` is set.
    pub nats: Option<NatsLink>,
    /// Notifications and reminders.
    pub notifier: Arc<Notifier>,
    /// Taken while an invoice number is chosen and written: issuers on
    /// this node take numbers in turn instead of racing for the same one
    /// (the store's precondition still refuses a duplicate).
    pub invoice_numbers: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Whether this node is a board replica (it owns no data).
    pub fn is_replica(&self) -> bool {
        self.nats.is_some() && self.settings.nats.role == NodeRole::BoardReplica
    }
}

impl AppState {
    /// Whether an arbiter thread runs a task within `limit`.
    pub async fn actors_responsive(&self, limit: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = self.system.arbiter_for(&"readyz").spawn_fn(move || {
            let _ = tx.send(());
        });
        spawned
            && tokio::time::timeout(limit, rx)
                .await
                .is_ok_and(|r| r.is_ok())
    }
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

/// A live (or reconnecting) NATS connection.
#[derive(Clone)]
pub struct NatsLink {
    /// The core client.
    pub client: async_nats::Client,
    /// JetStream on that client.
    pub jetstream: jetstream::Context,
    /// Subject names.
    pub subjects: Subjects,
    connected: Arc<AtomicBool>,
}

impl NatsLink {
    /// A link over `client`, up while `connected` says so (kept by the
    /// client's event callback).
    pub fn new(
        client: async_nats::Client,
        jetstream: jetstream::Context,
        subjects: Subjects,
        connected: Arc<AtomicBool>,
    ) -> Self {
        NatsLink {
            client,
            jetstream,
            subjects,
            connected,
        }
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}
