//! iCalendar (RFC 5545) text: the one writer of calendar feeds and e-mail
//! invitations.
//!
//! Written here rather than with the `icalendar` crate: it writes no
//! `VTIMEZONE` (RFC 5545 §3.2.19 requires one for every `TZID`, and calendars
//! without it shift events by hours), and its events stamp themselves with
//! the current time and a random `UID` unless told otherwise, while a feed
//! must be the same bytes for the same state so that its `ETag` holds. The
//! zone definitions come from jiff's bundled time zone database, the same
//! one that placed the appointments.
//!
//! Every value goes through one line writer: text is escaped (§3.3.11), parameter
//! values quoted (§3.2), and lines folded at 75 octets (§3.1).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan};
use medrelay_actors::calendar::CalendarEntry;
use medrelay_protocol::schedule::AppointmentStatus;

/// The product identifier every calendar carries.
const PRODID: &str = "-//medrelay//clinic schedules//EN";

/// About what one event takes, to size the text once.
const EVENT_BYTES: usize = 560;

/// From how many events a calendar is written on two threads.
const PARALLEL_FROM: usize = 1000;

/// What an e-mailed calendar asks of its reader (RFC 5546).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An invitation, new or updated.
    Request,
    /// The event is cancelled.
    Cancel,
}

/// An event's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It takes place.
    Confirmed,
    /// It was cancelled.
    Cancelled,
}

/// A person named in an invitation.
#[derive(Debug, Clone)]
pub struct Person {
    /// Their name (`CN`).
    pub name: String,
    /// Their e-mail address.
    pub email: String,
}

/// One appointment as a `VEVENT`.
#[derive(Debug, Clone)]
pub struct Event {
    /// Stable across every change of the appointment.
    pub uid: String,
    /// Raised on every change.
    pub sequence: u32,
    /// When this version of the event was made (`DTSTAMP`, `LAST-MODIFIED`).
    pub stamp: Timestamp,
    /// When the event was first made (`CREATED`).
    pub created: Timestamp,
    /// Start and end, written in `zone` (which needs a `VTIMEZONE`).
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// The zone the times are shown in, an IANA name.
    pub zone: String,
    /// One line about it.
    pub summary: String,
    /// Where.
    pub location: Option<String>,
    /// Confirmed or cancelled.
    pub status: Status,
    /// Invitations: who sends it.
    pub organizer: Option<Person>,
    /// Invitations: who it is for.
    pub attendee: Option<Person>,
}

impl Event {
    /// An appointment as an event: its id as `UID` (so a feed and every
    /// e-mail about it name the same event), `SEQUENCE` the number of
    /// changes after the booking, shown in the doctor's `zone`.
    pub fn for_appointment(
        appointment: &CalendarEntry,
        zone: &str,
        summary: String,
        location: Option<String>,
    ) -> Event {
        let cancelled = appointment.status == AppointmentStatus::Cancelled;
        Event {
            uid: format!("{}@medrelay", appointment.appointment_id),
            sequence: u32::try_from(appointment.changes.saturating_sub(1)).unwrap_or(u32::MAX),
            stamp: appointment.changed_at,
            created: appointment.booked_at,
            start: appointment.start,
            end: appointment.end,
            zone: zone.to_owned(),
            summary,
            location,
            status: if cancelled {
                Status::Cancelled
            } else {
                Status::Confirmed
            },
            organizer: None,
            attendee: None,
        }
    }
}

/// A calendar: events and the definitions of the zones they use.
#[derive(Debug, Default)]
pub struct Calendar {
    /// Set on e-mailed invitations; feeds carry none.
    pub method: Option<Method>,
    /// Shown as the calendar's name by subscribing clients.
    pub name: Option<String>,
    /// The events, in the order written.
    pub events: Vec<Event>,
}

