//! The NATS bridge: one connection, and the tasks that use it.
//!
//! - [`publisher`]: the outbox → JetStream, in order, deduplicated by event id.
//! - [`commands`]: `<prefix>.cmd.schedule.<providerId>` request/reply, and
//!   `<prefix>.cmd.billing.<patientId>` (`billing`: a patient's billing account).
//! - [`replica`]: on a board replica, the owner's events from JetStream into
//!   the local channel history, so live boards work there unchanged.
//!
//! NATS is optional. The connection retries in the background (the server
//! starts and serves while NATS is away) and `/readyz` reports it degraded.

mod billing;
pub mod commands;
pub mod publisher;
pub mod replica;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use commands::Commands;
use medrelay_protocol::nats::{AUTHORIZATION_HEADER, Subjects};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

use crate::auth::Principal;
use crate::auth::principal::bearer_token;
use crate::config::{NatsSettings, NodeRole};
use crate::error::AppError;
use crate::state::{AppState, NatsLink};

/// How many messages a subscription may buffer before NATS calls us slow.
const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// Connects to NATS. With several URLs the client picks one and fails over.
/// It does not wait for the server: while NATS is away the client keeps
/// retrying with backoff and everything that needs it waits or queues.
///
/// # Errors
/// When the settings are unusable (a bad URL or an unreadable creds file).
pub async fn connect(settings: &NatsSettings) -> anyhow::Result<NatsLink> {
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    let mut options = async_nats::ConnectOptions::new()
        .name(&settings.name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(timeout))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let flag = flag.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        flag.store(true, Ordering::Relaxed);
                        metrics::gauge!("nats_connected").set(1.0);
                        tracing::info!("NATS connected");
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        flag.store(false, Ordering::Relaxed);
                        metrics::gauge!("nats_connected").set(0.0);
                        tracing::warn!(%event, "NATS connection lost; reconnecting in the background");
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        metrics::counter!("nats_slow_consumer_total").increment(1);
                        tracing::warn!(sid, "NATS subscription fell behind; messages were dropped");
                    }
                    other => tracing::info!(event = %other, "NATS event"),
                }
            }
        })
        .require_tls(settings.tls_required);
    if !settings.user.is_empty() {
        options = options.user_and_password(
            settings.user.clone(),
            settings.password.expose_secret().to_owned(),
        );
    }
    if !settings.token.expose_secret().is_empty() {
        options = options.token(settings.token.expose_secret().to_owned());
    }
    if !settings.nkey_seed.expose_secret().is_empty() {
        options = options.nkey(settings.nkey_seed.expose_secret().to_owned());
    }
    if !settings.creds_file.is_empty() {
        options = options
            .credentials_file(&settings.creds_file)
            .await
            .with_context(|| format!("could not read nats.creds_file {}", settings.creds_file))?;
    }
    if !settings.tls_ca_file.is_empty() {
        options = options.add_root_certificates(settings.tls_ca_file.clone().into());
    }
    let urls: Vec<async_nats::ServerAddr> = settings
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse()
                .map_err(|e| anyhow::anyhow!("invalid nats.url {u:?}: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    metrics::gauge!("nats_connected").set(0.0);
    let client = options
        .connect(urls)
        .await
        .context("could not set up the NATS connection")?;
    if client.connection_state() == async_nats::connection::State::Connected {
        connected.store(true, Ordering::Relaxed);
        metrics::gauge!("nats_connected").set(1.0);
    }
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client.clone());
    Ok(NatsLink::new(
        client,
        jetstream,
        Subjects::new(settings.prefix.clone()),
        connected,
    ))
}

/// Reconnect backoff: 100 ms doubling to 5 s, with jitter so that many
/// nodes do not reconnect in step.
fn reconnect_delay(attempts: usize) -> Duration {
    let base = 100u64.saturating_mul(1 << attempts.min(6)).min(5_000);
    let jitter = u64::from(medrelay_actors::ids::random_bytes(1)[0]) * base / 1024;
    Duration::from_millis(base + jitter)
}

/// Starts the tasks of this node's role on `tasks`.
pub fn spawn(state: &Arc<AppState>, link: &NatsLink, tasks: &mut JoinSet<()>) {
    match state.settings.nats.role {
        NodeRole::Owner => {
            tasks.spawn(publisher::run(state.clone(), link.clone()));
            tasks.spawn(commands::run(
                state.clone(),
                link.clone(),
                Commands::Schedule,
            ));
            tasks.spawn(commands::run(
                state.clone(),
                link.clone(),
                Commands::Billing,
            ));
        }
        NodeRole::BoardReplica => {
            tasks.spawn(replica::run(state.clone(), link.clone()));
        }
    }
}

/// The stream configuration from the settings.
pub fn stream_config(settings: &NatsSettings, subjects: &Subjects) -> jetstream::stream::Config {
    let stream = &settings.stream;
    jetstream::stream::Config {
        name: stream.name.clone(),
        subjects: vec![subjects.all_events()],
        max_age: Duration::from_secs(stream.max_age_days.saturating_mul(86_400)),
        max_bytes: if stream.max_bytes == 0 {
            -1
        } else {
            i64::try_from(stream.max_bytes).unwrap_or(i64::MAX)
        },
        duplicate_window: Duration::from_secs(stream.duplicate_window_secs),
        num_replicas: stream.replicas,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

/// Waits `delay`, doubled on each call up to `max` (for retry loops).
pub(crate) async fn back_off(delay: &mut Duration, max: Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(max);
}

/// The principal of the request's `Authorization: Bearer` header. Display
/// tokens are accepted; `service::commands::run` limits them to their board.
pub(crate) fn authenticate(
    state: &AppState,
    message: &async_nats::Message,
) -> Result<Principal, AppError> {
    let header = message
        .headers
        .as_ref()
        .and_then(|h| h.get(AUTHORIZATION_HEADER))
        .map(|v| v.as_str())
        .ok_or_else(|| {
            AppError::Unauthorized("this needs an Authorization: Bearer <token> header".into())
        })?;
    let token = bearer_token(header)?;
    Principal::from_socket_token(state, token)
}
