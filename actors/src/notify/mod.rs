//! Notification records, preferences, devices and durable reminders.
//!
//! Reminders live in the `reminders` table under keys that sort by due time
//! (`<due ms, 13 digits>/<appointment>/<kind>`), so the store itself is the
//! timer queue: the scheduler reads the first keys, and nothing but the
//! store holds pending reminders. The schedule actor writes, moves and
//! removes them in the same transaction as the booking that causes them.
//!
//! [`policy`] holds what the scheduler decides when one falls due (stale or
//! not, quiet hours, time zone, channels and addresses), as pure functions.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::notification::{
    DeliveryStatus, NotificationCategory, NotificationChannel, NotificationPreferences,
};
use medrelay_protocol::schedule::{AppointmentId, SlotTime};
use medrelay_protocol::{PatientId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::patients::PatientError;
use crate::phi::{PhiError, Place, Sealed, Vault};
use crate::schedule::AppointmentRecord;
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

pub mod doctors;
pub mod policy;

pub use medrelay_protocol::notification::Platform;

/// One entry of a delivery report's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEntry {
    /// The status reached.
    pub status: DeliveryStatus,
    /// When.
    pub at: Timestamp,
    /// The provider's id of the message, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Why it failed, or a note (`fallback to email`, `outbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A notification and its delivery report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// Its id; also the idempotency key given to providers.
    pub notification_id: String,
    /// The channel it goes out on.
    pub channel: NotificationChannel,
    /// What it is about (`None` for direct sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<NotificationCategory>,
    /// The account it is for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The patient it is for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
    /// The appointment it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<AppointmentId>,
    /// Who it goes to and what it says, sealed: the address and the text
    /// name the patient. [`NotificationRecord::text`] opens it.
    pub text: StoredText,
    /// Where delivery stands.
    pub status: DeliveryStatus,
    /// Every status reached, oldest first.
    pub history: Vec<StatusEntry>,
    /// Send attempts begun.
    pub attempts: u32,
    /// Set before each send and cleared after it: a record found with it
    /// set after a restart may or may not have gone out.
    #[serde(default)]
    pub in_flight: bool,
    /// When a reminder was due (lateness is measured from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    /// Who asked for a direct send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
    /// Channels still allowed for a fallback, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<NotificationChannel>,
    /// The notification this one replaces after it failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<String>,
    /// E-mails about an appointment: the number of changes the appointment
    /// had when the notice fired. Its invitation is made as it is sent,
    /// and only while the appointment still has that many (a later change
    /// sends its own), so the attachment always matches the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<u32>,
    /// When a patient's device acknowledged it (in-app notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
}

impl Record for NotificationRecord {
    const TABLE: Table = Table::Notifications;
    const VERSION: u16 = 2;

    /// Version 1 kept the address and text in the clear: they become
    /// [`StoredText::Legacy`] until [`seal_legacy`] seals them.
    fn upgrade(version: u16, mut json: serde_json::Value) -> Result<serde_json::Value, String> {
        match version {
            2 => Ok(json),
            1 => {
                let record = json.as_object_mut().ok_or("not an object")?;
                let mut text = serde_json::Map::new();
                for field in ["recipient", "subject", "body"] {
                    if let Some(value) = record.remove(field) {
                        text.insert(field.to_owned(), value);
                    }
                }
                record.insert("text".into(), serde_json::json!({ "legacy": text }));
                Ok(json)
            }
            other => Err(format!("no upgrade from schema version {other}")),
        }
    }
}

/// A notification's address and text, in the clear: only in memory.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationText {
    /// Address, number, device token or patient id.
    pub recipient: String,
    /// Subject or title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The text.
    pub body: String,
}

impl std::fmt::Debug for NotificationText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the address or the words: they name the patient.
        f.write_str("NotificationText { .. }")
    }
}

/// How a notification's [`NotificationText`] is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StoredText {
    /// Sealed for this notification (see [`crate::phi`]).
    Sealed(Sealed),
    /// Written before notifications were sealed; [`seal_legacy`] seals it
    /// at start-up.
    Legacy(NotificationText),
}

