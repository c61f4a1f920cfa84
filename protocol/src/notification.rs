//! Notifications on the wire: channels, categories, delivery statuses and
//! the preferences a user sets.

use std::fmt;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schedule::ClockTime;

/// How a notification reaches someone.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// E-mail (SMTP).
    Email,
    /// Text message (Twilio).
    Sms,
    /// Mobile push (FCM).
    Push,
    /// The patient's live WebSocket channel `patient:<id>`.
    InApp,
}

impl NotificationChannel {
    /// Every channel.
    pub const ALL: [NotificationChannel; 4] = [
        NotificationChannel::Email,
        NotificationChannel::Sms,
        NotificationChannel::Push,
        NotificationChannel::InApp,
    ];

    /// Whether it is a text channel (e-mail or SMS), reaching a person
    /// outside the app.
    pub fn is_text(self) -> bool {
        matches!(self, NotificationChannel::Email | NotificationChannel::Sms)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationChannel::Email => "email",
            NotificationChannel::Sms => "sms",
            NotificationChannel::Push => "push",
            NotificationChannel::InApp => "in_app",
        }
    }
}

impl fmt::Display for NotificationChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a notification is about; each can be opted out of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationCategory {
    /// Reminders before an appointment.
    AppointmentReminder,
    /// An appointment was moved or cancelled.
    AppointmentChange,
    /// Bills and payments.
    Billing,
    /// News and offers (off unless opted in).
    Marketing,
}

impl NotificationCategory {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationCategory::AppointmentReminder => "appointment_reminder",
            NotificationCategory::AppointmentChange => "appointment_change",
            NotificationCategory::Billing => "billing",
            NotificationCategory::Marketing => "marketing",
        }
    }
}

/// Where a notification's delivery stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted, waiting for its channel.
    Queued,
    /// Handed to the provider, which accepted it.
    Sent,
    /// The provider (or the outbox folder, or a live socket) has it.
    Delivered,
    /// A send failed; a retry or a fallback may follow.
    Failed,
    /// It will not arrive: the address is bad, the device is gone or the
    /// retries ran out.
    Undeliverable,
    /// A reminder that fell due while the server was down, after its
    /// appointment had begun; never sent.
    Expired,
}

impl DeliveryStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Undeliverable => "undeliverable",
            DeliveryStatus::Expired => "expired",
        }
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Undeliverable | DeliveryStatus::Expired
        )
    }
}

/// Per-channel opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ChannelPrefs {
    /// E-mail.
    pub email: bool,
    /// SMS.
    pub sms: bool,
    /// Push.
    pub push: bool,
    /// In-app.
    pub in_app: bool,
}

impl ChannelPrefs {
    /// Whether `channel` is allowed.
    pub fn allows(&self, channel: NotificationChannel) -> bool {
        match channel {
            NotificationChannel::Email => self.email,
            NotificationChannel::Sms => self.sms,
            NotificationChannel::Push => self.push,
            NotificationChannel::InApp => self.in_app,
        }
    }
}

/// Per-category opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct CategoryPrefs {
    /// Reminders.
    pub appointment_reminder: bool,
    /// Moves and cancellations.
    pub appointment_change: bool,
    /// Billing.
    pub billing: bool,
    /// Marketing.
    pub marketing: bool,
}

impl CategoryPrefs {
    /// Whether `category` is allowed.
    pub fn allows(&self, category: NotificationCategory) -> bool {
        match category {
            NotificationCategory::AppointmentReminder => self.appointment_reminder,
            NotificationCategory::AppointmentChange => self.appointment_change,
            NotificationCategory::Billing => self.billing,
            NotificationCategory::Marketing => self.marketing,
        }
    }
}

/// Hours in which nothing but urgent notices are sent, in the user's time
/// zone. `start` after `end` spans midnight (22:00 to 07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    /// When they begin (`HH:MM`).
    #[schemars(with = "String")]
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: ClockTime,
    /// When they end (`HH:MM`, not equal to `start`).
    #[schemars(with = "String")]
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: ClockTime,
}

impl QuietHours {
    /// Whether `minute` (after midnight) falls inside.
    pub fn contains(&self, minute: u16) -> bool {
        let (s, e) = (self.start.minutes(), self.end.minutes());
        if s <= e {
            (s..e).contains(&minute)
        } else {
            minute >= s || minute < e
        }
    }

    /// Minutes from `minute` until they end (0 when outside).
    pub fn minutes_left(&self, minute: u16) -> u16 {
        if !self.contains(minute) {
            return 0;
        }
        let e = self.end.minutes();
        if minute < e {
            e - minute
        } else {
            24 * 60 - minute + e
        }
    }
}

/// A user's notification preferences (`/api/users/me/notification-preferences`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationPreferences {
    /// Channels allowed.
    pub channels: ChannelPrefs,
    /// Categories allowed.
    pub categories: CategoryPrefs,
    /// Quiet hours, if any.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// IANA time zone for quiet hours and message times (`null`: the clinic's).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Which text channel (`email` or `sms`) carries reminders and notices;
    /// the other, when allowed, is the fallback if it fails for good.
    /// In-app and push go out besides, when allowed.
    #[serde(default = "default_text_channel")]
    #[schema(value_type = String, pattern = "^(email|sms)$")]
    pub preferred_channel: NotificationChannel,
    /// Doctors: the local time of day their daily agenda is sent (`HH:MM`,
    /// in `timeZone` or else their schedule's zone); `null` sends none.
    /// Ignored for other accounts.
    #[serde(default = "default_agenda_at")]
    #[schemars(with = "Option<String>")]
    #[schema(value_type = Option<String>, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub agenda_at: Option<ClockTime>,
}

