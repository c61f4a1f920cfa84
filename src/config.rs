//! Layered configuration: `config/default.toml` (compiled in), an optional
//! file from `--config`, then `MEDRELAY__SECTION__KEY` environment variables.
//! A bad value stops start-up with a message naming its key.

use std::path::Path;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod analytics;
mod billing;
mod calendar;
mod notifications;
mod server;

pub use analytics::AnalyticsSettings;
pub use billing::{BillingSettings, CardSettings};
pub use calendar::CalendarSettings;
pub use notifications::{
    DeliverySettings, EmailSettings, NotificationSettings, PushSettings, SmsSettings, SmtpTls,
    TemplateSettings,
};
pub use server::{ServerSettings, TlsFiles};

/// The defaults, shipped inside the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// All settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`
    pub server: ServerSettings,
    /// `[auth]`
    pub auth: AuthSettings,
    /// `[rate_limit]`
    pub rate_limit: RateLimitSettings,
    /// `[websocket]`
    pub websocket: WebSocketSettings,
    /// `[store]`
    pub store: StoreSettings,
    /// `[schedule]`
    pub schedule: ScheduleSettings,
    /// `[actors]`
    pub actors: ActorSettings,
    /// `[log]`
    pub log: LogSettings,
    /// `[nats]`
    pub nats: NatsSettings,
    /// `[notifications]`
    pub notifications: NotificationSettings,
    /// `[records]`
    pub records: RecordSettings,
    /// `[billing]`
    pub billing: BillingSettings,
    /// `[calendar]`
    pub calendar: CalendarSettings,
    /// `[analytics]`
    pub analytics: AnalyticsSettings,
}

/// `[records]`: patient data at rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSettings {
    /// The PHI key file; empty means `<data_dir>/phi.key`, created on first start.
    pub key_file: String,
    /// Most patients one list page returns.
    pub page_limit: usize,
    /// How long a deleted patient's data is kept (restorable) before it is
    /// purged for good.
    pub retention_days: u64,
    /// How often deleted patients are settled and purged.
    pub sweep_secs: u64,
    /// Values re-sealed per write after a key rotation.
    pub rekey_batch: usize,
    /// Pause between those writes, so re-sealing never crowds out requests.
    pub rekey_pause_ms: u64,
}

impl Settings {
    /// The PHI key file in use.
    pub fn key_file(&self) -> std::path::PathBuf {
        if self.records.key_file.is_empty() {
            self.server.data_dir.join("phi.key")
        } else {
            self.records.key_file.clone().into()
        }
    }
}

/// What this node does when NATS is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Owns the data: serves the API, publishes its outbox to JetStream and
    /// answers commands over NATS.
    Owner,
    /// Serves live boards over WebSocket from the owner's events on NATS;
    /// owns no data and answers no API writes.
    BoardReplica,
}

/// `[nats]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated; empty runs without NATS.
    pub url: String,
    /// This node's role.
    pub role: NodeRole,
    /// Subject prefix.
    pub prefix: String,
    /// Connection name shown by the server.
    pub name: String,
    /// User and password (both or neither).
    pub user: String,
    /// See `user`.
    pub password: SecretString,
    /// Token authentication.
    pub token: SecretString,
    /// A `.creds` file (user JWT and NKey seed).
    pub creds_file: String,
    /// An NKey seed (`SU...`).
    pub nkey_seed: SecretString,
    /// Require TLS.
    pub tls_required: bool,
    /// Extra root certificate (PEM) to trust.
    pub tls_ca_file: String,
    /// Timeout of JetStream publishes and API requests.
    pub request_timeout_ms: u64,
    /// Commands handled at once; more wait in the subscription buffer.
    pub max_concurrent_commands: usize,
    /// Outbox entries published before waiting for their acks.
    pub publish_window: usize,
    /// Largest command payload accepted, in bytes.
    pub max_command_bytes: usize,
    /// `[nats.stream]`
    pub stream: StreamSettings,
}

/// `[nats.stream]`: the JetStream stream events are published to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// How long events are kept (0: forever).
    pub max_age_days: u64,
    /// Most bytes kept (0: unlimited).
    pub max_bytes: u64,
    /// Deduplication window for `Nats-Msg-Id`.
    pub duplicate_window_secs: u64,
    /// Replicas in a NATS cluster.
    pub replicas: usize,
}

impl NatsSettings {
    /// Whether NATS is configured at all.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Access-token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime.
    pub refresh_ttl_secs: u64,
    /// Failed logins before lock-out.
    pub max_failed_logins: u32,
    /// Window the failures are counted in.
    pub failed_login_window_secs: u64,
    /// Lock-out length.
    pub lockout_secs: u64,
    /// Usernames the failed-login counter tracks at most.
    pub failed_login_table: usize,
    /// Concurrent argon2 computations.
    pub hash_concurrency: usize,
}

