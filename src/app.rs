//! Building, running and stopping the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use medrelay_actors::accounts::{self, AccountActor, Revocations};
use medrelay_actors::billing::gateway::{Gateway, Gateways};
use medrelay_actors::billing::payment_actor::PaymentActor;
use medrelay_actors::hub::EventHub;
use medrelay_actors::notify::ReminderPlan;
use medrelay_actors::patients;
use medrelay_actors::phi::Vault;
use medrelay_actors::schedule::{BookingRules, ScheduleActor};
use medrelay_actors::session::Sessions;
use medrelay_actors::store::{Store, StoreConfig};
use medrelay_actors::system::{ActorSystem, Registry};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::lockout::LoginLockout;
use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::card_gateway::CardGateway;
use crate::config::{NodeRole, Settings};
use crate::delivery::Notifier;
use crate::listener::Incoming;
use crate::ratelimit::RateLimits;
use crate::state::{AppState, GatewayCounters};
use crate::tls::Certificates;

/// The database file inside the data folder.
pub const DB_FILE: &str = "medrelay.redb";

/// Opens the store in `data_dir` (creating the folder), with the event hub.
///
/// # Errors
/// When the folder cannot be created or the database cannot be opened (for
/// example because a running server holds it).
pub fn open_store(
    settings: &Settings,
    vault: Option<Arc<Vault>>,
) -> anyhow::Result<(Store, EventHub)> {
    let dir = &settings.server.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create data folder {}", dir.display()))?;
    let hub = EventHub::with_rings(
        settings.store.hub_initial_capacity,
        settings.store.hub_capacity,
    );
    let path = dir.join(DB_FILE);
    let store = Store::open(
        &path,
        StoreConfig {
            queue_capacity: settings.store.queue_capacity,
            max_group: settings.store.max_group,
            channel_history: settings.store.channel_history,
            outbox_retain: settings.store.outbox_retain,
            outbox_consumer: settings.nats.enabled() && settings.nats.role == NodeRole::Owner,
            checkpoint_bytes: settings.store.checkpoint_mib.saturating_mul(1 << 20),
            checkpoint_interval: Duration::from_millis(settings.store.checkpoint_interval_ms),
            cache_bytes: usize::try_from(settings.store.cache_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            writeback_interval: Duration::from_millis(settings.store.writeback_ms),
            vault,
            stats_zone: settings.analytics.zone(),
        },
        hub.clone(),
    )
    .with_context(|| {
        format!(
            "could not open {} (is another medrelay using this data folder?)",
            path.display()
        )
    })?;
    Ok((store, hub))
}

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// The HTTPS certificate, when `server.tls_cert` is set.
    tls: Option<Arc<Certificates>>,
    state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
}

