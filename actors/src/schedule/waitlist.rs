//! A doctor's waitlist: patients who want a slot in a date range and times
//! of day (table `waitlist`, keyed `<provider>/<entry>`; entry ids sort by
//! when they were made, so the key order is the order offers follow). The
//! doctor's actor keeps the entries in memory to match freed slots.

use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::schedule::{SlotTime, TimeRange};
use medrelay_protocol::waitlist::JoinWaitlist;
use medrelay_protocol::{PatientId, ProviderId, UserId};
use serde::{Deserialize, Serialize};

use super::state::State;
use super::{BookingRules, ScheduleError};
use crate::patients::StoredPatient;
use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// The most entries one doctor's waitlist holds.
pub const MAX_PER_DOCTOR: usize = 1_000;

/// The most entries one patient has on one doctor's waitlist.
pub const MAX_PER_PATIENT: usize = 3;

/// The longest date range one entry may span, in days.
const MAX_RANGE_DAYS: i32 = 92;

/// A waitlist entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    /// Its id (`wl_...`).
    pub entry_id: String,
    /// The doctor.
    pub provider_id: ProviderId,
    /// The patient.
    pub patient_id: PatientId,
    /// First date wanted (the doctor's zone).
    pub from: Date,
    /// Last date wanted, inclusive.
    pub to: Date,
    /// Times of day wanted; none: any.
    pub times: Vec<TimeRange>,
    /// When the patient joined.
    pub created_at: Timestamp,
    /// Who added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
}

impl Record for WaitlistEntry {
    const TABLE: Table = Table::Waitlist;
    const VERSION: u16 = 1;
}

impl WaitlistEntry {
    /// Its key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.provider_id, self.entry_id)
    }

    /// Whether it wants `slot`: its date in range and the whole slot inside
    /// one of its times of day.
    pub fn wants(&self, slot: &SlotTime) -> bool {
        if slot.date < self.from || slot.date > self.to {
            return false;
        }
        let start = i64::from(slot.time_slot.minutes());
        let end = start + slot.end.duration_since(slot.start).as_mins();
        self.times.is_empty()
            || self
                .times
                .iter()
                .any(|r| i64::from(r.start.minutes()) <= start && end <= i64::from(r.end.minutes()))
    }
}

/// A new entry for `patient` on the doctor's waitlist.
///
/// # Errors
/// `Invalid` naming `to` (before `from`, in the past, too long a range),
/// `times` (an empty range) or `patientId` (too many entries), or
/// `providerId` (the waitlist is full); `NotFound` for an unknown patient.
pub fn join(
    state: &State,
    store: &Store,
    rules: &BookingRules,
    (patient, request, by): (PatientId, &JoinWaitlist, Option<UserId>),
    now: Timestamp,
) -> Result<(WriteBatch, WaitlistEntry), ScheduleError> {
    let invalid = |field: &str, message: &str| ScheduleError::Invalid {
        field: field.into(),
        message: message.into(),
    };
    let today = now.to_zoned(state.tz.clone()).date();
    if request.to < request.from {
        return Err(invalid("to", "must not be before from"));
    }
    if request.to < today {
        return Err(invalid("to", "is in the past"));
    }
    let days = request
        .from
        .until(request.to)
        .map(|s| s.get_days())
        .unwrap_or(i32::MAX);
    if days >= MAX_RANGE_DAYS {
        return Err(invalid("to", "a waitlist entry spans at most 92 days"));
    }
    if now + rules.horizon
        < request
            .from
            .to_zoned(state.tz.clone())
            .map_or(now, |z| z.timestamp())
    {
        return Err(invalid("from", "is beyond the booking horizon"));
    }
    if request.times.iter().any(|r| r.start >= r.end) {
        return Err(invalid("times", "each range must end after it starts"));
    }
    if store.get::<StoredPatient>(patient.as_str())?.is_none() {
        return Err(ScheduleError::NotFound(format!("no patient {patient}")));
    }
    let theirs = state
        .waitlist
        .values()
        .filter(|e| e.patient_id == patient)
        .count();
    if theirs >= MAX_PER_PATIENT {
        return Err(invalid("patientId", "already on this waitlist 3 times"));
    }
    if state.waitlist.len() >= MAX_PER_DOCTOR {
        return Err(invalid("providerId", "this doctor's waitlist is full"));
    }
    let entry = WaitlistEntry {
        entry_id: crate::ids::new_id("wl"),
        provider_id: state.provider.provider_id.clone(),
        patient_id: patient,
        from: request.from,
        to: request.to,
        times: request.times.clone(),
        created_at: now,
        by,
    };
    let mut batch = WriteBatch::new();
    batch.put(entry.key(), &entry);
    Ok((batch, entry))
}

/// Adds to `batch` the removal of `entry` (left, fulfilled or expired).
pub fn remove(batch: &mut WriteBatch, entry: &WaitlistEntry) {
    batch.delete(Table::Waitlist, entry.key());
}

/// Every entry of the doctor's waitlist, in order (at load).
///
/// # Errors
/// A storage error.
pub fn load(store: &Store, provider: &str) -> Result<Vec<WaitlistEntry>, StoreError> {
    let prefix = format!("{provider}/");
    Ok(store
        .scan_prefix::<WaitlistEntry>(&prefix, MAX_PER_DOCTOR + 100)?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}
