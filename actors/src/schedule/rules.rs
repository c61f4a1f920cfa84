//! The pure rules of a schedule: which slots a day has, in the doctor's time
//! zone, and what a valid set of working hours looks like.
//!
//! Slots are generated on the wall clock of the doctor's zone. On a DST change
//! day a wall-clock time that does not exist (the spring gap) has no slot, and
//! one that happens twice (the autumn fold) has one slot, at its first
//! occurrence. The library resolves both; nothing here does time-zone math by hand.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::schedule::{ClockTime, DateException, DayAvailability, SlotTime, TimeRange};

/// Granularity of every time on a schedule: slot lengths and range
/// boundaries are multiples of it, and patient overlap is checked per cell.
pub const CELL_MINUTES: u16 = 5;

/// Allowed slot lengths, in minutes.
pub const SLOT_MINUTES: std::ops::RangeInclusive<u16> = 5..=240;

/// A validation failure naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's path, e.g. `availability[1].slots`.
    pub field: String,
    /// Why.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a doctor's hours: known zone, slot length, one entry per day, no
/// overlapping ranges, every boundary on the 5-minute grid.
///
/// # Errors
/// The first problem found, naming its field.
pub fn validate_hours(
    time_zone: &str,
    slot_minutes: u16,
    availability: &[DayAvailability],
    exceptions: &[DateException],
) -> Result<TimeZone, Invalid> {
    let tz = TimeZone::get(time_zone)
        .map_err(|_| invalid("timeZone", format!("unknown IANA time zone {time_zone:?}")))?;
    if !SLOT_MINUTES.contains(&slot_minutes) || slot_minutes % CELL_MINUTES != 0 {
        return Err(invalid(
            "slotMinutes",
            format!(
                "must be a multiple of {CELL_MINUTES} from {} to {}",
                SLOT_MINUTES.start(),
                SLOT_MINUTES.end()
            ),
        ));
    }
    let mut seen = Vec::new();
    for (i, day) in availability.iter().enumerate() {
        if seen.contains(&day.day) {
            return Err(invalid(
                format!("availability[{i}].day"),
                format!("{:?} is listed twice", day.day),
            ));
        }
        seen.push(day.day);
        check_ranges(&format!("availability[{i}].slots"), &day.slots)?;
    }
    let mut dates = Vec::new();
    for (i, exception) in exceptions.iter().enumerate() {
        if dates.contains(&exception.date) {
            return Err(invalid(
                format!("exceptions[{i}].date"),
                format!("{} is listed twice", exception.date),
            ));
        }
        dates.push(exception.date);
        check_ranges(&format!("exceptions[{i}].slots"), &exception.slots)?;
    }
    Ok(tz)
}

fn check_ranges(field: &str, ranges: &[TimeRange]) -> Result<(), Invalid> {
    for (i, range) in ranges.iter().enumerate() {
        if range.start.minutes() % CELL_MINUTES != 0 || range.end.minutes() % CELL_MINUTES != 0 {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{range} must start and end on a multiple of {CELL_MINUTES} minutes"),
            ));
        }
        if let Some(other) = ranges[..i].iter().find(|r| r.overlaps(range)) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{range} overlaps {other}"),
            ));
        }
    }
    Ok(())
}

/// The working ranges of one date: its exception if it has one, else the
/// weekly pattern for its weekday.
pub fn ranges_for<'a>(
    date: Date,
    availability: &'a [DayAvailability],
    exceptions: &'a [DateException],
) -> &'a [TimeRange] {
    if let Some(exception) = exceptions.iter().find(|e| e.date == date) {
        return &exception.slots;
    }
    let weekday = medrelay_protocol::schedule::Weekday::from(date.weekday());
    availability
        .iter()
        .find(|d| d.day == weekday)
        .map_or(&[], |d| d.slots.as_slice())
}