impl Calendar {
    /// The calendar's text, CRLF line ends. Every zone the events name gets
    /// a `VTIMEZONE` covering their span; an unknown zone name is written
    /// as UTC times instead (a calendar must never guess an offset).
    pub fn render(&self) -> String {
        let mut spans: BTreeMap<&str, (Timestamp, Timestamp)> = BTreeMap::new();
        for e in &self.events {
            let span = spans.entry(e.zone.as_str()).or_insert((e.start, e.end));
            span.0 = span.0.min(e.start);
            span.1 = span.1.max(e.end);
        }
        let zones: BTreeMap<&str, TimeZone> = spans
            .keys()
            .filter_map(|name| Some((*name, TimeZone::get(name).ok()?)))
            .collect();
        let mut out = Lines::with_capacity(1024 + self.events.len() * EVENT_BYTES);
        out.raw("BEGIN", "VCALENDAR");
        out.raw("VERSION", "2.0");
        out.text("PRODID", PRODID);
        out.raw("CALSCALE", "GREGORIAN");
        if let Some(method) = self.method {
            out.raw(
                "METHOD",
                match method {
                    Method::Request => "REQUEST",
                    Method::Cancel => "CANCEL",
                },
            );
        }
        if let Some(name) = &self.name {
            out.text("X-WR-CALNAME", name);
        }
        for (name, tz) in &zones {
            let (from, to) = spans[name];
            write_zone(&mut out, name, tz, from, to);
        }
        let write_all = |out: &mut Lines, events: &[Event]| {
            for event in events {
                write_event(out, event, zones.get(event.zone.as_str()));
            }
        };
        if self.events.len() >= PARALLEL_FROM {
            // A feed of thousands: the second half written on another thread.
            let (first, second) = self.events.split_at(self.events.len() / 2);
            let rest = std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    let mut rest = Lines::with_capacity(second.len() * EVENT_BYTES);
                    write_all(&mut rest, second);
                    rest.out
                });
                write_all(&mut out, first);
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            });
            out.out.push_str(&rest);
        } else {
            write_all(&mut out, &self.events);
        }
        out.raw("END", "VCALENDAR");
        out.out
    }
}

fn write_event(out: &mut Lines, e: &Event, tz: Option<&TimeZone>) {
    out.raw("BEGIN", "VEVENT");
    out.text("UID", &e.uid);
    out.start("SEQUENCE", &[]);
    let _ = write!(out.line, "{}", e.sequence);
    out.end();
    out.time("DTSTAMP", e.stamp, None);
    out.time("CREATED", e.created, None);
    out.time("LAST-MODIFIED", e.stamp, None);
    let zone = tz.map(|tz| (e.zone.as_str(), tz));
    out.time("DTSTART", e.start, zone);
    out.time("DTEND", e.end, zone);
    out.text("SUMMARY", &e.summary);
    if let Some(location) = &e.location {
        out.text("LOCATION", location);
    }
    out.raw(
        "STATUS",
        match e.status {
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
        },
    );
    out.raw("TRANSP", "OPAQUE");
    if let Some(p) = &e.organizer {
        out.with_params("ORGANIZER", &[("CN", &p.name)], &mailto(&p.email));
    }
    if let Some(p) = &e.attendee {
        let params = [("CN", p.name.as_str()), ("ROLE", "REQ-PARTICIPANT")];
        out.with_params("ATTENDEE", &params, &mailto(&p.email));
    }
    out.raw("END", "VEVENT");
}

/// A `VTIMEZONE` for `name` over `[from, to]`: the observance in force at
/// `from` and one per transition up to `to`, each with its own onset (no
/// recurrence rules to get wrong; the zone database already applied them).
fn write_zone(out: &mut Lines, name: &str, tz: &TimeZone, from: Timestamp, to: Timestamp) {
    out.raw("BEGIN", "VTIMEZONE");
    out.text("TZID", name);
    // The onset of each observance, with the offset in force before it.
    let onset = |out: &mut Lines, t: jiff::tz::TimeZoneTransition<'_>| {
        let before = tz.to_offset(t.timestamp() - 1.second());
        let dst = t.dst().is_dst();
        observance(
            out,
            dst,
            t.timestamp(),
            before,
            t.offset(),
            t.abbreviation(),
        );
    };
    match tz.preceding(from + 1.second()).next() {
        Some(t) => onset(out, t),
        None => {
            // A zone that never changed (UTC): one observance since ever.
            let info = tz.to_offset_info(from);
            let (offset, dst) = (info.offset(), info.dst().is_dst());
            let since = Timestamp::UNIX_EPOCH;
            observance(out, dst, since, offset, offset, info.abbreviation());
        }
    }
    for t in tz.following(from + 1.second()) {
        if t.timestamp() > to {
            break;
        }
        onset(out, t);
    }
    out.raw("END", "VTIMEZONE");
}

fn observance(
    out: &mut Lines,
    dst: bool,
    onset: Timestamp,
    from: Offset,
    to: Offset,
    abbreviation: &str,
) {
    let kind = if dst { "DAYLIGHT" } else { "STANDARD" };
    out.raw("BEGIN", kind);
    // The onset is written in the local time in force before it (§3.6.5).
    out.raw("DTSTART", &civil(from.to_datetime(onset)));
    out.raw("TZOFFSETFROM", &utc_offset(from));
    out.raw("TZOFFSETTO", &utc_offset(to));
    if !abbreviation.is_empty() && !abbreviation.starts_with(['+', '-']) {
        out.text("TZNAME", abbreviation);
    }
    out.raw("END", kind);
}

/// `19980118T230000`
fn civil(dt: DateTime) -> String {
    let mut out = String::with_capacity(15);
    write_civil(&mut out, dt);
    out
}