/// Where a notification's text is sealed: bound to its id.
fn text_place(id: &str) -> Place<'_> {
    Place {
        table: "notifications",
        id,
        field: "text",
    }
}

impl NotificationRecord {
    /// Seals `text` for the notification `id`.
    pub fn seal_text(vault: &Vault, id: &str, text: &NotificationText) -> StoredText {
        StoredText::Sealed(vault.seal_json(text_place(id), text))
    }

    /// Opens its address and text.
    ///
    /// # Errors
    /// [`PhiError`] when the sealed text does not open.
    pub fn text(&self, vault: &Vault) -> Result<NotificationText, PhiError> {
        match &self.text {
            StoredText::Sealed(sealed) => {
                vault.open_json(text_place(&self.notification_id), sealed)
            }
            StoredText::Legacy(text) => Ok(text.clone()),
        }
    }

    /// Whether its text needs sealing under the key `current`.
    pub fn stale(&self, current: u32) -> bool {
        match &self.text {
            StoredText::Sealed(sealed) => sealed.key_id().ok() != Some(current),
            StoredText::Legacy(_) => true,
        }
    }

    /// The same record with its text sealed afresh under the current key.
    ///
    /// # Errors
    /// [`PhiError`] when the old text does not open.
    pub fn resealed(mut self, vault: &Vault) -> Result<Self, PhiError> {
        let text = self.text(vault)?;
        self.text = Self::seal_text(vault, &self.notification_id, &text);
        Ok(self)
    }

    /// Records a new status.
    pub fn push_status(
        &mut self,
        status: DeliveryStatus,
        at: Timestamp,
        provider_message_id: Option<String>,
        detail: Option<String>,
    ) {
        self.status = status;
        self.history.push(StatusEntry {
            status,
            at,
            provider_message_id,
            detail,
        });
    }

    /// The first time it reached `status`.
    pub fn first(&self, status: DeliveryStatus) -> Option<Timestamp> {
        self.history
            .iter()
            .find(|e| e.status == status)
            .map(|e| e.at)
    }

    /// The provider's id of the message, from the newest entry holding one.
    pub fn provider_message_id(&self) -> Option<&str> {
        self.history
            .iter()
            .rev()
            .find_map(|e| e.provider_message_id.as_deref())
    }
}

/// Seals the notifications written before their text was sealed, once:
/// a counter records that it ran to the end. Returns how many it sealed.
/// Call it at start-up, before anything else writes notifications.
///
/// # Errors
/// [`PatientError`] on a read or write failure.
pub async fn seal_legacy(store: &Store, vault: &Vault) -> Result<usize, PatientError> {
    const BATCH: usize = 512;
    if store.counter(LEGACY_SEALED)? > 0 {
        return Ok(0);
    }
    let mut after: Option<String> = None;
    let mut sealed = 0;
    loop {
        let page = store.scan::<NotificationRecord>(after.as_deref(), BATCH)?;
        let mut batch = WriteBatch::new();
        let Some((last, _)) = page.last() else {
            batch.set_counter(LEGACY_SEALED, 1);
            store.write(batch).await?;
            return Ok(sealed);
        };
        after = Some(last.clone());
        for (key, record) in page {
            if matches!(record.text, StoredText::Legacy(_)) {
                // No compare-and-swap: it runs at start-up, before anything
                // else writes notifications (and a version-1 value never
                // equals its re-encoding).
                batch.put(key, &record.resealed(vault)?);
                sealed += 1;
            }
        }
        if !batch.is_empty() {
            store.write(batch).await?;
        }
    }
}

/// The counter [`seal_legacy`] sets once every notification is sealed.
const LEGACY_SEALED: &str = "notifications_sealed";

/// A delivery that is not final yet (key: notification id). Start-up hands
/// every one to its channel again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    /// The channel it waits for.
    pub channel: NotificationChannel,
}