/// Every slot of `date`, in start order.
pub fn slots_for_date(
    tz: &TimeZone,
    date: Date,
    slot_minutes: u16,
    availability: &[DayAvailability],
    exceptions: &[DateException],
) -> Vec<SlotTime> {
    let length = SignedDuration::from_mins(i64::from(slot_minutes));
    let mut slots: Vec<SlotTime> = Vec::new();
    for range in ranges_for(date, availability, exceptions) {
        let mut minute = range.start.minutes();
        while minute + slot_minutes <= range.end.minutes() {
            let clock = ClockTime::from_minutes(minute);
            minute += slot_minutes;
            let Some(start) = instant_of(tz, date, clock) else {
                continue; // in the spring gap: this wall-clock time does not exist
            };
            if slots.iter().any(|s| s.start == start) {
                continue; // the second pass through an autumn fold
            }
            slots.push(SlotTime {
                date,
                time_slot: clock,
                start,
                end: start + length,
            });
        }
    }
    slots.sort_by_key(|s| s.start);
    slots
}

/// The instant a wall-clock time on `date` names in `tz`: `None` in a gap, the
/// earlier of two in a fold.
pub fn instant_of(tz: &TimeZone, date: Date, clock: ClockTime) -> Option<Timestamp> {
    let (h, m) = clock.hm();
    let time = Time::new(h, m, 0, 0).ok()?;
    let local = DateTime::from_parts(date, time);
    let ambiguous = tz.to_ambiguous_zoned(local);
    if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
        return None;
    }
    ambiguous.earlier().ok().map(|z| z.timestamp())
}

/// The slot starting at `clock` on `date`, if the doctor works then: the
/// slot [`slots_for_date`] lists for that clock, found without listing the
/// day (every booking asks, and a day of 5-minute slots has 288).
pub fn find_slot(
    tz: &TimeZone,
    date: Date,
    clock: ClockTime,
    slot_minutes: u16,
    availability: &[DayAvailability],
    exceptions: &[DateException],
) -> Option<SlotTime> {
    let minute = clock.minutes();
    let on_grid = ranges_for(date, availability, exceptions).iter().any(|r| {
        let (start, end) = (r.start.minutes(), r.end.minutes());
        slot_minutes > 0
            && minute >= start
            && minute + slot_minutes <= end
            && (minute - start) % slot_minutes == 0
    });
    if !on_grid {
        return None;
    }
    let start = instant_of(tz, date, clock)?;
    Some(SlotTime {
        date,
        time_slot: clock,
        start,
        end: start + SignedDuration::from_mins(i64::from(slot_minutes)),
    })
}

/// The number of the 5-minute cell an instant falls in.
pub fn cell_of(at: Timestamp) -> i64 {
    at.as_second().div_euclid(i64::from(CELL_MINUTES) * 60)
}

/// The store key of `owner`'s cell number `cell` (zero-padded, so an
/// owner's cells sort by time).
pub fn cell_key(owner: &str, cell: i64) -> String {
    format!("{owner}/{cell:012}")
}

/// The 5-minute cells a slot covers, as store keys under `owner` (a doctor
/// or a patient): two appointments of one owner overlap exactly when they
/// share a cell.
pub fn cells(owner: &str, slot: &SlotTime) -> Vec<String> {
    let first = cell_of(slot.start);
    let last = cell_of(slot.end - SignedDuration::from_secs(1));
    (first..=last).map(|c| cell_key(owner, c)).collect()
}

