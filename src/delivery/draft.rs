//! [`Draft`]: a notification before it is recorded.

use jiff::Timestamp;
use medrelay_actors::ids::new_id;
use medrelay_actors::notify::{NotificationRecord, NotificationText, StatusEntry};
use medrelay_actors::phi::Vault;
use medrelay_protocol::notification::{DeliveryStatus, NotificationCategory, NotificationChannel};
use medrelay_protocol::schedule::AppointmentId;
use medrelay_protocol::{PatientId, UserId};

/// A message to one recipient on one channel.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The channel.
    pub channel: NotificationChannel,
    /// Address, number, device token or patient id.
    pub recipient: String,
    /// Subject or title.
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// What it is about.
    pub category: Option<NotificationCategory>,
    /// The account it is for.
    pub user_id: Option<UserId>,
    /// The patient it is for.
    pub patient_id: Option<PatientId>,
    /// The appointment it concerns.
    pub appointment_id: Option<AppointmentId>,
    /// When a reminder was due.
    pub due_at: Option<Timestamp>,
    /// Who asked (direct sends).
    pub created_by: Option<UserId>,
    /// Channels to fall back to, in order.
    pub fallback: Vec<NotificationChannel>,
    /// The notification this one replaces.
    pub fallback_of: Option<String>,
    /// E-mails about an appointment: its number of changes, for the
    /// invitation made as it is sent.
    pub invitation: Option<u32>,
}

impl Draft {
    /// A new record for it, `queued` at `now`, its address and text sealed.
    pub fn into_record(self, now: Timestamp, vault: &Vault) -> NotificationRecord {
        let notification_id = new_id("ntf");
        let text = NotificationText {
            recipient: self.recipient,
            subject: self.subject,
            body: self.body,
        };
        NotificationRecord {
            text: NotificationRecord::seal_text(vault, &notification_id, &text),
            notification_id,
            channel: self.channel,
            category: self.category,
            user_id: self.user_id,
            patient_id: self.patient_id,
            appointment_id: self.appointment_id,
            status: DeliveryStatus::Queued,
            history: vec![StatusEntry {
                status: DeliveryStatus::Queued,
                at: now,
                provider_message_id: None,
                detail: None,
            }],
            attempts: 0,
            in_flight: false,
            due_at: self.due_at,
            created_by: self.created_by,
            fallback: self.fallback,
            fallback_of: self.fallback_of,
            invitation: self.invitation,
            acknowledged_at: None,
        }
    }
}
