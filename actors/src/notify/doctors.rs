//! Notices to doctors: durable like patients' notices, fired by the same
//! scheduler, keyed by when they are due.
//!
//! Three sorts:
//! - one per booking, move or cancellation a patient (or staff) makes with
//!   the doctor, written in the change's own transaction;
//! - the `needs_reschedule` list after a change of their hours;
//! - the daily agenda: a chain of one pending notice per doctor, each
//!   writing the next when it fires. [`AgendaPlan`] names the live chain,
//!   so a change of the chosen time starts a new chain and the old one's
//!   notice, when it falls due, is dropped.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::schedule::{AppointmentId, AppointmentStatus, ClockTime};
use medrelay_protocol::{ProviderId, UserId};
use serde::{Deserialize, Serialize};

use crate::accounts::ProviderRecord;
use crate::schedule::AppointmentRecord;
use crate::store::{Record, Table, WriteBatch};

/// What a doctor is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoctorNoticeKind {
    /// Their hours changed and these appointments no longer fit them (the
    /// patients were asked to move them).
    NeedsReschedule,
    /// An appointment was booked with them.
    Booked,
    /// An appointment with them was moved.
    Rescheduled,
    /// An appointment with them was cancelled.
    Cancelled,
    /// The day's appointments, at the time of day they chose.
    Agenda,
}

/// A notice to a doctor (table `doctor_notices`, keyed
/// `<due ms, 13 digits>/<provider>/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorNotice {
    /// The doctor.
    pub provider_id: ProviderId,
    /// The account it is for: a notice whose schedule has since been
    /// linked to another account is dropped, not sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// What it says.
    pub kind: DoctorNoticeKind,
    /// The appointments it lists, by start.
    pub appointments: Vec<AppointmentId>,
    /// A booking, move or cancellation: the start it is about (the new one
    /// for a move), as it was when the change was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// A move: the start it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// An agenda: the chain it belongs to ([`AgendaPlan::plan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// An agenda: the doctor's local day it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<Date>,
}

impl Record for DoctorNotice {
    const TABLE: Table = Table::DoctorNotices;
    const VERSION: u16 = 1;
}

impl DoctorNotice {
    fn about((provider_id, user_id): (ProviderId, Option<UserId>), kind: DoctorNoticeKind) -> Self {
        Self {
            provider_id,
            user_id,
            kind,
            appointments: Vec::new(),
            at: None,
            from: None,
            plan: None,
            day: None,
        }
    }

    /// A notice to `provider`'s account listing `appointments`.
    pub fn listing(
        provider: &ProviderRecord,
        kind: DoctorNoticeKind,
        appointments: Vec<AppointmentId>,
    ) -> Self {
        Self {
            appointments,
            ..Self::about(account_of(provider), kind)
        }
    }
}

/// A schedule and the account its notices go to.
fn account_of(provider: &ProviderRecord) -> (ProviderId, Option<UserId>) {
    (provider.provider_id.clone(), provider.user_id.clone())
}

/// The key of a notice due at `due`.
pub fn notice_key(due: Timestamp, provider: &ProviderId) -> String {
    format!(
        "{:013}/{provider}/{}",
        due.as_millisecond().max(0),
        crate::ids::new_id("dn")
    )
}

/// Adds a notice due at `now` to `batch`.
pub fn notify_doctor(batch: &mut WriteBatch, now: Timestamp, notice: &DoctorNotice) {
    batch.put(notice_key(now, &notice.provider_id), notice);
}

/// Adds to `batch` the notice of a change to one of the doctor's
/// appointments (`before`: `None` for a booking), when it is one a doctor
/// hears of (booked, moved, cancelled), the doctor has an account, and
/// the change was not made by that account.
pub fn tell_doctor(
    batch: &mut WriteBatch,
    provider: &ProviderRecord,
    before: Option<&AppointmentRecord>,
    after: &AppointmentRecord,
    by: Option<&UserId>,
    now: Timestamp,
) {
    let Some(doctor) = &provider.user_id else {
        return;
    };
    if by == Some(doctor) {
        return;
    }
    let (kind, from) = match before {
        None => (DoctorNoticeKind::Booked, None),
        Some(b) if after.status == AppointmentStatus::Cancelled && b.status.holds_slot() => {
            (DoctorNoticeKind::Cancelled, None)
        }
        Some(b) if b.slot.start != after.slot.start && after.status.holds_slot() => {
            (DoctorNoticeKind::Rescheduled, Some(b.slot.start))
        }
        Some(_) => return,
    };
    let notice = DoctorNotice {
        appointments: vec![after.appointment_id.clone()],
        at: Some(after.slot.start),
        from,
        ..DoctorNotice::about(account_of(provider), kind)
    };
    notify_doctor(batch, now, &notice);
}

