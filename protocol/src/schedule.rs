//! Schedules on the wire: availability, slots, appointments, and the command
//! bodies that REST, WebSocket (and later NATS) share.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use crate::ids::{InvalidValue, PatientId, ProviderId, UserId};

crate::ids::token_id!(
    /// An appointment's id.
    AppointmentId,
    "appointmentId"
);

/// A wall-clock time of day, `HH:MM` (24-hour), as minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    /// Parses `HH:MM`, 00:00 to 24:00 (24:00 only as the end of a range).
    ///
    /// # Errors
    /// [`InvalidValue`] when it is not `HH:MM` or out of range.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue(format!("{s:?} is not a time of day HH:MM"));
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }

    /// From minutes after midnight (at most 1440).
    pub fn from_minutes(minutes: u16) -> Self {
        Self(minutes.min(24 * 60))
    }

    /// Minutes after midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// Hour and minute.
    pub fn hm(self) -> (i8, i8) {
        ((self.0 / 60) as i8, (self.0 % 60) as i8)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = Self::parse(&s).map_err(serde::de::Error::custom)?;
        if t.0 == 24 * 60 {
            return Err(serde::de::Error::custom(
                "24:00 is only allowed as the end of a range",
            ));
        }
        Ok(t)
    }
}

impl JsonSchema for ClockTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClockTime".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"})
    }
}

/// A range of wall-clock time, `"09:00-12:00"`; start before end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeRange {
    /// Inclusive start.
    pub start: ClockTime,
    /// Exclusive end (may be 24:00).
    pub end: ClockTime,
}

/// In the OpenAPI document a range is the string it is written as.
impl utoipa::PartialSchema for TimeRange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                "^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
            ))
            .examples(["09:00-12:00"])
            .into()
    }
}

impl utoipa::ToSchema for TimeRange {}

impl TimeRange {
    /// Parses `HH:MM-HH:MM`.
    ///
    /// # Errors
    /// [`InvalidValue`] when malformed or when the end is not after the start.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| InvalidValue(format!("{s:?} is not a range HH:MM-HH:MM")))?;
        let (start, end) = (ClockTime::parse(a.trim())?, ClockTime::parse(b.trim())?);
        if start.0 == 24 * 60 {
            return Err(InvalidValue(format!("{s:?} starts at 24:00")));
        }
        if end <= start {
            return Err(InvalidValue(format!("{s:?} ends before it starts")));
        }
        Ok(Self { start, end })
    }

    /// Whether two ranges share any minute.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TimeRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeRange".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$"})
    }
}

/// A day of the week, spelled out in English (`"Monday"`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    ToSchema,
)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

impl From<jiff::civil::Weekday> for Weekday {
    fn from(w: jiff::civil::Weekday) -> Self {
        use jiff::civil::Weekday as W;
        match w {
            W::Monday => Weekday::Monday,
            W::Tuesday => Weekday::Tuesday,
            W::Wednesday => Weekday::Wednesday,
            W::Thursday => Weekday::Thursday,
            W::Friday => Weekday::Friday,
            W::Saturday => Weekday::Saturday,
            W::Sunday => Weekday::Sunday,
        }
    }
}

/// Weekly working hours for one day (seed `availability` item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayAvailability {
    /// The day.
    pub day: Weekday,
    /// Its ranges, e.g. `["09:00-12:00", "14:00-17:00"]`.
    pub slots: Vec<TimeRange>,
}

/// A date whose hours differ from the weekly pattern: a day off (`slots`
/// empty) or other or extra hours (the ranges replace that day's pattern).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateException {
    /// The date, in the provider's time zone.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    /// The hours that day; empty for a day off.
    #[serde(default)]
    pub slots: Vec<TimeRange>,
}

/// An appointment's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AppointmentStatus {
    /// Booked, ahead.
    Scheduled,
    /// The patient arrived.
    CheckedIn,
    /// Done.
    Completed,
    /// Cancelled by the patient, the doctor or the clinic.
    Cancelled,
    /// The patient did not come.
    NoShow,
}

impl AppointmentStatus {
    /// Whether the appointment still holds its slot.
    pub fn holds_slot(self) -> bool {
        matches!(
            self,
            AppointmentStatus::Scheduled | AppointmentStatus::CheckedIn
        )
    }