fn write_civil(out: &mut String, dt: DateTime) {
    // Digits by hand: this runs several times per event of a feed that may
    // hold thousands, and `fmt` is the costliest part of writing one.
    fn digits(buf: &mut [u8], mut n: u32) {
        for slot in buf.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let mut buf = *b"00000000T000000";
    digits(&mut buf[0..4], u32::from(dt.year().unsigned_abs()));
    digits(&mut buf[4..6], u32::from(dt.month().unsigned_abs()));
    digits(&mut buf[6..8], u32::from(dt.day().unsigned_abs()));
    digits(&mut buf[9..11], u32::from(dt.hour().unsigned_abs()));
    digits(&mut buf[11..13], u32::from(dt.minute().unsigned_abs()));
    digits(&mut buf[13..15], u32::from(dt.second().unsigned_abs()));
    out.push_str(std::str::from_utf8(&buf).expect("ASCII digits"));
}

/// `+0100`, `-0430`, or `+005328` when the offset has seconds (old LMT).
fn utc_offset(offset: Offset) -> String {
    let total = offset.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let total = total.unsigned_abs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

fn mailto(email: &str) -> String {
    // An address with characters a URI cannot hold is dropped, not written.
    let clean: String = email
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | ';' | ',' | ':' | '\\'))
        .collect();
    format!("mailto:{clean}")
}

/// Content lines under construction: each line is built in `line` (one
/// buffer, reused) and folded into `out`.
struct Lines {
    out: String,
    line: String,
}

impl Lines {
    fn with_capacity(n: usize) -> Self {
        Lines {
            out: String::with_capacity(n),
            line: String::with_capacity(128),
        }
    }

    /// A property whose value is already in its wire form (dates, numbers,
    /// enumerated values).
    fn raw(&mut self, name: &str, value: &str) {
        self.start(name, &[]);
        self.line.push_str(value);
        self.end();
    }

    /// A TEXT property, escaped.
    fn text(&mut self, name: &str, value: &str) {
        self.start(name, &[]);
        escape_text_into(&mut self.line, value);
        self.end();
    }

    fn with_params(&mut self, name: &str, params: &[(&str, &str)], value: &str) {
        self.start(name, params);
        self.line.push_str(value);
        self.end();
    }

    /// A DATE-TIME property: `at` in UTC (`...Z`), or its wall clock in
    /// `zone` (named by a `TZID` parameter).
    fn time(&mut self, name: &str, at: Timestamp, zone: Option<(&str, &TimeZone)>) {
        // A wall-clock time that happens twice (the hour a DST change
        // repeats) means its first occurrence (RFC 5545 §3.3.5): the
        // second is written in UTC.
        let local = zone
            .map(|(id, tz)| (id, tz.to_datetime(at), tz))
            .filter(|(_, dt, tz)| tz.to_ambiguous_timestamp(*dt).compatible().ok() == Some(at));
        match local {
            Some((id, dt, _)) => {
                self.start(name, &[("TZID", id)]);
                write_civil(&mut self.line, dt);
            }
            None => {
                self.start(name, &[]);
                write_civil(&mut self.line, Offset::UTC.to_datetime(at));
                self.line.push('Z');
            }
        }
        self.end();
    }

    fn start(&mut self, name: &str, params: &[(&str, &str)]) {
        self.line.clear();
        self.line.push_str(name);
        for (key, v) in params {
            self.line.push(';');
            self.line.push_str(key);
            self.line.push('=');
            param_value_into(&mut self.line, v);
        }
        self.line.push(':');
    }

    fn end(&mut self) {
        fold_into(&mut self.out, &self.line);
    }
}

/// TEXT escaping (§3.3.11); control characters other than newlines are
/// dropped.
fn escape_text_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// A parameter value: quoted when it holds `:`, `;` or `,`; a double quote
/// cannot be written at all (§3.2), so it and control characters go.
fn param_value_into(out: &mut String, value: &str) {
    let quoted = value.contains([':', ';', ',']);
    if quoted {
        out.push('"');
    }
    out.extend(value.chars().filter(|c| *c != '"' && !c.is_control()));
    if quoted {
        out.push('"');
    }
}

/// Appends `line` folded into lines of at most 75 octets, never inside a
/// UTF-8 character, each continuation starting with one space (§3.1).
fn fold_into(out: &mut String, line: &str) {
    const LIMIT: usize = 75;
    if line.len() <= LIMIT {
        out.push_str(line);
        out.push_str("\r\n");
        return;
    }
    let mut room = LIMIT;
    for c in line.chars() {
        if c.len_utf8() > room {
            out.push_str("\r\n ");
            room = LIMIT - 1;
        }
        out.push(c);
        room -= c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests;