/// `[rate_limit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per second per IP.
    pub per_ip_per_sec: u32,
    /// Burst per IP.
    pub per_ip_burst: u32,
    /// Requests per second per user.
    pub per_user_per_sec: u32,
    /// Burst per user.
    pub per_user_burst: u32,
}

/// `[websocket]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSettings {
    /// Largest text frame.
    pub max_frame_bytes: usize,
    /// Commands per second per socket.
    pub commands_per_sec: u32,
    /// Command burst per socket.
    pub commands_burst: u32,
    /// Outbound frames queued per socket.
    pub outbound_queue: usize,
    /// Ping interval.
    pub heartbeat_secs: u64,
    /// Deadline for the first `auth` frame.
    pub auth_timeout_secs: u64,
    /// Open sockets in total.
    pub max_connections: usize,
    /// Channels per socket.
    pub max_subscriptions: usize,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Writer queue length.
    pub queue_capacity: usize,
    /// Batches per transaction.
    pub max_group: usize,
    /// Events kept per channel.
    pub channel_history: u64,
    /// Outbox entries kept without consumers.
    pub outbox_retain: u64,
    /// Most in-memory events per channel.
    pub hub_capacity: usize,
    /// In-memory events per channel to start with.
    pub hub_initial_capacity: usize,
    /// Redo log size, in MiB, that triggers a checkpoint.
    pub checkpoint_mib: u64,
    /// Longest time between checkpoints, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Memory for the store's page cache, in MiB.
    pub cache_mib: u64,
    /// How often changed pages are synced in the background, in milliseconds (0: never).
    pub writeback_ms: u64,
}

/// `[schedule]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Minimum notice for a booking, in minutes.
    pub min_notice_minutes: u32,
    /// Booking horizon, in days.
    pub horizon_days: u32,
    /// How long a slot hold lasts, in seconds.
    pub hold_secs: u32,
    /// Live slot holds one patient may have, across all doctors.
    pub holds_per_patient: u32,
    /// How long a freed slot is held for a waitlisted patient, in seconds.
    pub offer_secs: u32,
}