impl Application {
    /// Opens the store, starts the actors and binds the listener.
    ///
    /// # Errors
    /// When any of those fails; the message says which.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Read first: a bad certificate stops the start with a message
        // naming its key, before the store is opened or a port bound.
        let tls = settings.server.tls()?.map(Certificates::load).transpose()?;
        let key_file = settings.key_file();
        let vault = Arc::new(
            Vault::open(&key_file).context("could not open the key file for patient data")?,
        );
        let (store, hub) = open_store(&settings, Some(vault.clone()))?;
        let tokens = TokenKeys::load_or_create(
            &settings.server.data_dir,
            settings.auth.access_ttl_secs,
            settings.auth.refresh_ttl_secs,
        )?;
        let revocations = Revocations::load(&store).context("could not load revocations")?;
        let sealed = patients::seal_legacy(&store, &vault)
            .await
            .context("could not seal the patient profiles written before encryption")?;
        if sealed > 0 {
            tracing::info!(
                profiles = sealed,
                "sealed patient profiles written in the clear"
            );
        }
        let sealed = medrelay_actors::notify::seal_legacy(&store, &vault)
            .await
            .context("could not seal the notifications written before encryption")?;
        if sealed > 0 {
            tracing::info!(
                notifications = sealed,
                "sealed notifications written in the clear"
            );
        }
        let opened = medrelay_actors::billing::open_missing_accounts(&store)
            .await
            .context("could not open billing accounts for earlier patients")?;
        if opened > 0 {
            tracing::info!(
                accounts = opened,
                "opened billing accounts for patients registered before billing"
            );
        }
        medrelay_actors::schedule::migrate::provider_cells(&store)
            .await
            .context("could not repair doctors' cells")?;
        medrelay_actors::billing::claims::note_first_decisions(&store)
            .await
            .context("could not note claims' first answers")?;
        medrelay_actors::stats::rebuild::rebuild_if_stale(&store)
            .await
            .context("could not recount the analytics figures")?;
        let system = Arc::new(
            ActorSystem::start(settings.actors.arbiters).context("could not start actors")?,
        );
        let idle = Duration::from_secs(settings.actors.idle_secs);
        let accounts = {
            let (store, revocations) = (store.clone(), revocations.clone());
            Registry::new(system.clone(), move |id, retire| {
                AccountActor::new(id, store.clone(), revocations.clone(), idle, retire)
            })
        };
        let plan = ReminderPlan::new(
            settings.notifications.offsets()?,
            settings.notifications.confirm_bookings,
        );
        let sessions = Sessions::new(system.clone(), store.clone(), hub.clone());
        let notifier = Notifier::new(
            &settings,
            (store.clone(), vault.clone()),
            sessions.presence().clone(),
            plan.clone(),
        )?;
        let schedules = {
            let store = store.clone();
            let rules = BookingRules {
                min_notice: jiff::SignedDuration::from_mins(i64::from(
                    settings.schedule.min_notice_minutes,
                )),
                horizon: jiff::SignedDuration::from_hours(
                    24 * i64::from(settings.schedule.horizon_days),
                ),
                hold_for: jiff::SignedDuration::from_secs(i64::from(settings.schedule.hold_secs)),
                holds_per_patient: settings.schedule.holds_per_patient as usize,
                offer_for: jiff::SignedDuration::from_secs(i64::from(settings.schedule.offer_secs)),
            };
            Registry::new(system.clone(), move |id, retire| {
                ScheduleActor::new(id, store.clone(), rules, plan.clone(), idle, retire)
            })
        };
        let payments = {
            let (store, vault) = (store.clone(), vault.clone());
            let card = &settings.billing.card;
            let card: Option<Arc<dyn Gateway>> = if card.enabled() {
                let gateway = CardGateway::new(card, &settings.billing.currency)?;
                Some(Arc::new(gateway))
            } else {
                None
            };
            let gateways = Gateways::new(card);
            Registry::new(system.clone(), move |id, retire| {
                let gateways = gateways.clone();
                PaymentActor::new(id, store.clone(), vault.clone(), gateways, idle, retire)
            })
        };
        let nats = if settings.nats.enabled() {
            Some(crate::nats::connect(&settings.nats).await?)
        } else {
            None
        };
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("could not listen on {}", settings.server.listen))?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = Arc::new(AppState {
            invoice_numbers: tokio::sync::Mutex::new(()),
            passwords: Passwords::new(settings.auth.hash_concurrency)?,
            lockout: LoginLockout::new(
                settings.auth.max_failed_logins,
                Duration::from_secs(settings.auth.failed_login_window_secs),
                Duration::from_secs(settings.auth.lockout_secs),
                settings.auth.failed_login_table,
            ),
            limits: RateLimits::new(&settings.rate_limit, &settings.calendar),
            counters: GatewayCounters::default(),
            sockets: Arc::default(),
            settings,
            store,
            vault,
            hub,
            system,
            accounts,
            schedules,
            payments,
            sessions,
            revocations,
            tokens,
            shutdown,
            nats,
            notifier,
        });
        Ok(Application {
            listener,
            tls,
            state,
            shutdown_tx,
        })
    }

    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// When the OS cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `signal` resolves, then shuts down gracefully: stop
    /// accepting, close WebSockets with 1001, finish in-flight requests and
    /// queued writes, stop the actors.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            tls,
            state,
            shutdown_tx,
        } = self;
        let addr = listener.local_addr()?;
        let mut background = spawn_background(&state);
        let https = tls.is_some();
        let incoming = match tls {
            Some(certificates) => {
                let acceptor = certificates.acceptor()?;
                background.spawn(certificates.watch());
                tracing::info!(%addr, "medrelay listening on https://{addr}");
                Incoming::tls(listener, acceptor)?
            }
            None => {
                tracing::info!(%addr, "medrelay listening on http://{addr}");
                Incoming::plain(listener)?
            }
        };
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
        let shutdown_tx = Arc::new(shutdown_tx);
        let notify = shutdown_tx.clone();
        let app = crate::http::router(state.clone(), https);
        // `tap_io` (doing nothing) lends the listener axum's peer-address
        // extractor, which the rate limits and logs use.
        let serve = axum::serve(
            incoming.tap_io(|_| {}),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("shutting down: no new connections; closing WebSockets");
            let _ = notify.send(true);
        });
        let mut stopping = state.shutdown.clone();
        let grace_timer = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = serve => served.context("server error")?,
            () = grace_timer => tracing::warn!("in-flight requests outlived the shutdown grace period"),
        }
        if !state.sockets.wait_drained(grace).await {
            tracing::warn!(
                open = state.sockets.open(),
                "WebSockets still open after the grace period"
            );
        }
        state
            .notifier
            .quiesce(Duration::from_secs(
                state.settings.notifications.delivery.send_timeout_secs,
            ))
            .await;
        background.abort_all();
        if let Some(link) = &state.nats {
            let _ = tokio::time::timeout(Duration::from_secs(2), link.client.flush()).await;
        }
        state.store.close().await;
        let system = state.system.clone();
        tokio::task::spawn_blocking(move || system.stop()).await?;
        tracing::info!("medrelay stopped");
        Ok(())
    }
}