impl Record for PendingDelivery {
    const TABLE: Table = Table::NotificationQueue;
    const VERSION: u16 = 1;
}

/// Stored preferences (key: user id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PreferencesRecord(pub NotificationPreferences);

impl Record for PreferencesRecord {
    const TABLE: Table = Table::NotificationPrefs;
    const VERSION: u16 = 1;
}

/// A user's preferences, or the defaults.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn preferences(store: &Store, user: &UserId) -> Result<NotificationPreferences, StoreError> {
    Ok(store
        .get::<PreferencesRecord>(user.as_str())?
        .map(|r| r.0)
        .unwrap_or_default())
}

/// A registered push device (key: `<user>/<token>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    /// The provider's device token.
    pub token: String,
    /// What kind of device it is.
    pub platform: Platform,
    /// When it was registered (or last re-registered).
    pub registered_at: Timestamp,
}

impl Record for DeviceRecord {
    const TABLE: Table = Table::Devices;
    const VERSION: u16 = 1;
}

/// The key of a user's device.
pub fn device_key(user: &UserId, token: &str) -> String {
    format!("{user}/{token}")
}

/// What fires when a reminder key falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ReminderKind {
    /// A reminder this long before the appointment.
    Reminder {
        /// Seconds before the start.
        offset_secs: i64,
    },
    /// The appointment was booked (a [`BookingConfirmation`]: by e-mail or
    /// SMS only, since the app shows the booking live already).
    Booked,
    /// The appointment moved (sent at once).
    Rescheduled,
    /// The appointment was cancelled (sent at once).
    Cancelled,
    /// The doctor's hours changed so that the appointment no longer fits
    /// them; the patient is asked to move it (sent at once, with the next
    /// free slots).
    NeedsReschedule,
}

impl ReminderKind {
    /// The category it is sent under.
    pub fn category(self) -> NotificationCategory {
        match self {
            ReminderKind::Reminder { .. } => NotificationCategory::AppointmentReminder,
            ReminderKind::Booked
            | ReminderKind::Rescheduled
            | ReminderKind::Cancelled
            | ReminderKind::NeedsReschedule => NotificationCategory::AppointmentChange,
        }
    }
}

/// A pending reminder or notice (table `reminders`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReminderRecord {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// What to send.
    #[serde(flatten)]
    pub kind: ReminderKind,
    /// The appointment start a reminder was planned for; one whose
    /// appointment has since moved is stale and never fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// Free slots to offer (a `NeedsReschedule` notice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<SlotTime>,
}

impl Record for ReminderRecord {
    const TABLE: Table = Table::Reminders;
    const VERSION: u16 = 1;
}

/// A booking to confirm to its patient (table `booking_confirmations`,
/// keyed like a reminder). Apart from the reminders so that the scheduler
/// makes confirmations no faster than the text channels send them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingConfirmation {
    /// The appointment booked.
    pub appointment_id: AppointmentId,
}

impl BookingConfirmation {
    /// The notice it fires as.
    pub fn reminder(&self) -> ReminderRecord {
        ReminderRecord {
            appointment_id: self.appointment_id.clone(),
            kind: ReminderKind::Booked,
            starts_at: None,
            suggestions: Vec::new(),
        }
    }
}

impl Record for BookingConfirmation {
    const TABLE: Table = Table::BookingConfirmations;
    const VERSION: u16 = 1;
}

/// The keys of an appointment's pending reminders (table `appointment_reminders`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReminderIndex(pub Vec<String>);

impl Record for ReminderIndex {
    const TABLE: Table = Table::AppointmentReminders;
    const VERSION: u16 = 1;
}

/// The due time encoded in a reminder key.
pub fn due_of(key: &str) -> Option<Timestamp> {
    let ms: i64 = key.get(..13)?.parse().ok()?;
    Timestamp::from_millisecond(ms).ok()
}

/// The first key past every reminder due at or before `now`: the keys of
/// due reminders are exactly those below it.
pub fn due_keys_below(now: Timestamp) -> String {
    format!("{:013}", now.as_millisecond().max(0) + 1)
}

