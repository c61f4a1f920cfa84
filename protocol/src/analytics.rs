//! Analytics reports: the bodies of `GET /api/analytics/...`.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// How a report's days are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One bucket per clinic day.
    #[default]
    Day,
    /// ISO weeks, Monday first; a bucket is named by its Monday.
    Week,
    /// Calendar months; a bucket is named `yyyy-mm`.
    Month,
}

/// The query of `GET /api/analytics/appointments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AppointmentsQuery {
    /// First clinic day, inclusive (`yyyy-mm-dd`); required.
    #[param(value_type = String, format = Date)]
    pub from: Option<String>,
    /// Last clinic day, inclusive; required.
    #[param(value_type = String, format = Date)]
    pub to: Option<String>,
    /// Only this doctor.
    pub provider_id: Option<String>,
    /// `day` (default), `week` or `month`.
    pub group_by: Option<String>,
}

/// One doctor's appointment figures in one bucket (or the whole range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentFigures {
    /// Appointments on these days, whatever became of them.
    pub booked: u64,
    /// Completed visits.
    pub completed: u64,
    /// Cancellations, however early.
    pub cancelled: u64,
    /// Cancellations less than 24 hours before the start (also in `cancelled`).
    pub late_cancellations: u64,
    /// Patients who did not come.
    pub no_shows: u64,
    /// (no-shows + late cancellations) ÷ booked, to 4 places; null with nothing booked.
    pub no_show_rate: Option<f64>,
    /// Minutes of appointments not cancelled.
    pub booked_minutes: u64,
    /// Minutes of the doctor's hours on these days (their hours as they are now).
    pub available_minutes: u64,
    /// booked minutes ÷ available minutes, to 4 places; null without hours.
    pub fill_rate: Option<f64>,
    /// Median whole hours from booking to start (the lower middle of an even count).
    pub median_lead_hours: Option<u64>,
    /// Moves of these appointments.
    pub reschedules: u64,
    /// Appointments booked from a waitlist offer.
    pub waitlist_fills: u64,
}

/// One row of the appointments report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentsRow {
    /// The bucket: `yyyy-mm-dd` (a day, or a week's Monday) or `yyyy-mm`.
    pub period: String,
    /// The doctor.
    pub provider_id: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: AppointmentFigures,
}

/// `GET /api/analytics/appointments`: per bucket and per doctor, with the
/// whole range's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentsReport {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    /// Last day.
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// The grouping.
    pub group_by: GroupBy,
    /// The clinic's zone, whose days these are.
    pub time_zone: String,
    /// Buckets in order, each with one row per doctor who had hours or appointments.
    pub rows: Vec<AppointmentsRow>,
    /// All rows together.
    pub totals: AppointmentFigures,
}

/// The query of `GET /api/analytics/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// First clinic day, inclusive (`yyyy-mm-dd`); required.
    #[param(value_type = String, format = Date)]
    pub from: Option<String>,
    /// Last clinic day, inclusive; required.
    #[param(value_type = String, format = Date)]
    pub to: Option<String>,
    /// `day` (default), `week` or `month`.
    pub group_by: Option<String>,
}

/// Medical records written in one bucket (or the whole range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordFigures {
    /// Records created.
    pub created: u64,
    /// Changes to records.
    pub updated: u64,
    /// Records deleted.
    pub deleted: u64,
}

/// One row of the records report: one author in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsRow {
    /// The bucket: `yyyy-mm-dd` (a day, or a week's Monday) or `yyyy-mm`.
    pub period: String,
    /// Who wrote them.
    pub author_id: String,
    /// The author's schedule, when they are a doctor with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub figures: RecordFigures,
}

/// `GET /api/analytics/records`: records written per bucket and author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordsReport {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    /// Last day.
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// The grouping.
    pub group_by: GroupBy,
    /// The clinic's zone, whose days these are.
    pub time_zone: String,
    /// Buckets in order, each with one row per author who wrote in it.
    pub rows: Vec<RecordsRow>,
    /// All rows together.
    pub totals: RecordFigures,
}

/// Today's headline figures of the whole clinic (the `analytics_today`
/// event of the `analytics` channel, and its snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    /// The clinic's day they are of.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub day: Date,
    /// Appointments on the day, whatever became of them.
    pub booked: u64,
    /// Completed visits.
    pub completed: u64,
    /// Cancellations.
    pub cancelled: u64,
    /// Cancellations less than 24 hours before the start.
    pub late_cancellations: u64,
    /// Patients who did not come.
    pub no_shows: u64,
    /// Medical-record versions written (created, changed, deleted).
    pub records_written: u64,
}