/// The doctor's live agenda chain (table `doctor_agendas`, keyed by
/// provider id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgendaPlan {
    /// Names the chain; notices of any other chain are dropped.
    pub plan: String,
    /// The account it goes to.
    pub user_id: UserId,
    /// The local time of day it is sent.
    pub at: ClockTime,
    /// The zone that time is read in.
    pub zone: String,
    /// The key of the chain's pending notice.
    pub next: String,
    /// The last local day an agenda was sent for, carried over when the
    /// chain is replaced, so that a new time later the same day does not
    /// send that day's agenda twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_day: Option<Date>,
}

impl Record for AgendaPlan {
    const TABLE: Table = Table::DoctorAgendas;
    const VERSION: u16 = 1;
}

/// How late an agenda may still be sent: past this, its day is mostly over.
pub const AGENDA_LATE_BY: SignedDuration = SignedDuration::from_hours(12);

/// The first `at` on the wall clock of `tz` strictly after `after`, and
/// its local day, skipping days up to `done` (already sent). A time that
/// a DST change skips is read as the same length of time after the gap
/// (02:30 on a day that jumps from 02:00 to 03:00 is 03:30). `None` only
/// at the end of time.
pub fn next_agenda(
    tz: &TimeZone,
    at: ClockTime,
    after: Timestamp,
    done: Option<Date>,
) -> Option<(Timestamp, Date)> {
    let (h, m) = at.hm();
    let mut day = after.to_zoned(tz.clone()).date();
    for _ in 0..4 {
        if let Ok(t) = day.at(h, m, 0, 0).to_zoned(tz.clone())
            && t.timestamp() > after
            && done.is_none_or(|d| day > d)
        {
            return Some((t.timestamp(), day));
        }
        day = day.tomorrow().ok()?;
    }
    None
}

/// Puts into `batch` the chain `plan`'s next notice, due at `due` for
/// local day `day`, and the plan pointing at it.
pub fn plan_agenda(
    batch: &mut WriteBatch,
    provider: &ProviderId,
    mut plan: AgendaPlan,
    (due, day): (Timestamp, Date),
) {
    let notice = DoctorNotice {
        plan: Some(plan.plan.clone()),
        day: Some(day),
        ..DoctorNotice::about(
            (provider.clone(), Some(plan.user_id.clone())),
            DoctorNoticeKind::Agenda,
        )
    };
    let key = notice_key(due, provider);
    batch.put(key.clone(), &notice);
    plan.next = key;
    batch.put(provider.as_str(), &plan);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agenda_stays_at_seven_local_across_dst_changes() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let seven = ClockTime::parse("07:00").unwrap();
        // Saturday before the spring change: 07:00 CET is 06:00Z.
        let next = |after: Timestamp, done| next_agenda(&tz, seven, after, done).unwrap();
        let (t, day) = next("2027-03-26T07:00:00Z".parse().unwrap(), None);
        assert_eq!(t.to_string(), "2027-03-27T06:00:00Z");
        assert_eq!(day.to_string(), "2027-03-27");
        // The day of the change: 07:00 CEST is 05:00Z.
        let (t, _) = next(t, None);
        assert_eq!(t.to_string(), "2027-03-28T05:00:00Z");
        // A day already sent is skipped.
        let (t, _) = next("2027-03-27T05:00:00Z".parse().unwrap(), Some(day));
        assert_eq!(t.to_string(), "2027-03-28T05:00:00Z");
        // Autumn: back to 06:00Z the day the clocks go back.
        let (t, _) = next("2027-10-30T06:00:00Z".parse().unwrap(), None);
        assert_eq!(t.to_string(), "2027-10-31T06:00:00Z");
        // A time the spring change skips comes an hour later that day.
        let half_two = ClockTime::parse("02:30").unwrap();
        let after = "2027-03-27T12:00:00Z".parse().unwrap();
        let (t, _) = next_agenda(&tz, half_two, after, None).unwrap();
        assert_eq!(t.to_string(), "2027-03-28T01:30:00Z");
    }
}