    /// Whether moving to `next` is allowed.
    pub fn may_become(self, next: AppointmentStatus) -> bool {
        use AppointmentStatus as S;
        matches!(
            (self, next),
            (S::Scheduled, S::CheckedIn | S::Cancelled | S::NoShow)
                | (S::CheckedIn, S::Completed | S::Cancelled)
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Scheduled => "Scheduled",
            AppointmentStatus::CheckedIn => "CheckedIn",
            AppointmentStatus::Completed => "Completed",
            AppointmentStatus::Cancelled => "Cancelled",
            AppointmentStatus::NoShow => "NoShow",
        }
    }
}

/// The status a client may ask for in a booking or an update; `Rescheduled`
/// (seed) means "move to the date and time given".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestedStatus {
    /// Keep or set `Scheduled`.
    Scheduled,
    /// Move the appointment (to `appointmentDate` / `timeSlot`).
    Rescheduled,
    /// Check the patient in.
    CheckedIn,
    /// Mark it done.
    Completed,
    /// Cancel it.
    Cancelled,
    /// Mark the patient absent.
    NoShow,
}

/// Book an appointment (seed `POST /api/appointments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookAppointment {
    /// The patient.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub patient_id: PatientId,
    /// The doctor.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub provider_id: ProviderId,
    /// The date in the doctor's time zone.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub appointment_date: Date,
    /// The slot's start in the doctor's time zone, `HH:MM`.
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time_slot: ClockTime,
    /// Only `Scheduled` is accepted (seed field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^Scheduled$")]
    pub status: Option<RequestedStatus>,
    /// A hold of this patient on this slot (`POST /api/providers/{id}/holds`):
    /// the booking takes the slot the hold keeps from everyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^hld_[A-Za-z0-9_-]{1,60}$")]
    pub hold_id: Option<String>,
}

/// Reschedule or change the status of an appointment (seed `PUT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAppointment {
    /// New date (with or without `timeSlot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    #[schema(value_type = Option<String>, format = Date)]
    pub appointment_date: Option<Date>,
    /// New start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time_slot: Option<ClockTime>,
    /// New status, or `Rescheduled` to move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>,
        pattern = "^(Scheduled|Rescheduled|CheckedIn|Completed|Cancelled|NoShow)$")]
    pub status: Option<RequestedStatus>,
}

/// A slot's place in time, as boards show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotTime {
    /// Date in the doctor's time zone.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    /// Start in the doctor's time zone.
    #[schema(value_type = String, example = "09:30")]
    pub time_slot: ClockTime,
    /// Start instant (UTC).
    #[schemars(with = "String")]
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// End instant (UTC).
    #[schemars(with = "String")]
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

/// In the OpenAPI document an action is one of its stored names.
impl utoipa::PartialSchema for HistoryAction {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some([
                "Booked",
                "Rescheduled",
                "NeedsReschedule",
                "RescheduleCleared",
                "Scheduled",
                "CheckedIn",
                "Completed",
                "Cancelled",
                "NoShow",
            ]))
            .into()
    }
}

impl utoipa::ToSchema for HistoryAction {}

/// What happened to an appointment, as its history records it; stored and
/// sent as `Booked`, `Rescheduled`, `NeedsReschedule`, `RescheduleCleared`,
/// or the status it took (`Cancelled`, `CheckedIn`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryAction {
    /// It was booked.
    Booked,
    /// It moved to another time (`from` says where it was).
    Rescheduled,
    /// The doctor's hours changed so that it no longer fits them.
    NeedsReschedule,
    /// The doctor's hours changed back so that it fits again.
    RescheduleCleared,
    /// It took this status.
    #[serde(untagged)]
    Status(AppointmentStatus),
}

/// One change in an appointment's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who (absent for the system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub by: Option<UserId>,
    /// What happened.
    pub action: HistoryAction,
    /// For a reschedule: where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<SlotTime>,
}