fn default_agenda_at() -> Option<ClockTime> {
    Some(ClockTime::from_minutes(7 * 60))
}

fn default_text_channel() -> NotificationChannel {
    NotificationChannel::Email
}

impl NotificationPreferences {
    /// The text channels to try, in order: the preferred one, then the other.
    pub fn text_channels(&self) -> [NotificationChannel; 2] {
        if self.preferred_channel == NotificationChannel::Sms {
            [NotificationChannel::Sms, NotificationChannel::Email]
        } else {
            [NotificationChannel::Email, NotificationChannel::Sms]
        }
    }
}

impl Default for NotificationPreferences {
    /// Everything on except marketing; no quiet hours.
    fn default() -> Self {
        Self {
            channels: ChannelPrefs {
                email: true,
                sms: true,
                push: true,
                in_app: true,
            },
            categories: CategoryPrefs {
                appointment_reminder: true,
                appointment_change: true,
                billing: true,
                marketing: false,
            },
            quiet_hours: None,
            time_zone: None,
            preferred_channel: default_text_channel(),
            agenda_at: default_agenda_at(),
        }
    }
}

/// A push device's platform (stored and sent as `android`, `ios`, `web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Android (FCM).
    Android,
    /// iOS (FCM relays to APNs).
    Ios,
    /// A browser (web push through FCM).
    Web,
}

impl Platform {
    /// The platform named `name` (`android`, `ios` or `web`).
    pub fn parse(name: &str) -> Option<Platform> {
        match name {
            "android" => Some(Platform::Android),
            "ios" => Some(Platform::Ios),
            "web" => Some(Platform::Web),
            _ => None,
        }
    }
}

/// The body of `POST /api/notifications/email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The address (`name@example.org`).
    #[schema(example = "johndoe@example.com")]
    pub to: String,
    /// The subject line (1 to `notifications.max_subject_chars` characters).
    #[schema(example = "Appointment Reminder")]
    pub subject: String,
    /// The text (1 to `notifications.max_body_chars` characters).
    pub body: String,
}

/// The body of `POST /api/notifications/sms`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsRequest {
    /// The number, E.164 (`+` and 7 to 15 digits).
    #[schema(example = "+1234567890")]
    pub to: String,
    /// The text (1 to `notifications.max_sms_chars` characters).
    pub message: String,
}

/// The body of `POST /api/notifications/push`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// A device token.
    pub to: String,
    /// The title (1 to `notifications.max_subject_chars` characters).
    pub title: String,
    /// The text (1 to `notifications.max_body_chars` characters).
    pub message: String,
}

/// What a send answers (202): the notification is queued.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// `Queued` (a channel worker sends it), or `Sent` once it is out.
    pub status: &'static str,
    /// Its delivery report is `GET /api/notifications/{notificationId}`.
    pub notification_id: String,
}

/// The body of `POST /api/devices`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// 1 to 4096 printable characters, without spaces or `/`.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[!-.0-~]+$")]
    pub token: String,
    /// `android`, `ios` or `web`.
    #[schema(pattern = "^(android|ios|web)$")]
    pub platform: String,
}

/// A registered push device.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// The device token.
    pub token: String,
    /// `android`, `ios` or `web`.
    #[schema(value_type = String)]
    pub platform: Platform,
    /// When it was registered (or last re-registered).
    #[schema(value_type = String)]
    pub registered_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(s: &str, e: &str) -> QuietHours {
        QuietHours {
            start: ClockTime::parse(s).unwrap(),
            end: ClockTime::parse(e).unwrap(),
        }
    }

    #[test]
    fn quiet_hours_across_midnight() {
        let q = quiet("22:00", "07:00");
        assert!(q.contains(23 * 60));
        assert!(q.contains(0));
        assert!(!q.contains(7 * 60));
        assert!(!q.contains(12 * 60));
        assert_eq!(q.minutes_left(23 * 60), 8 * 60);
        assert_eq!(q.minutes_left(6 * 60 + 30), 30);
        assert_eq!(q.minutes_left(12 * 60), 0);
    }

    #[test]
    fn quiet_hours_within_a_day() {
        let q = quiet("12:00", "13:30");
        assert!(q.contains(12 * 60 + 10));
        assert!(!q.contains(13 * 60 + 30));
        assert_eq!(q.minutes_left(13 * 60), 30);
    }

    #[test]
    fn defaults_leave_marketing_off() {
        let p = NotificationPreferences::default();
        assert!(p.channels.allows(NotificationChannel::Sms));
        assert!(!p.categories.allows(NotificationCategory::Marketing));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["channels"]["in_app"], true);
        assert_eq!(json["categories"]["appointment_reminder"], true);
    }
}
