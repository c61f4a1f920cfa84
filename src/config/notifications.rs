//! `[notifications]` and its sub-tables.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// `[notifications]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Reminders before each appointment (`"24h"`, `"2h 30m"`).
    pub reminder_offsets: Vec<String>,
    /// Whether each booking is confirmed to the patient by e-mail (with its
    /// invitation) or SMS.
    pub confirm_bookings: bool,
    /// Time zone of patients who set none.
    pub default_time_zone: String,
    /// The server's public base URL (Twilio callbacks); empty: none.
    pub public_url: String,
    /// Folder of the embedded channels; empty: `<data_dir>/outbox`.
    pub outbox_dir: String,
    /// Reminders fired per transaction.
    pub scheduler_batch: usize,
    /// Longest e-mail subject or push title.
    pub max_subject_chars: usize,
    /// Longest e-mail or push body.
    pub max_body_chars: usize,
    /// Longest SMS.
    pub max_sms_chars: usize,
    /// Push devices kept per user.
    pub max_devices_per_user: usize,
    /// `[notifications.templates]`
    pub templates: TemplateSettings,
    /// `[notifications.delivery]`
    pub delivery: DeliverySettings,
    /// `[notifications.email]`
    pub email: EmailSettings,
    /// `[notifications.sms]`
    pub sms: SmsSettings,
    /// `[notifications.push]`
    pub push: PushSettings,
}

impl NotificationSettings {
    /// The reminder offsets, parsed.
    ///
    /// # Errors
    /// When one is not a positive duration.
    pub fn offsets(&self) -> anyhow::Result<Vec<jiff::SignedDuration>> {
        self.reminder_offsets
            .iter()
            .map(|o| {
                o.parse::<jiff::SignedDuration>()
                    .ok()
                    .filter(|d| d.is_positive())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "invalid configuration: notifications.reminder_offsets: {o:?} is not a positive duration such as \"24h\" or \"2h 30m\""
                        )
                    })
            })
            .collect()
    }

    /// The folder the embedded channels write to.
    pub fn outbox_dir(&self, data_dir: &Path) -> PathBuf {
        if self.outbox_dir.trim().is_empty() {
            data_dir.join("outbox")
        } else {
            PathBuf::from(&self.outbox_dir)
        }
    }
}

/// `[notifications.templates]`: message texts with `{placeholders}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// Reminder subject (e-mail) and title (push).
    pub reminder_subject: String,
    /// Reminder text.
    pub reminder_body: String,
    /// Subject of a booking's confirmation.
    pub booked_subject: String,
    /// Text of a booking's confirmation.
    pub booked_body: String,
    /// Subject of a rescheduled notice.
    pub rescheduled_subject: String,
    /// Text of a rescheduled notice.
    pub rescheduled_body: String,
    /// Subject of a cancellation notice.
    pub cancelled_subject: String,
    /// Text of a cancellation notice.
    pub cancelled_body: String,
    /// Subject of a notice that an appointment must be moved.
    pub needs_reschedule_subject: String,
    /// Text of that notice (`{slots}`: the free times offered).
    pub needs_reschedule_body: String,
    /// Subject of the notice to a doctor whose hours change left
    /// appointments outside them.
    pub doctor_needs_reschedule_subject: String,
    /// Its text (`{doctor}`, `{count}`, `{appointments}`: one per line,
    /// time and patient).
    pub doctor_needs_reschedule_body: String,
    /// Subject of the notice to a doctor that an appointment was booked
    /// with them (`{patient}`, `{when}`).
    pub doctor_booked_subject: String,
    /// Its text.
    pub doctor_booked_body: String,
    /// Subject of the notice that an appointment with them was moved
    /// (`{patient}`, `{when}`, `{from}`).
    pub doctor_rescheduled_subject: String,
    /// Its text.
    pub doctor_rescheduled_body: String,
    /// Subject of the notice that an appointment with them was cancelled
    /// (`{patient}`, `{when}`).
    pub doctor_cancelled_subject: String,
    /// Its text.
    pub doctor_cancelled_body: String,
    /// Subject of a doctor's daily agenda (`{date}`, `{count}`).
    pub doctor_agenda_subject: String,
    /// Its text (`{appointments}`: one per line, time and patient).
    pub doctor_agenda_body: String,
    /// Subject of a freed slot offered from the waitlist (`{until}`: when
    /// the hold lapses).
    pub offer_subject: String,
    /// Its text.
    pub offer_body: String,
    /// Subject of a bill issued.
    pub bill_issued_subject: String,
    /// Text of a bill issued.
    pub bill_issued_body: String,
    /// Subject of a receipt.
    pub receipt_subject: String,
    /// Text of a receipt.
    pub receipt_body: String,
    /// Subject of a payment that did not go through.
    pub payment_failed_subject: String,
    /// Text of a payment that did not go through.
    pub payment_failed_body: String,
    /// Subject of a refund.
    pub refund_subject: String,
    /// Text of a refund.
    pub refund_body: String,
    /// Subject of an insurer's decision.
    pub claim_decided_subject: String,
    /// Text of an insurer's decision.
    pub claim_decided_body: String,
}

/// `[notifications.delivery]`: each channel's queue, pace and failure handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Sends waiting per channel.
    pub queue_capacity: usize,
    /// Sends started per second per channel.
    pub rate_per_sec: u32,
    /// Sends in flight per channel.
    pub concurrency: usize,
    /// Attempts before a transient failure is final.
    pub max_attempts: u32,
    /// First backoff.
    pub backoff_initial_ms: u64,
    /// Longest backoff.
    pub backoff_max_ms: u64,
    /// Consecutive failures that open the circuit.
    pub circuit_failures: u32,
    /// How long an open circuit refuses sends.
    pub circuit_open_secs: u64,
    /// Timeout of one send.
    pub send_timeout_secs: u64,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption (a relay on localhost).
    None,
}

/// `[notifications.email]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// SMTP relay; empty: the embedded outbox.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// SMTP user (empty: no authentication).
    pub username: String,
    /// SMTP password.
    pub password: SecretString,
    /// The From header.
    pub from: String,
    /// Idle connections kept for reuse (0: a new connection per message).
    pub pool_size: u32,
}

/// `[notifications.sms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Twilio account SID; empty: the embedded outbox.
    pub account_sid: String,
    /// Twilio auth token (API requests and callback signatures).
    pub auth_token: SecretString,
    /// Sending number.
    pub from: String,
    /// Or a messaging service.
    pub messaging_service_sid: String,
    /// API base URL.
    pub base_url: String,
}

/// `[notifications.push]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Firebase project; empty: the embedded outbox.
    pub project_id: String,
    /// Service-account key (JSON).
    pub service_account_file: String,
    /// FCM base URL.
    pub base_url: String,
    /// Overrides the key file's `token_uri`.
    pub token_uri: String,
}