/// An appointment as every surface shows it, with its history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentView {
    /// The appointment.
    #[schema(value_type = String)]
    pub appointment_id: AppointmentId,
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The doctor.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// In the doctor's time zone.
    #[schema(value_type = String)]
    pub appointment_date: jiff::civil::Date,
    /// In the doctor's time zone.
    #[schema(value_type = String)]
    pub time_slot: ClockTime,
    /// Its status.
    #[schema(value_type = String)]
    pub status: AppointmentStatus,
    /// Start instant, UTC.
    #[schema(value_type = String)]
    pub start_utc: jiff::Timestamp,
    /// End instant, UTC.
    #[schema(value_type = String)]
    pub end_utc: jiff::Timestamp,
    /// The doctor's hours changed so that it no longer fits them; it keeps
    /// its time until the patient moves it.
    pub needs_reschedule: bool,
    /// The doctor's IANA time zone (absent if the provider was deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Every change, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// The query of `GET /api/appointments`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this doctor's appointments.
    #[param(value_type = Option<String>)]
    pub provider_id: Option<ProviderId>,
    /// Only this patient's appointments.
    #[param(value_type = Option<String>)]
    pub patient_id: Option<PatientId>,
    /// First date (doctor's zone), inclusive.
    #[param(value_type = Option<String>)]
    pub from: Option<Date>,
    /// Last date, inclusive.
    #[param(value_type = Option<String>)]
    pub to: Option<Date>,
    /// Only appointments in this status.
    #[param(value_type = Option<String>)]
    pub status: Option<AppointmentStatus>,
    /// Only appointments the doctor's changed hours no longer fit (`true`),
    /// or only the others (`false`).
    pub needs_reschedule: Option<bool>,
}

/// What `GET /api/appointments` answers.
#[derive(Serialize, ToSchema)]
pub struct AppointmentList {
    /// The appointments, by start time.
    pub appointments: Vec<AppointmentView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_and_ranges_parse_strictly() {
        assert_eq!(ClockTime::parse("09:30").unwrap().minutes(), 570);
        for bad in ["9:30", "24:01", "12:60", "ab:cd", "1200"] {
            assert!(ClockTime::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TimeRange::parse("09:00-12:00").unwrap().to_string(),
            "09:00-12:00"
        );
        assert!(TimeRange::parse("22:00-24:00").is_ok());
        for bad in ["12:00-09:00", "09:00-09:00", "09:00", "24:00-24:00"] {
            assert!(TimeRange::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ClockTime>("\"24:00\"").is_err());
    }

    #[test]
    fn ranges_know_overlap() {
        let a = TimeRange::parse("09:00-12:00").unwrap();
        assert!(a.overlaps(&TimeRange::parse("11:30-13:00").unwrap()));
        assert!(!a.overlaps(&TimeRange::parse("12:00-13:00").unwrap()));
    }

    #[test]
    fn status_transitions() {
        use AppointmentStatus as S;
        assert!(S::Scheduled.may_become(S::CheckedIn));
        assert!(S::CheckedIn.may_become(S::Completed));
        assert!(!S::Completed.may_become(S::Scheduled));
        assert!(!S::Cancelled.may_become(S::CheckedIn));
        assert!(!S::Scheduled.may_become(S::Completed));
    }

    #[test]
    fn seed_bodies_parse() {
        let b: BookAppointment = serde_json::from_str(
            r#"{"patientId":"12345","providerId":"prov001","appointmentDate":"2024-08-01","timeSlot":"10:00","status":"Scheduled"}"#,
        )
        .unwrap();
        assert_eq!(b.time_slot.to_string(), "10:00");
        let u: UpdateAppointment = serde_json::from_str(
            r#"{"appointmentDate":"2024-08-02","timeSlot":"11:00","status":"Rescheduled"}"#,
        )
        .unwrap();
        assert_eq!(u.status, Some(RequestedStatus::Rescheduled));
        let d: DayAvailability =
            serde_json::from_str(r#"{"day":"Monday","slots":["09:00-12:00","14:00-17:00"]}"#)
                .unwrap();
        assert_eq!(d.slots.len(), 2);
    }

    #[test]
    fn the_documented_history_actions_are_exactly_the_ones_that_read() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(HistoryAction::schema()).unwrap();
        let names = schema["enum"].as_array().unwrap();
        for name in names {
            let action: HistoryAction = serde_json::from_value(name.clone()).unwrap();
            assert_eq!(&serde_json::to_value(action).unwrap(), name);
        }
        assert_eq!(names.len(), 4 + 5, "four events and five statuses");
    }
}
