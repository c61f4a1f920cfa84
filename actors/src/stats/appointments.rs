//! The appointment figures of one doctor's clinic day, under
//! `a/<yyyy-mm-dd>/<provider>`: the day of the appointment's start; and the
//! visits of each patient a doctor saw that day, under
//! `p/<provider>/<yyyy-mm-dd>/<patient>` (doctor first: one doctor's
//! patients over a range are one key range).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::schedule::{AppointmentStatus, HistoryAction};

use super::{Counted, Figures};
use crate::schedule::AppointmentRecord;

/// Appointments on the day, whatever became of them.
pub const BOOKED: u16 = 0;
/// Completed visits.
pub const COMPLETED: u16 = 1;
/// Cancelled, however early.
pub const CANCELLED: u16 = 2;
/// Cancelled less than [`LATE`] before the start (also in [`CANCELLED`]).
pub const LATE_CANCELLED: u16 = 3;
/// The patient did not come.
pub const NO_SHOWS: u16 = 4;
/// Minutes of the appointments not cancelled (no-shows included: the time
/// was taken).
pub const BOOKED_MINUTES: u16 = 5;
/// Moves, counted on the day the appointment is now on.
pub const RESCHEDULES: u16 = 6;
/// Appointments booked from a waitlist offer.
pub const WAITLIST_FILLS: u16 = 7;
/// `HOUR_MINUTES + h`: of [`BOOKED_MINUTES`], those in the clinic's hour
/// `h` (0-23) of the day (utilisation by weekday and hour).
pub const HOUR_MINUTES: u16 = 100;
/// `LEAD_HOURS + h`: appointments booked `h` whole hours before their
/// start (a histogram, for the median lead time).
pub const LEAD_HOURS: u16 = 1_000;
/// The longest lead the histogram tells apart, in hours (longer ones count here).
pub const MAX_LEAD_HOURS: u16 = 60_000;

/// A cancellation later than this before the start is late.
pub const LATE: SignedDuration = SignedDuration::from_hours(24);

/// What the figures mean; raised whenever [`figures`] or another kind's
/// figures change or a kind is added (2: medical records; 3: billing; 4:
/// notifications; 5: booked minutes by hour, patients seen), so that a
/// store counted by the older rules is recounted at start.
pub const RULES: u64 = 5;

/// In a `p/` row: completed visits.
pub const VISITS: u16 = 0;

/// The row key of `provider`'s figures on clinic day `day`.
pub fn key(day: Date, provider: &str) -> String {
    format!("a/{day}/{provider}")
}

/// The row key of `patient`'s visits to `provider` on clinic day `day`.
pub fn patient_key(provider: &str, day: Date, patient: &str) -> String {
    format!("p/{provider}/{day}/{patient}")
}

/// The clinic day and figures of one appointment.
pub fn figures(record: &AppointmentRecord, zone: &TimeZone) -> (String, Figures) {
    let day = record.slot.start.to_zoned(zone.clone()).date();
    let mut f = Figures::new();
    f.insert(BOOKED, 1);
    match record.status {
        AppointmentStatus::Completed => {
            f.insert(COMPLETED, 1);
        }
        AppointmentStatus::NoShow => {
            f.insert(NO_SHOWS, 1);
        }
        AppointmentStatus::Cancelled => {
            f.insert(CANCELLED, 1);
            if cancelled_at(record).is_some_and(|at| record.slot.start.duration_since(at) < LATE) {
                f.insert(LATE_CANCELLED, 1);
            }
        }
        AppointmentStatus::Scheduled | AppointmentStatus::CheckedIn => {}
    }
    if record.status != AppointmentStatus::Cancelled {
        let minutes = record.slot.end.duration_since(record.slot.start).as_mins();
        f.insert(BOOKED_MINUTES, minutes);
        for (hour, minutes) in by_hour(record.slot.start, record.slot.end, zone) {
            *f.entry(HOUR_MINUTES + hour).or_default() += minutes;
        }
    }
    let moves = record
        .history
        .iter()
        .filter(|h| h.action == HistoryAction::Rescheduled)
        .count() as i64
        + i64::from(record.reschedules_dropped);
    f.insert(RESCHEDULES, moves);
    if record.from_waitlist {
        f.insert(WAITLIST_FILLS, 1);
    }
    // The booking entry is kept first for good; a record without one (from
    // an early release) counts as booked at its start, whatever is pushed later.
    let booked_at = record
        .history
        .first()
        .filter(|h| h.action == HistoryAction::Booked)
        .map_or(record.slot.start, |h| h.at);
    f.insert(LEAD_HOURS + lead_hours(booked_at, record.slot.start), 1);
    f.retain(|_, v| *v != 0);
    (key(day, record.provider_id.as_str()), f)
}

/// The minutes from `start` to `end` in each of the clinic's hours of the
/// day (0-23), in `zone`; a visit past midnight counts its later minutes
/// in the early hours of its (first) day's row.
pub fn by_hour(start: Timestamp, end: Timestamp, zone: &TimeZone) -> Vec<(u16, i64)> {
    let mut out: Vec<(u16, i64)> = Vec::new();
    let mut at = start;
    while at < end {
        let local = at.to_zoned(zone.clone());
        let into_hour = i64::from(local.minute()) * 60 + i64::from(local.second());
        let step = (3_600 - into_hour)
            .min(end.duration_since(at).as_secs())
            .max(1);
        let hour = u16::try_from(local.hour()).unwrap_or(0);
        match out.last_mut() {
            Some((h, minutes)) if *h == hour => *minutes += step,
            _ => out.push((hour, step)),
        }
        at = at
            .saturating_add(SignedDuration::from_secs(step))
            .unwrap_or(end);
    }
    // Seconds to whole minutes, rounding each hour down.
    out.into_iter()
        .map(|(hour, secs)| (hour, secs / 60))
        .filter(|(_, minutes)| *minutes > 0)
        .collect()
}

/// Whole hours from booking to start, within the histogram's range.
fn lead_hours(booked_at: Timestamp, start: Timestamp) -> u16 {
    let hours = start.duration_since(booked_at).as_hours().max(0);
    u16::try_from(hours).map_or(MAX_LEAD_HOURS, |h| h.min(MAX_LEAD_HOURS))
}

/// When the appointment was cancelled: its last cancellation entry.
fn cancelled_at(record: &AppointmentRecord) -> Option<Timestamp> {
    record
        .history
        .iter()
        .rev()
        .find(|h| h.action == HistoryAction::Status(AppointmentStatus::Cancelled))
        .map(|h| h.at)
}

/// An appointment counts on the clinic day of its start ([`figures`]), and
/// once completed in its patient's visits that day.
impl Counted for AppointmentRecord {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        let mut rows = vec![figures(self, zone)];
        if self.status == AppointmentStatus::Completed {
            let day = self.slot.start.to_zoned(zone.clone()).date();
            let key = patient_key(self.provider_id.as_str(), day, self.patient_id.as_str());
            rows.push((key, [(VISITS, 1)].into()));
        }
        rows
    }
}
