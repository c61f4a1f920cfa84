//! The appointment figures of one doctor's clinic day, under
//! `a/<yyyy-mm-dd>/<provider>`: the day of the appointment's start.

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
/// `LEAD_HOURS + h`: appointments booked `h` whole hours before their
/// start (a histogram, for the median lead time).
pub const LEAD_HOURS: u16 = 1_000;
/// The longest lead the histogram tells apart, in hours (longer ones count here).
pub const MAX_LEAD_HOURS: u16 = 60_000;

/// A cancellation later than this before the start is late.
pub const LATE: SignedDuration = SignedDuration::from_hours(24);

/// What the figures mean; raised whenever [`figures`] or another kind's
/// figures change or a kind is added (2: medical records; 3: billing; 4:
/// notifications), so that a store counted by the older rules is recounted
/// at start.
pub const RULES: u64 = 4;

/// The row key of `provider`'s figures on clinic day `day`.
pub fn key(day: Date, provider: &str) -> String {
    format!("a/{day}/{provider}")
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

/// An appointment counts on the clinic day of its start ([`figures`]).
impl Counted for AppointmentRecord {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        vec![figures(self, zone)]
    }
}