/// Whether `[start, end)` lies inside one working range of the doctor's
/// hours, read on the wall clock of `tz` (hours, exceptions and zone as
/// they are now, whatever they were when it was booked).
pub fn fits_hours(
    tz: &TimeZone,
    start: Timestamp,
    end: Timestamp,
    availability: &[DayAvailability],
    exceptions: &[DateException],
) -> bool {
    let local = start.to_zoned(tz.clone());
    let minute = i64::from(local.hour()) * 60 + i64::from(local.minute());
    let length = end.duration_since(start).as_mins();
    ranges_for(local.date(), availability, exceptions)
        .iter()
        .any(|r| {
            let (from, to) = (i64::from(r.start.minutes()), i64::from(r.end.minutes()));
            from <= minute && minute + length <= to
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrelay_protocol::schedule::Weekday;

    fn day(d: Weekday, ranges: &[&str]) -> DayAvailability {
        DayAvailability {
            day: d,
            slots: ranges
                .iter()
                .map(|r| TimeRange::parse(r).unwrap())
                .collect(),
        }
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn slots_follow_the_weekly_pattern_and_exceptions() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let hours = [day(Weekday::Monday, &["09:00-10:00", "14:00-15:00"])];
        let monday = date("2030-01-07");
        let slots = slots_for_date(&tz, monday, 30, &hours, &[]);
        let names: Vec<String> = slots.iter().map(|s| s.time_slot.to_string()).collect();
        assert_eq!(names, ["09:00", "09:30", "14:00", "14:30"]);
        // Winter in Berlin is UTC+1.
        assert_eq!(slots[0].start.to_string(), "2030-01-07T08:00:00Z");
        assert!(slots_for_date(&tz, date("2030-01-08"), 30, &hours, &[]).is_empty());
        let off = [DateException {
            date: monday,
            slots: vec![],
        }];
        assert!(slots_for_date(&tz, monday, 30, &hours, &off).is_empty());
        let extra = [DateException {
            date: date("2030-01-08"),
            slots: vec![TimeRange::parse("08:00-08:30").unwrap()],
        }];
        assert_eq!(
            slots_for_date(&tz, date("2030-01-08"), 30, &hours, &extra).len(),
            1
        );
    }

    #[test]
    fn dst_spring_forward_skips_the_gap_and_shifts_utc() {
        // Europe/Berlin springs forward on 2030-03-31 at 02:00 -> 03:00.
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let hours = [
            day(Weekday::Saturday, &["09:00-10:00"]),
            day(Weekday::Sunday, &["01:00-04:00", "09:00-10:00"]),
            day(Weekday::Monday, &["09:00-10:00"]),
        ];
        let before = slots_for_date(&tz, date("2030-03-30"), 60, &hours, &[]);
        assert_eq!(before[0].start.to_string(), "2030-03-30T08:00:00Z");
        let change = slots_for_date(&tz, date("2030-03-31"), 60, &hours, &[]);
        let names: Vec<String> = change.iter().map(|s| s.time_slot.to_string()).collect();
        assert_eq!(
            names,
            ["01:00", "03:00", "09:00"],
            "02:00 does not exist that night"
        );
        assert_eq!(change[0].start.to_string(), "2030-03-31T00:00:00Z");
        assert_eq!(change[1].start.to_string(), "2030-03-31T01:00:00Z");
        assert_eq!(change[2].start.to_string(), "2030-03-31T07:00:00Z");
        let after = slots_for_date(&tz, date("2030-04-01"), 60, &hours, &[]);
        assert_eq!(after[0].start.to_string(), "2030-04-01T07:00:00Z");
    }

    #[test]
    fn dst_fall_back_keeps_one_slot_per_instant() {
        // America/New_York falls back on 2030-11-03 at 02:00 -> 01:00.
        let tz = TimeZone::get("America/New_York").unwrap();
        let hours = [day(Weekday::Sunday, &["00:00-03:00"])];
        let slots = slots_for_date(&tz, date("2030-11-03"), 60, &hours, &[]);
        let starts: Vec<String> = slots.iter().map(|s| s.start.to_string()).collect();
        // 00:00 EDT, 01:00 EDT (first pass), 02:00 EST: three distinct hours.
        assert_eq!(
            starts,
            [
                "2030-11-03T04:00:00Z",
                "2030-11-03T05:00:00Z",
                "2030-11-03T07:00:00Z"
            ]
        );
        // Slot lengths are real durations, even across the fold.
        assert!(
            slots
                .iter()
                .all(|s| s.end.duration_since(s.start) == SignedDuration::from_hours(1))
        );
    }

    #[test]
    fn hours_are_validated_with_named_fields() {
        let ok = [day(Weekday::Monday, &["09:00-12:00", "14:00-17:00"])];
        assert!(validate_hours("Europe/Berlin", 30, &ok, &[]).is_ok());
        let err = validate_hours("Nowhere/City", 30, &ok, &[]).unwrap_err();
        assert_eq!(err.field, "timeZone");
        assert_eq!(
            validate_hours("UTC", 7, &ok, &[]).unwrap_err().field,
            "slotMinutes"
        );
        let overlapping = [day(Weekday::Monday, &["09:00-12:00", "11:00-13:00"])];
        assert_eq!(
            validate_hours("UTC", 30, &overlapping, &[])
                .unwrap_err()
                .field,
            "availability[0].slots[1]"
        );
        let twice = [
            day(Weekday::Monday, &["09:00-10:00"]),
            day(Weekday::Monday, &["11:00-12:00"]),
        ];
        assert_eq!(
            validate_hours("UTC", 30, &twice, &[]).unwrap_err().field,
            "availability[1].day"
        );
        let off_grid = [day(Weekday::Monday, &["09:03-10:00"])];
        assert_eq!(
            validate_hours("UTC", 30, &off_grid, &[]).unwrap_err().field,
            "availability[0].slots[0]"
        );
    }

    #[test]
    fn overlapping_slots_share_a_patient_cell() {
        let tz = TimeZone::get("UTC").unwrap();
        let a = find_slot(
            &tz,
            date("2030-01-07"),
            ClockTime::parse("09:00").unwrap(),
            30,
            &[day(Weekday::Monday, &["09:00-10:00"])],
            &[],
        )
        .unwrap();
        let b = find_slot(
            &tz,
            date("2030-01-07"),
            ClockTime::parse("09:15").unwrap(),
            15,
            &[day(Weekday::Monday, &["09:00-10:00"])],
            &[],
        )
        .unwrap();
        let c = find_slot(
            &tz,
            date("2030-01-07"),
            ClockTime::parse("09:30").unwrap(),
            30,
            &[day(Weekday::Monday, &["09:00-10:00"])],
            &[],
        )
        .unwrap();
        let (ca, cb, cc) = (cells("p", &a), cells("p", &b), cells("p", &c));
        assert_eq!(ca.len(), 6);
        assert!(
            ca.iter().any(|k| cb.contains(k)),
            "09:00-09:30 and 09:15-09:30 overlap"
        );
        assert!(
            !ca.iter().any(|k| cc.contains(k)),
            "back-to-back slots do not"
        );
    }

    #[test]
    fn an_appointment_fits_hours_on_the_current_wall_clock() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let monday = [day(Weekday::Monday, &["09:00-12:00"])];
        let slot = find_slot(
            &tz,
            date("2030-01-07"),
            ClockTime::parse("11:30").unwrap(),
            30,
            &monday,
            &[],
        )
        .unwrap();
        let fits = |hours: &[DayAvailability], ex: &[DateException], zone: &str| {
            let tz = TimeZone::get(zone).unwrap();
            fits_hours(&tz, slot.start, slot.end, hours, ex)
        };
        assert!(fits(&monday, &[], "Europe/Berlin"));
        // Shorter hours: 11:30-12:00 is outside 09:00-11:45.
        assert!(!fits(
            &[day(Weekday::Monday, &["09:00-11:45"])],
            &[],
            "Europe/Berlin"
        ));
        // A day off on that date.
        let off = [DateException {
            date: date("2030-01-07"),
            slots: vec![],
        }];
        assert!(!fits(&monday, &off, "Europe/Berlin"));
        // Another zone: 11:30 in Berlin is 10:30 in London, still inside.
        assert!(fits(&monday, &[], "Europe/London"));
        // A later zone: 11:30 in Berlin is 12:30 in Helsinki, outside.
        assert!(!fits(&monday, &[], "Europe/Helsinki"));
    }

    #[test]
    fn find_slot_agrees_with_the_listed_slots_across_dst_and_overlapping_hours() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let hours: Vec<DayAvailability> = serde_json::from_value(serde_json::json!([
            {"day": "Sunday", "slots": ["00:00-04:00", "01:15-03:45", "22:00-24:00"]}
        ]))
        .unwrap();
        // Spring gap (2030-03-31) and autumn fold (2030-10-27), both Sundays.
        for day in ["2030-03-31", "2030-10-27", "2030-10-20"] {
            for length in [5, 15, 25, 30, 45] {
                let listed = slots_for_date(&tz, date(day), length, &hours, &[]);
                for minute in (0..24 * 60).step_by(5) {
                    let clock = ClockTime::from_minutes(minute);
                    let expected = listed.iter().find(|s| s.time_slot == clock);
                    let found = find_slot(&tz, date(day), clock, length, &hours, &[]);
                    assert_eq!(found.as_ref(), expected, "{day} {clock} {length}");
                }
            }
        }
    }
}
