//! Notifications: reminders, appointment notices and direct sends, delivered
//! by one supervised actor per channel through its provider.
//!
//! # How a notification travels
//! 1. It is written as a [`NotificationRecord`] (status `queued`) together
//!    with a [`PendingDelivery`] entry, in one store transaction. For a
//!    reminder that is the transaction that consumes the reminder key, so a
//!    reminder becomes notifications exactly once.
//! 2. Its channel's actor (see [`worker`]) takes it: pace, circuit breaker,
//!    then `in_flight` is written *before* the provider is called and the
//!    outcome after it. Transient failures retry with backoff and jitter;
//!    permanent ones end it and may start a fallback on the next channel.
//! 3. At start-up every pending entry is handed to its channel again. One
//!    found `in_flight` is resolved from the provider when it can tell
//!    (the outbox folder), otherwise it is sent once more with the same
//!    idempotency key (the notification id).
//!
//! In-app notifications need no channel actor: writing the event on the
//! patient's channel *is* the delivery, in the same transaction as the
//! record; the patient's session (`medrelay_actors::session`) fans it out
//! to their devices.

mod agenda;
mod billing_notices;
pub mod breaker;
pub mod clock;
pub mod compose;
mod dispatch;
mod doctor_notices;
mod draft;
mod firing;
mod offer_notices;
pub mod providers;
pub mod scheduler;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix::{Addr, Supervisor};
use anyhow::Context;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_actors::accounts::UserRecord;
use medrelay_actors::fault::Fault;
use medrelay_actors::notify::{
    DeviceRecord, NotificationRecord, PendingDelivery, ReminderPlan, device_key,
};
use medrelay_actors::phi::Vault;
use medrelay_actors::session::Presence;
use medrelay_actors::store::{Store, StoreError, Table, WriteBatch, WriteError};
use medrelay_actors::system::ActorSystem;
use medrelay_protocol::notification::{DeliveryStatus, NotificationCategory, NotificationChannel};
use medrelay_protocol::{PatientId, UserId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use self::draft::Draft;

use self::breaker::Breaker;
use self::clock::Clock;
use self::providers::Provider;
use self::scheduler::ReminderScheduler;
use self::worker::{ChannelActor, Deliver};
use crate::config::{NotificationSettings, Settings};

/// Why a notification could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error("storage error: {0}")]
    Storage(#[source] Fault),
    /// A delivery task panicked; what it was doing is still in the store.
    #[error("{0} panicked")]
    Panicked(&'static str),
}

impl From<StoreError> for NotifyError {
    fn from(e: StoreError) -> Self {
        NotifyError::Storage(Fault::new(e))
    }
}

impl From<WriteError> for NotifyError {
    fn from(e: WriteError) -> Self {
        NotifyError::Storage(Fault::new(e))
    }
}

/// One external channel: its provider, actor, pace and breaker (shared by
/// the channel's actor and its send tasks).
pub struct Lane {
    provider: Provider,
    /// The channel's actor; its mailbox is the lane's queue. Set by
    /// [`Notifier::start`].
    actor: OnceLock<Addr<ChannelActor>>,
    /// Ids this lane holds (queued, in flight or waiting to retry), so a
    /// sweep never hands it the same notification twice.
    owned: Mutex<HashSet<String>>,
    /// The most ids its queue holds.
    capacity: usize,
    breaker: Breaker,
    limiter: governor::DefaultDirectRateLimiter,
    slots: Arc<Semaphore>,
    concurrency: u32,
}

impl Lane {
    /// The provider's name (`smtp`, `twilio`, `fcm`, `outbox`).
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// Whether the provider's circuit is open.
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }
}

/// The notification service.
pub struct Notifier {
    store: Store,
    vault: Arc<Vault>,
    /// Which patients have a device connected.
    presence: Presence,
    /// The clock reminders fire by.
    pub clock: Arc<Clock>,
    /// Reminder offsets and the scheduler's wake-up.
    pub plan: Arc<ReminderPlan>,
    settings: NotificationSettings,
    default_tz: TimeZone,
    /// The clinic's currency, named in billing notices.
    currency: String,
    /// Who sends appointment invitations, and where appointments are.
    clinic: compose::Clinic,
    lanes: HashMap<NotificationChannel, Lane>,
    /// Set when a lane's queue was full: pending entries wait in the store
    /// until the next sweep hands them over.
    overflowed: AtomicBool,
    /// Booking confirmations found waiting for their text channel's room
    /// (key → channel), so that the next firings pass them over without
    /// reading their patient again.
    waiting: Mutex<HashMap<String, NotificationChannel>>,
    /// Until when firings skip the confirmations: set when one found them
    /// all waiting, so that a burst's wake-ups do not read them again each.
    confirmations_rest: Mutex<Option<std::time::Instant>>,
    /// Signalled when a lane lets go of a notification while others wait
    /// in the store: the sweep need not wait for its next tick.
    room: tokio::sync::Notify,
}

impl Notifier {
    /// Builds the providers from `settings` (the outbox folder for each one
    /// not configured).
    ///
    /// # Errors
    /// When a provider's settings cannot be used (an unreadable key file).
    pub fn new(
        settings: &Settings,
        (store, vault): (Store, Arc<Vault>),
        presence: Presence,
        plan: Arc<ReminderPlan>,
    ) -> anyhow::Result<Arc<Notifier>> {
        let n = &settings.notifications;
        let outbox = n.outbox_dir(&settings.server.data_dir);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(n.delivery.send_timeout_secs))
            .build()
            .context("could not build the HTTP client")?;
        let timeout = Duration::from_secs(n.delivery.send_timeout_secs);
        let providers = [
            (
                NotificationChannel::Email,
                Provider::email(&n.email, &outbox, timeout).context("notifications.email")?,
            ),
            (
                NotificationChannel::Sms,
                Provider::sms(&n.sms, &n.public_url, &outbox, http.clone())
                    .context("notifications.sms")?,
            ),
            (
                NotificationChannel::Push,
                Provider::push(&n.push, &outbox, http).context("notifications.push")?,
            ),
        ];
        let d = &n.delivery;
        let lanes = providers
            .into_iter()
            .map(|(channel, provider)| {
                tracing::info!(channel = %channel, provider = provider.name(), "notification channel ready");
                let lane = Lane {
                    provider,
                    actor: OnceLock::new(),
                    owned: Mutex::default(),
                    capacity: d.queue_capacity,
                    breaker: Breaker::new(
                        d.circuit_failures,
                        Duration::from_secs(d.circuit_open_secs),
                    ),
                    limiter: governor::RateLimiter::direct(crate::ratelimit::quota(
                        d.rate_per_sec,
                        d.rate_per_sec,
                    )),
                    slots: Arc::new(Semaphore::new(d.concurrency)),
                    concurrency: u32::try_from(d.concurrency).unwrap_or(u32::MAX),
                };
                (channel, lane)
            })
            .collect();
        Ok(Arc::new(Notifier {
            store,
            vault,
            presence,
            clock: Arc::default(),
            plan,
            default_tz: TimeZone::get(&n.default_time_zone)
                .context("notifications.default_time_zone")?,
            settings: n.clone(),
            currency: settings.billing.currency.clone(),
            clinic: compose::Clinic {
                name: settings.billing.clinic_name.clone(),
                location: settings.billing.clinic_location(),
                sender: n
                    .email
                    .from
                    .parse::<lettre::message::Mailbox>()
                    .ok()
                    .map(|m| m.email.to_string()),
            },
            lanes,
            overflowed: AtomicBool::new(false),
            waiting: Mutex::default(),
            confirmations_rest: Mutex::default(),
            room: tokio::sync::Notify::new(),
        }))
    }

    /// Starts the channel actors on `system`, the reminder scheduler and
    /// the sweeper; hands every pending delivery left by the last run to its
    /// channel.
    pub fn start(self: &Arc<Self>, system: &ActorSystem, tasks: &mut JoinSet<()>) {
        for (channel, lane) in &self.lanes {
            let (n, channel) = (self.clone(), *channel);
            let actor =
                Supervisor::start_in_arbiter(system.arbiter_for(&channel.as_str()), move |_| {
                    ChannelActor::new(n, channel)
                });
            let _ = lane.actor.set(actor);
        }
        let n = self.clone();
        Supervisor::start_in_arbiter(system.arbiter_for(&"reminders"), move |_| {
            ReminderScheduler::new(n)
        });
        let n = self.clone();
        tasks.spawn(async move {
            n.sweep().await;
            // Agendas of doctors linked or re-configured while a write
            // after the change was lost (a crash between the two).
            if let Err(e) = n.ensure_agendas().await {
                tracing::error!(error = %e, "could not plan the doctors' agendas");
            }
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = n.room.notified() => {}
                }
                if n.overflowed.swap(false, Ordering::Relaxed) {
                    n.sweep().await;
                }
            }
        });
    }

    /// For shutdown: stops the lanes from starting sends and waits (up to
    /// `limit`) for those under way, so a restart does not cut a provider
    /// call in half and resend it. Whatever is still queued stays pending
    /// in the store for the next start.
    pub async fn quiesce(&self, limit: Duration) {
        let all = self.lanes.values().map(|lane| async {
            // Holding every slot: nothing is in flight and nothing starts.
            if let Ok(held) = lane.slots.acquire_many(lane.concurrency).await {
                held.forget();
            }
        });
        if tokio::time::timeout(limit, futures_util::future::join_all(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "notification sends still under way at shutdown; they resume at the next start"
            );
        }
    }

    /// Settings in force.
    pub fn settings(&self) -> &NotificationSettings {
        &self.settings
    }

    /// The lane of an external channel.
    pub fn lane(&self, channel: NotificationChannel) -> Option<&Lane> {
        self.lanes.get(&channel)
    }

    /// The time zone for a user's messages.
    pub fn time_zone_of(&self, name: Option<&str>) -> TimeZone {
        name.and_then(|n| TimeZone::get(n).ok())
            .unwrap_or_else(|| self.default_tz.clone())
    }

    /// Accepts a direct send: records it and queues it on its channel.
    ///
    /// # Errors
    /// [`NotifyError`] when it cannot be recorded.
    pub async fn submit(&self, draft: Draft) -> Result<NotificationRecord, NotifyError> {
        let record = draft.into_record(self.clock.now(), &self.vault);
        let mut batch = WriteBatch::new();
        self.put(&mut batch, &record);
        batch.put(
            record.notification_id.as_str(),
            &PendingDelivery {
                channel: record.channel,
            },
        );
        self.store.write(batch).await?;
        self.enqueue(record.channel, &record.notification_id);
        Ok(record)
    }

    /// A notification's record.
    ///
    /// # Errors
    /// [`NotifyError`] on a read failure.
    pub fn record(&self, id: &str) -> Result<Option<NotificationRecord>, NotifyError> {
        Ok(self.store.get::<NotificationRecord>(id)?)
    }

    /// Hands a pending notification to its lane, unless the lane holds it
    /// already. A full queue leaves it in the store for the next sweep.
    pub fn enqueue(&self, channel: NotificationChannel, id: &str) {
        let Some(lane) = self.lanes.get(&channel) else {
            return;
        };
        let mut owned = lane.owned.lock().unwrap_or_else(|e| e.into_inner());
        if !owned.insert(id.to_owned()) {
            return;
        }
        let handed = lane
            .actor
            .get()
            .is_some_and(|actor| actor.try_send(Deliver(id.to_owned())).is_ok());
        if !handed {
            owned.remove(id);
            self.note_overflow();
            metrics::counter!("notification_queue_full_total", "channel" => channel.as_str())
                .increment(1);
        }
    }

    /// Remembers that pending deliveries wait in the store for a sweep.
    fn note_overflow(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
    }

    /// Lets go of an id the lane is done with. While deliveries wait in
    /// the store, the sweep is woken once the lane has drained to half its
    /// queue: woken at every release, it would read a page of the store per
    /// message sent.
    fn release(&self, channel: NotificationChannel, id: &str) {
        let Some(lane) = self.lanes.get(&channel) else {
            return;
        };
        let held = {
            let mut owned = lane.owned.lock().unwrap_or_else(|e| e.into_inner());
            owned.remove(id);
            owned.len()
        };
        if held <= lane.capacity / 2 && self.overflowed.load(Ordering::Relaxed) {
            self.room.notify_one();
        }
    }

    /// Hands every pending delivery in the store to its lane.
    async fn sweep(&self) {
        let mut after: Option<String> = None;
        let mut handed = 0usize;
        loop {
            let page = match self.store.scan::<PendingDelivery>(after.as_deref(), 1_000) {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "could not read pending notifications");
                    return;
                }
            };
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (id, pending) in &page {
                self.enqueue(pending.channel, id);
                handed += 1;
            }
            if self.overflowed.load(Ordering::Relaxed) {
                // The queues are full; the next sweep goes on.
                break;
            }
        }
        if handed > 0 {
            tracing::info!(
                count = handed,
                "pending notifications handed to their channels"
            );
        }
    }

    /// Records an in-app notification and its event on the patient's
    /// channel in `batch`: the event is the delivery.
    pub fn in_app(
        &self,
        batch: &mut WriteBatch,
        draft: Draft,
        now: Timestamp,
    ) -> NotificationRecord {
        let (title, body) = (draft.subject.clone(), draft.body.clone());
        let patient = PatientId::parse(&draft.recipient);
        let mut record = draft.into_record(now, &self.vault);
        let Ok(patient) = patient else {
            record.push_status(
                DeliveryStatus::Undeliverable,
                now,
                None,
                Some("not a patient id".into()),
            );
            self.put(batch, &record);
            return record;
        };
        let live = self.presence.devices(&patient);
        let channel = medrelay_protocol::Channel::Patient(patient);
        let (status, detail) = if live > 0 {
            (
                DeliveryStatus::Delivered,
                format!("{live} device(s) connected"),
            )
        } else {
            (DeliveryStatus::Sent, "kept for the next connection".into())
        };
        record.push_status(status, now, None, Some(detail));
        batch.event(
            channel,
            medrelay_protocol::Event::Notification {
                notification_id: record.notification_id.clone(),
                category: record
                    .category
                    .unwrap_or(NotificationCategory::AppointmentChange),
                appointment_id: record.appointment_id.clone(),
                title: title.unwrap_or_default(),
                body,
                at: now,
            },
        );
        self.put(batch, &record);
        record
    }

    /// After `failed` failed for good: sends its message on the next
    /// fallback channel that can reach the recipient, in `batch`. Returns
    /// the new notification's channel and id.
    fn fallback(
        &self,
        batch: &mut WriteBatch,
        failed: &mut NotificationRecord,
        now: Timestamp,
    ) -> Option<(NotificationChannel, String)> {
        let mut rest = std::mem::take(&mut failed.fallback);
        if rest.is_empty() {
            return None;
        }
        let text = match failed.text(&self.vault) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(notification = %failed.notification_id, error = %e, "cannot fall back: the failed notification's text does not open");
                return None;
            }
        };
        while !rest.is_empty() {
            let channel = rest.remove(0);
            let Some(recipient) = self.address_of(failed, channel) else {
                continue;
            };
            let record = Draft {
                channel,
                recipient,
                subject: text.subject.clone(),
                body: text.body.clone(),
                category: failed.category,
                user_id: failed.user_id.clone(),
                patient_id: failed.patient_id.clone(),
                appointment_id: failed.appointment_id.clone(),
                due_at: failed.due_at,
                created_by: failed.created_by.clone(),
                fallback: rest,
                fallback_of: Some(failed.notification_id.clone()),
                // A message that falls back to e-mail was a text or a push:
                // it had no invitation to carry on.
                invitation: None,
            }
            .into_record(now, &self.vault);
            if let Some(last) = failed.history.last_mut() {
                let note = format!("falling back to {channel} ({})", record.notification_id);
                last.detail = Some(match last.detail.take() {
                    Some(d) => format!("{d}; {note}"),
                    None => note,
                });
            }
            self.put(batch, &record);
            batch.put(
                record.notification_id.as_str(),
                &PendingDelivery { channel },
            );
            return Some((channel, record.notification_id));
        }
        None
    }

    /// Where `channel` reaches the person `record` is for.
    fn address_of(
        &self,
        record: &NotificationRecord,
        channel: NotificationChannel,
    ) -> Option<String> {
        let id = record.patient_id.as_ref()?;
        let patient = medrelay_actors::patients::load(&self.store, &self.vault, id).ok()??;
        let user = (patient.user_id.as_ref())
            .and_then(|u| self.store.get::<UserRecord>(u.as_str()).ok().flatten());
        medrelay_actors::notify::policy::contact(&patient, user.as_ref(), channel)
    }

    /// Forgets a device the push provider no longer knows.
    async fn forget_device(&self, user: &UserId, token: &str) {
        let mut batch = WriteBatch::new();
        batch.delete(Table::Devices, device_key(user, token));
        match self.store.write(batch).await {
            Ok(_) => {
                tracing::info!(user = %user, "removed a push device the provider reports as unregistered")
            }
            Err(e) => tracing::warn!(error = %e, "could not remove an unregistered push device"),
        }
    }

    /// A user's registered push devices.
    ///
    /// # Errors
    /// [`NotifyError`] on a read failure.
    pub fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, NotifyError> {
        Ok(self
            .store
            .scan_prefix::<DeviceRecord>(&format!("{user}/"), self.settings.max_devices_per_user)?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// Applies a delivery report from the SMS provider.
    ///
    /// # Errors
    /// [`NotifyError`] when it cannot be recorded.
    pub async fn provider_report(
        &self,
        id: &str,
        status: DeliveryStatus,
        provider_message_id: Option<String>,
        detail: Option<String>,
    ) -> Result<bool, NotifyError> {
        let Some(mut record) = self.record(id)? else {
            return Ok(false);
        };
        if record.status.is_final() || record.status == status {
            return Ok(true);
        }
        let now = self.clock.now();
        record.push_status(status, now, provider_message_id, detail);
        let mut batch = WriteBatch::new();
        let mut follow = None;
        if status.is_final() {
            batch.delete(Table::NotificationQueue, id);
            if status == DeliveryStatus::Undeliverable {
                follow = self.fallback(&mut batch, &mut record, now);
            }
        }
        self.put(&mut batch, &record);
        self.store.write(batch).await?;
        if let Some((channel, id)) = follow {
            self.enqueue(channel, &id);
        }
        Ok(true)
    }
}
