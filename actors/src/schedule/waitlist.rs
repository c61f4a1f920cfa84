//! A doctor's waitlist: patients who want a slot in a date range and times
//! of day (table `waitlist`, keyed `<provider>/<entry>`; entry ids sort by
//! when they were made, so the key order is the order offers follow). The
//! doctor's actor keeps the entries in memory to match freed slots.

use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::schedule::{SlotTime, TimeRange};
use medrelay_protocol::{PatientId, ProviderId, UserId};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// The most entries one doctor's waitlist holds.
pub const MAX_PER_DOCTOR: usize = 1_000;

/// The most entries one patient has on one doctor's waitlist.
pub const MAX_PER_PATIENT: usize = 3;

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
