//! Notification delivery reports: the body of
//! `GET /api/notifications/{notificationId}`.

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::notification::{DeliveryStatus, NotificationCategory, NotificationChannel};

/// One step of a notification's delivery.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The status it reached.
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    /// When.
    #[schema(value_type = String)]
    pub at: Timestamp,
    /// The provider's id for the message, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Why, for failures and expiries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A notification's delivery report (`GET /api/notifications/{notificationId}`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The notification.
    pub notification_id: String,
    /// Its channel.
    #[schema(value_type = String)]
    pub channel: NotificationChannel,
    /// Its category (reminders and notices).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub category: Option<NotificationCategory>,
    /// Masked (`j***@example.com`, `+******7890`) for all but admins.
    pub recipient: String,
    /// Its current status.
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    /// How many sends were tried.
    pub attempts: u32,
    /// The provider's id for the message, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// The appointment it is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<String>,
    /// When it was due (reminders).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub due_at: Option<Timestamp>,
    /// The notification this one replaces on another channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<String>,
    /// Every step, oldest first.
    pub history: Vec<StatusView>,
}