/// `[actors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSettings {
    /// Arbiter threads.
    pub arbiters: usize,
    /// Idle time before an actor stops.
    pub idle_secs: u64,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: LogFormat,
    /// Default filter.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// Loads the layers: defaults, then `file` if given, then the environment.
    ///
    /// # Errors
    /// A message naming the key whose value is missing, malformed or out of range.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly (tests).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("MEDRELAY__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("MEDRELAY")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .context("could not read the configuration")?
            .try_deserialize()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
            ("auth.access_ttl_secs", self.auth.access_ttl_secs),
            ("schedule.hold_secs", self.schedule.hold_secs.into()),
            ("schedule.offer_secs", self.schedule.offer_secs.into()),
            (
                "schedule.holds_per_patient",
                self.schedule.holds_per_patient.into(),
            ),
            ("auth.refresh_ttl_secs", self.auth.refresh_ttl_secs),
            ("auth.max_failed_logins", self.auth.max_failed_logins.into()),
            ("auth.hash_concurrency", self.auth.hash_concurrency as u64),
            (
                "auth.failed_login_table",
                self.auth.failed_login_table as u64,
            ),
            (
                "rate_limit.per_ip_per_sec",
                self.rate_limit.per_ip_per_sec.into(),
            ),
            (
                "rate_limit.per_ip_burst",
                self.rate_limit.per_ip_burst.into(),
            ),
            (
                "rate_limit.per_user_per_sec",
                self.rate_limit.per_user_per_sec.into(),
            ),
            (
                "rate_limit.per_user_burst",
                self.rate_limit.per_user_burst.into(),
            ),
            (
                "websocket.max_frame_bytes",
                self.websocket.max_frame_bytes as u64,
            ),
            (
                "websocket.commands_per_sec",
                self.websocket.commands_per_sec.into(),
            ),
            (
                "websocket.commands_burst",
                self.websocket.commands_burst.into(),
            ),
            (
                "websocket.outbound_queue",
                self.websocket.outbound_queue as u64,
            ),
            ("websocket.heartbeat_secs", self.websocket.heartbeat_secs),
            (
                "websocket.auth_timeout_secs",
                self.websocket.auth_timeout_secs,
            ),
            (
                "websocket.max_connections",
                self.websocket.max_connections as u64,
            ),
            (
                "websocket.max_subscriptions",
                self.websocket.max_subscriptions as u64,
            ),
            ("store.queue_capacity", self.store.queue_capacity as u64),
            ("store.max_group", self.store.max_group as u64),
            ("store.channel_history", self.store.channel_history),
            ("store.hub_capacity", self.store.hub_capacity as u64),
            ("store.checkpoint_mib", self.store.checkpoint_mib),
            ("store.cache_mib", self.store.cache_mib),
            (
                "store.checkpoint_interval_ms",
                self.store.checkpoint_interval_ms,
            ),
            (
                "store.hub_initial_capacity",
                self.store.hub_initial_capacity as u64,
            ),
            ("schedule.horizon_days", self.schedule.horizon_days.into()),
            ("calendar.days_behind", self.calendar.days_behind.into()),
            (
                "calendar.cancelled_kept_days",
                self.calendar.cancelled_kept_days.into(),
            ),
            ("calendar.max_events", self.calendar.max_events as u64),
            (
                "calendar.downloads_per_minute",
                self.calendar.downloads_per_minute.into(),
            ),
            (
                "calendar.download_burst",
                self.calendar.download_burst.into(),
            ),
            ("actors.arbiters", self.actors.arbiters as u64),
            ("actors.idle_secs", self.actors.idle_secs),
            ("records.page_limit", self.records.page_limit as u64),
            ("records.sweep_secs", self.records.sweep_secs),
            ("records.rekey_batch", self.records.rekey_batch as u64),
            ("nats.request_timeout_ms", self.nats.request_timeout_ms),
            (
                "nats.max_concurrent_commands",
                self.nats.max_concurrent_commands as u64,
            ),
            ("nats.publish_window", self.nats.publish_window as u64),
            ("nats.max_command_bytes", self.nats.max_command_bytes as u64),
            (
                "nats.stream.duplicate_window_secs",
                self.nats.stream.duplicate_window_secs,
            ),
            ("nats.stream.replicas", self.nats.stream.replicas as u64),
            (
                "notifications.scheduler_batch",
                self.notifications.scheduler_batch as u64,
            ),
            (
                "notifications.delivery.queue_capacity",
                self.notifications.delivery.queue_capacity as u64,
            ),
            (
                "notifications.delivery.rate_per_sec",
                self.notifications.delivery.rate_per_sec.into(),
            ),
            (
                "notifications.delivery.concurrency",
                self.notifications.delivery.concurrency as u64,
            ),
            (
                "notifications.delivery.max_attempts",
                self.notifications.delivery.max_attempts.into(),
            ),
            (
                "notifications.delivery.circuit_failures",
                self.notifications.delivery.circuit_failures.into(),
            ),
            (
                "notifications.delivery.send_timeout_secs",
                self.notifications.delivery.send_timeout_secs,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("invalid configuration: {key} must be greater than 0");
            }
        }
        if !medrelay_protocol::nats::valid_prefix(&self.nats.prefix) {
            bail!(
                "invalid configuration: nats.prefix must be dot-separated tokens of letters, digits, - and _"
            );
        }
        if self.nats.user.is_empty() != self.nats.password.expose_secret().is_empty() {
            bail!("invalid configuration: nats.user and nats.password go together");
        }
        if self.nats.role == NodeRole::BoardReplica && !self.nats.enabled() {
            bail!("invalid configuration: nats.role = \"board_replica\" needs nats.url");
        }
        let n = &self.notifications;
        if jiff::tz::TimeZone::get(&n.default_time_zone).is_err() {
            bail!(
                "invalid configuration: notifications.default_time_zone is not an IANA time zone"
            );
        }
        if n.reminder_offsets.len() > 8 {
            bail!("invalid configuration: notifications.reminder_offsets takes at most 8 offsets");
        }
        n.offsets()?;
        if !n.sms.account_sid.is_empty()
            && n.sms.from.is_empty() == n.sms.messaging_service_sid.is_empty()
        {
            bail!(
                "invalid configuration: notifications.sms needs exactly one of from and messaging_service_sid"
            );
        }
        if !n.push.project_id.is_empty() && n.push.service_account_file.is_empty() {
            bail!(
                "invalid configuration: notifications.push.project_id needs service_account_file"
            );
        }
        if n.email.from.parse::<lettre::message::Mailbox>().is_err() {
            bail!(
                "invalid configuration: notifications.email.from is not a mailbox (\"Name <addr@host>\")"
            );
        }
        if self.store.hub_initial_capacity > self.store.hub_capacity {
            bail!(
                "invalid configuration: store.hub_initial_capacity must not exceed store.hub_capacity"
            );
        }
        self.billing.validate()?;
        self.analytics.validate()?;
        self.server.validate()?;
        if self.access_ttl_secs_exceeds_refresh() {
            bail!(
                "invalid configuration: auth.access_ttl_secs must not exceed auth.refresh_ttl_secs"
            );
        }
        Ok(())
    }

    fn access_ttl_secs_exceeds_refresh(&self) -> bool {
        self.auth.access_ttl_secs > self.auth.refresh_ttl_secs
    }
}

#[cfg(test)]
mod tests;