/// A reminder key: zero-padded milliseconds first, so keys sort by due time.
pub fn reminder_key(due: Timestamp, appointment: &AppointmentId, suffix: &str) -> String {
    format!("{:013}/{appointment}/{suffix}", due.as_millisecond().max(0))
}

/// When reminders go out, shared by every schedule actor.
#[derive(Debug)]
pub struct ReminderPlan {
    /// How long before an appointment each reminder is due.
    pub offsets: Vec<SignedDuration>,
    /// Whether a booking is confirmed to the patient (a [`ReminderKind::Booked`] notice).
    pub confirm_bookings: bool,
    /// Woken after a commit that added reminders, so notices go out at once.
    pub wake: Notify,
}

impl ReminderPlan {
    /// A plan with these offsets (`confirm_bookings`: whether a booking
    /// is confirmed to the patient).
    pub fn new(offsets: Vec<SignedDuration>, confirm_bookings: bool) -> Arc<Self> {
        Arc::new(Self {
            offsets,
            confirm_bookings,
            wake: Notify::new(),
        })
    }

    /// Adds what a new booking sends: its reminders, and its confirmation
    /// when the clinic confirms bookings.
    pub fn booked(&self, batch: &mut WriteBatch, record: &AppointmentRecord, now: Timestamp) {
        self.schedule(batch, record, now);
        if self.confirm_bookings {
            let id = &record.appointment_id;
            batch.put(
                reminder_key(now, id, "b"),
                &BookingConfirmation {
                    appointment_id: id.clone(),
                },
            );
        }
    }

    /// Adds the reminders of a newly booked (or just moved) appointment to
    /// `batch`, skipping those already due, and records their keys.
    pub fn schedule(&self, batch: &mut WriteBatch, record: &AppointmentRecord, now: Timestamp) {
        let mut keys = Vec::with_capacity(self.offsets.len());
        for offset in &self.offsets {
            let Ok(due) = record.slot.start.checked_sub(*offset) else {
                continue;
            };
            if due <= now {
                continue;
            }
            let secs = offset.as_secs();
            let key = reminder_key(due, &record.appointment_id, &format!("r{secs}"));
            batch.put(
                key.clone(),
                &ReminderRecord {
                    appointment_id: record.appointment_id.clone(),
                    kind: ReminderKind::Reminder { offset_secs: secs },
                    starts_at: Some(record.slot.start),
                    suggestions: Vec::new(),
                },
            );
            keys.push(key);
        }
        batch.put(record.appointment_id.as_str(), &ReminderIndex(keys));
    }

    /// Removes an appointment's pending reminders (their keys as read from
    /// the index before the change).
    pub fn unschedule(&self, batch: &mut WriteBatch, appointment: &AppointmentId, keys: &[String]) {
        for key in keys {
            batch.delete(Table::Reminders, key.clone());
        }
        batch.delete(Table::AppointmentReminders, appointment.as_str());
    }

    /// Adds a notice sent at once (`Rescheduled`, `Cancelled`, or
    /// `NeedsReschedule` with the free slots to offer). `change` numbers the
    /// appointment's changes so two notices never share a key.
    pub fn notice(
        &self,
        batch: &mut WriteBatch,
        appointment: &AppointmentId,
        kind: ReminderKind,
        (change, now): (usize, Timestamp),
        suggestions: Vec<SlotTime>,
    ) {
        batch.put(
            reminder_key(now, appointment, &format!("n{change}")),
            &ReminderRecord {
                appointment_id: appointment.clone(),
                kind,
                starts_at: None,
                suggestions,
            },
        );
    }
}

/// The pending reminder keys of an appointment.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn pending_keys(store: &Store, appointment: &AppointmentId) -> Result<Vec<String>, StoreError> {
    Ok(store
        .get::<ReminderIndex>(appointment.as_str())?
        .map(|i| i.0)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests;
