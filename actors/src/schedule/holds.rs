//! Slot holds: a patient keeps a slot for a few minutes while they fill in
//! a booking form; nobody else may book or move into it meanwhile, and
//! their own booking with the hold's id takes it.
//!
//! A hold is a record of `slot_holds` (`<provider>/<hold>`) with an index
//! entry under the patient (`patient_holds`, `<patient>/<hold>`, for the
//! per-patient limit), written by the doctor's actor, which also keeps the
//! doctor's live holds in memory and refuses any other booking of their
//! time. A hold past its expiry blocks nothing, whether or not its release
//! has been written yet; the actor writes the release (and its
//! `slot_released` event) on its next tick.

use jiff::Timestamp;
use medrelay_protocol::schedule::SlotTime;
use medrelay_protocol::{Channel, Event, PatientId, ProviderId, UserId};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// A hold on one slot (table `slot_holds`, keyed `<provider>/<hold>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    /// Its id (`hld_...`).
    pub hold_id: String,
    /// The doctor.
    pub provider_id: ProviderId,
    /// The patient it is kept for.
    pub patient_id: PatientId,
    /// The slot.
    pub slot: SlotTime,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
    /// Set when the hold is a freed slot offered from the waitlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

impl Record for HoldRecord {
    const TABLE: Table = Table::SlotHolds;
    const VERSION: u16 = 1;
}

impl HoldRecord {
    /// Whether it still keeps its slot at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    /// Whether it covers part of `[start, end)`.
    pub fn overlaps(&self, start: Timestamp, end: Timestamp) -> bool {
        self.slot.start < end && start < self.slot.end
    }

    fn key(&self) -> String {
        format!("{}/{}", self.provider_id, self.hold_id)
    }

    fn patient_key(&self) -> String {
        format!("{}/{}", self.patient_id, self.hold_id)
    }
}

/// What makes a hold an offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The waitlist entry it answers.
    pub entry_id: String,
    /// The patients offered this slot so far, in order (this one last).
    pub offered: Vec<PatientId>,
}

/// A patient's hold, in their index (`patient_holds`, `<patient>/<hold>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientHold {
    /// The doctor whose slot it keeps.
    pub provider_id: ProviderId,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// An offer from the waitlist (not counted against the limit: the
    /// patient did not ask for it).
    #[serde(default)]
    pub offer: bool,
}

impl Record for PatientHold {
    const TABLE: Table = Table::PatientHolds;
    const VERSION: u16 = 1;
}

/// Why a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Its patient booked the slot.
    Booked,
    /// Its patient (or staff) let it go.
    Cancelled,
    /// Its time ran out.
    Expired,
}

impl Released {
    fn as_str(self) -> &'static str {
        match self {
            Released::Booked => "booked",
            Released::Cancelled => "cancelled",
            Released::Expired => "expired",
        }
    }
}

/// The live holds of `patient` at `now`, across all doctors (from their
/// index: at most a few keys).
///
/// # Errors
/// A storage error.
pub fn live_holds_of(
    store: &Store,
    patient: &PatientId,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let prefix = format!("{patient}/");
    Ok(store
        .scan_prefix::<PatientHold>(&prefix, 1_000)?
        .iter()
        .filter(|(_, h)| h.expires_at > now && !h.offer)
        .count())
}

/// Adds to `batch` a new hold: its record, its patient's index entry and
/// the `slot_held` event.
pub fn put(batch: &mut WriteBatch, hold: &HoldRecord) {
    batch.put(hold.key(), hold);
    batch.put(
        hold.patient_key(),
        &PatientHold {
            provider_id: hold.provider_id.clone(),
            expires_at: hold.expires_at,
            offer: hold.offer.is_some(),
        },
    );
    emit(
        batch,
        hold,
        Event::SlotHeld {
            provider_id: hold.provider_id.clone(),
            hold_id: hold.hold_id.clone(),
            patient_id: Some(hold.patient_id.clone()),
            slot: hold.slot.clone(),
            expires_at: hold.expires_at,
        },
    );
}

/// Adds to `batch` the end of `hold`: its records deleted (each required
/// present, so a hold ends once) and a `slot_released` event.
pub fn release(batch: &mut WriteBatch, hold: &HoldRecord, why: Released) {
    batch.require_present(Table::SlotHolds, hold.key());
    batch.delete(Table::SlotHolds, hold.key());
    batch.delete(Table::PatientHolds, hold.patient_key());
    emit(
        batch,
        hold,
        Event::SlotReleased {
            provider_id: hold.provider_id.clone(),
            hold_id: hold.hold_id.clone(),
            patient_id: Some(hold.patient_id.clone()),
            slot: hold.slot.clone(),
            reason: why.as_str().to_owned(),
        },
    );
}

/// Every hold of the doctor, from the store (at load).
///
/// # Errors
/// A storage error.
pub fn load(store: &Store, provider: &str) -> Result<Vec<HoldRecord>, StoreError> {
    let prefix = format!("{provider}/");
    Ok(store
        .scan_prefix::<HoldRecord>(&prefix, 100_000)?
        .into_iter()
        .map(|(_, h)| h)
        .collect())
}

/// Puts the event on the doctor's board and the patient's channel.
pub(super) fn emit(batch: &mut WriteBatch, hold: &HoldRecord, event: Event) {
    batch.event(Channel::Board(hold.provider_id.clone()), event.clone());
    batch.event(Channel::Patient(hold.patient_id.clone()), event);
}
