//! Calendar feeds: the private iCalendar URL a doctor or patient subscribes
//! to from Google Calendar, Apple Calendar or Outlook.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/calendar/feeds`: creates your feed, replacing any earlier one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFeed {
    /// Doctors only: name the patients in the feed's events (default
    /// false: events say only "Appointment").
    #[serde(default)]
    pub show_patient_names: bool,
}

/// Your feed, as created: the URL is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedCreated {
    /// The address calendars subscribe to; it holds the feed's secret.
    pub url: String,
    /// Whether the events name patients.
    pub show_patient_names: bool,
    /// When it was created.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// `GET /api/calendar/feeds`: whether you have a feed (never its URL).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedView {
    /// Whether the events name patients.
    pub show_patient_names: bool,
    /// When it was created.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}
