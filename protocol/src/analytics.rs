//! Analytics reports: the bodies of `GET /api/analytics/...`.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::money::Money;

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

/// The days a report covers, how they are grouped, and whose days they are:
/// the head of every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportPeriod {
    /// First day.
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    /// Last day.
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// The grouping.
    pub group_by: GroupBy,
    /// The clinic's zone, whose days (and, in a doctor's report, hours) these are.
    pub time_zone: String,
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
    /// The days it covers.
    #[serde(flatten)]
    pub period: ReportPeriod,
    /// Buckets in order, each with one row per doctor who had hours or appointments.
    pub rows: Vec<AppointmentsRow>,
    /// All rows together.
    pub totals: AppointmentFigures,
}

/// The query of the whole clinic's reports over clinic days
/// (`GET /api/analytics/records`, `GET /api/analytics/billing`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
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
    /// The days it covers.
    #[serde(flatten)]
    pub period: ReportPeriod,
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

/// The clinic's billing in one bucket (or the whole range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingFigures {
    /// Charged on the bills written on these days (issued, part-paid or
    /// paid; drafts and void bills charge nothing).
    pub charges: Money,
    /// Those bills.
    pub bills: u64,
    /// Patients' payments that succeeded on these days.
    pub collected_from_patients: Money,
    /// Those payments.
    pub payments: u64,
    /// Insurers' payments recorded on these days.
    pub collected_from_insurers: Money,
    /// Refunds recorded on these days.
    pub refunds: Money,
    /// (collected from patients + from insurers − refunds) ÷ charges, to 4
    /// places; null with nothing charged.
    pub net_collection_rate: Option<f64>,
    /// Claims the insurer first answered on these days.
    pub claims_answered: u64,
    /// Of those, denied at the first answer.
    pub claims_denied: u64,
    /// Of those, approved in full at the first answer.
    pub claims_clean: u64,
    /// denied ÷ answered, to 4 places; null with no answers.
    pub denial_rate: Option<f64>,
    /// clean ÷ answered, to 4 places; null with no answers.
    pub clean_claim_rate: Option<f64>,
}

/// One row of the billing report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingRow {
    /// The bucket: `yyyy-mm-dd` (a day, or a week's Monday) or `yyyy-mm`.
    pub period: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: BillingFigures,
}

/// What is still owed on bills of one age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgingBucket {
    /// The bills' age in clinic days: `0-30`, `31-60`, `61-90`, `91-120` or `over-120`.
    pub days: String,
    /// Owed by patients.
    pub patients: Money,
    /// Owed by insurers (what a claim with them expects, up to what the bill owes).
    pub insurers: Money,
    /// Both.
    pub total: Money,
}

/// Accounts receivable now: what open bills still owe, by age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receivable {
    /// The clinic day the ages are counted to (today).
    #[schema(value_type = String, format = Date)]
    pub as_of: Date,
    /// By age, youngest first.
    pub aging: Vec<AgingBucket>,
    /// Owed by patients.
    pub patients: Money,
    /// Owed by insurers.
    pub insurers: Money,
    /// Both.
    pub total: Money,
    /// Days in A/R: the total ÷ the average day's charges over the 90
    /// clinic days to `asOf` (or the days since the first charge, if
    /// fewer), to 1 place; null with nothing charged in them.
    pub days_in_ar: Option<f64>,
}

/// `GET /api/analytics/billing`: charges, collections, refunds and claim
/// answers per bucket, and accounts receivable now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingReport {
    /// The days it covers.
    #[serde(flatten)]
    pub period: ReportPeriod,
    /// Every bucket of the range, in order.
    pub rows: Vec<BillingRow>,
    /// All rows together.
    pub totals: BillingFigures,
    /// Accounts receivable now, whatever the range.
    pub receivable: Receivable,
}

/// One doctor's activity in one bucket (or the whole range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderFigures {
    /// Patients with at least one completed visit (each counted once).
    pub patients_seen: u64,
    /// Completed visits.
    pub visits: u64,
    /// The appointment figures, as in the appointments report.
    #[serde(flatten)]
    pub appointments: AppointmentFigures,
}

/// One bucket of a doctor's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRow {
    /// The bucket: `yyyy-mm-dd` (a day, or a week's Monday) or `yyyy-mm`.
    pub period: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: ProviderFigures,
}

/// How much of one weekday's clinic hour a doctor's appointments filled,
/// over the report's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HourUse {
    /// The clinic's weekday.
    pub weekday: crate::schedule::Weekday,
    /// The clinic's hour of the day, 0-23.
    pub hour: u8,
    /// Minutes of appointments not cancelled in that hour.
    pub booked_minutes: u64,
    /// Minutes of the doctor's hours (whole slots) in that hour.
    pub available_minutes: u64,
    /// booked ÷ available, to 4 places; null without hours.
    pub utilisation: Option<f64>,
}

/// `GET /api/analytics/providers/{providerId}`: one doctor's activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderReport {
    /// The doctor.
    pub provider_id: String,
    /// The days it covers.
    #[serde(flatten)]
    pub period: ReportPeriod,
    /// Buckets with hours or appointments, in order.
    pub rows: Vec<ProviderRow>,
    /// The whole range (patients seen counted once across it).
    pub totals: ProviderFigures,
    /// By weekday (Monday first) and hour, each hour with hours or appointments.
    pub utilisation: Vec<HourUse>,
}

/// Notifications of one channel and category in one bucket (or the whole range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationFigures {
    /// Notifications made.
    pub notifications: u64,
    /// Handed to the provider, a live device or the outbox folder.
    pub sent: u64,
    /// Known to have arrived.
    pub delivered: u64,
    /// Will not arrive (undeliverable or expired).
    pub failed: u64,
    /// Of those, reminders that fell due while the server was down.
    pub expired: u64,
    /// Sends that failed and were tried again (a notification that then
    /// gave up counts in `failed` too).
    pub failed_attempts: u64,
    /// In-app notifications a patient's device acknowledged.
    pub acknowledged: u64,
    /// delivered ÷ notifications, to 4 places; null with none.
    pub delivery_rate: Option<f64>,
    /// acknowledged ÷ delivered, to 4 places, in-app rows only (engagement); null otherwise.
    pub acknowledgement_rate: Option<f64>,
}

/// One row of the notifications report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsRow {
    /// The bucket: `yyyy-mm-dd` (a day, or a week's Monday) or `yyyy-mm`.
    pub period: String,
    /// `email`, `sms`, `push` or `in_app`.
    pub channel: String,
    /// What they were about (`appointment_reminder`, …), `direct` for direct sends.
    pub category: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: NotificationFigures,
}

/// `GET /api/analytics/notifications`: notifications by the clinic day they
/// were made, per channel and category, by what became of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsReport {
    /// The days it covers.
    #[serde(flatten)]
    pub period: ReportPeriod,
    /// Buckets in order, each with one row per channel and category that had notifications.
    pub rows: Vec<NotificationsRow>,
    /// All rows together.
    pub totals: NotificationFigures,
}