/// Housekeeping: metrics upkeep, rate-limiter and token pruning.
fn spawn_background(state: &Arc<AppState>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    if let Some(link) = &state.nats {
        crate::nats::spawn(state, link, &mut tasks);
    }
    if !state.is_replica() {
        state.notifier.start(&state.system, &mut tasks);
    }
    let s = state.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            crate::telemetry::metrics().run_upkeep();
            s.limits.retain_recent();
            s.hub.prune();
        }
    });
    if !state.is_replica() {
        tasks.spawn(crate::service::billing::upkeep::resume(state.clone()));
        tasks.spawn(crate::service::billing::upkeep::prune_keys(state.clone()));
        tasks.spawn(sweep_deleted_patients(state.clone()));
        tasks.spawn(crate::service::analytics::live::push_today(state.clone()));
        let s = state.clone();
        tasks.spawn(async move { crate::service::holds::release_lapsed_at_start(&s).await });
        if state.vault.key_ids().len() > 1 {
            tasks.spawn(reseal_after_rotation(state.clone()));
        }
    }
    let s = state.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = jiff::Timestamp::now().as_second();
            match accounts::prune_expired(&s.store, &s.revocations, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "pruned expired tokens and revocations"),
                Err(e) => tracing::warn!(error = %e, "could not prune expired tokens"),
            }
        }
    });
    tasks
}

/// Settles deleted patients and purges those past the retention, every
/// `records.sweep_secs` and whenever the (test-movable) clock jumps.
async fn sweep_deleted_patients(state: Arc<AppState>) {
    let every = Duration::from_secs(state.settings.records.sweep_secs);
    let retention = jiff::SignedDuration::from_hours(
        24 * i64::try_from(state.settings.records.retention_days).unwrap_or(i64::MAX / 48),
    );
    loop {
        let now = state.notifier.clock.now();
        match crate::service::patient::purge_due(&state, now, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(patients = n, "purged deleted patients past the retention"),
            Err(e) => {
                tracing::warn!(error = %e, "the sweep of deleted patients failed; retrying later")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = state.notifier.clock.moved() => {}
        }
    }
}

/// After a key rotation: re-seals, in the background, what older keys
/// sealed; once a pass finds nothing left, drops them from the key file.
async fn reseal_after_rotation(state: Arc<AppState>) {
    let r = &state.settings.records;
    let pause = Duration::from_millis(r.rekey_pause_ms);
    let current = state.vault.current();
    tracing::info!(
        key = current,
        "re-sealing patient data sealed with older keys"
    );
    loop {
        match medrelay_actors::rekey::pass(&state.store, &state.vault, r.rekey_batch, pause).await {
            Ok(0) => break,
            Ok(n) => tracing::info!(values = n, "re-sealed a pass of patient data"),
            Err(e) => {
                tracing::warn!(error = %e, "re-sealing failed; retrying in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
    match medrelay_actors::phi::retire_old_keys(&state.settings.key_file(), current) {
        Ok(n) => tracing::info!(
            dropped = n,
            key = current,
            "every value is sealed with the current key; older keys dropped"
        ),
        Err(e) => tracing::warn!(error = %e, "could not drop the older keys"),
    }
}
