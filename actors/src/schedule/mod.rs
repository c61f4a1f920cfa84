//! Doctor schedules: providers' hours, appointments, and the `ScheduleActor`
//! that owns each doctor's bookings.
//!
//! Every booking, move and cancellation for one doctor goes through that
//! doctor's actor, one at a time: it checks the request against its state,
//! writes the change (and its events) through the group-commit store, and only
//! after the write is durable applies it to its state and replies. Two
//! requests for one slot can therefore never both succeed.
//!
//! The actor is the fast path; the store is the guarantee. Every appointment
//! that holds its time reserves the 5-minute cells it covers twice, under
//! the doctor and under the patient, each with a precondition that the cell
//! is free. Two overlapping appointments of one doctor, or of one patient
//! with different doctors, therefore cannot both commit, whatever any
//! actor's memory believes (a changed slot length, two actors for one
//! doctor during a hand-over).
//!
//! # Layout
//! - [`rules`]: pure slot generation (time zones, DST), hour validation, cells.
//! - [`messages`]: what the `ScheduleActor` is asked, and its replies.
//! - [`state`]: one doctor's loaded state and the checks made against it.
//! - [`changes`]: the write batches of each change, built without actix.
//! - [`holds`]: slot holds (kept for a patient for a few minutes) and
//!   their records; [`waitlist`]: patients waiting for a slot.
//! - [`offers`]: what the state allows of holds and waitlist entries, and
//!   freed slots held for waiting patients in turn.
//! - [`holding`]: the actor's handlers for holds and the waitlist.
//! - [`actor`]: the `ScheduleActor` itself.
//! - [`migrate`]: start-up repair of stores written by older releases.

pub mod actor;
pub mod changes;
pub mod holding;
pub mod holds;
pub mod messages;
pub mod migrate;
pub mod offers;
pub mod rules;
pub mod state;
#[cfg(test)]
mod tests;
pub mod waitlist;

use medrelay_protocol::schedule::{AppointmentId, AppointmentStatus, SlotTime};
use medrelay_protocol::{PatientId, ProviderId};
use serde::{Deserialize, Serialize};

use crate::accounts::{ProviderRecord, UserRecord};
use crate::fault::Fault;
use crate::ids::new_id;
use crate::store::{Record, Store, StoreError, Table, WriteBatch, WriteError};

pub use actor::ScheduleActor;
pub use medrelay_protocol::schedule::{HistoryAction, HistoryEntry};

/// An appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentRecord {
    /// Its id.
    pub appointment_id: AppointmentId,
    /// The doctor.
    pub provider_id: ProviderId,
    /// The patient.
    pub patient_id: PatientId,
    /// When.
    pub slot: SlotTime,
    /// Its status.
    pub status: AppointmentStatus,
    /// Every change, oldest first: the booking and the newest
    /// [`HISTORY_LIMIT`]` - 1` changes after it.
    pub history: Vec<HistoryEntry>,
    /// How many changes were dropped from `history` to keep it bounded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_dropped: u32,
    /// How many of the dropped changes were moves (so the moves stay countable).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reschedules_dropped: u32,
    /// Booked from a waitlist offer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_waitlist: bool,
    /// The doctor's hours changed so that it no longer fits them. It keeps
    /// its time (and the doctor's and patient's cells) until the patient
    /// moves or cancels it, or the hours change back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_reschedule: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The most entries an appointment's history keeps: a patient moving an
/// appointment back and forth must not grow its record without bound.
pub const HISTORY_LIMIT: usize = 50;

impl AppointmentRecord {
    /// Records a change, dropping the oldest one after the booking when the
    /// history is full.
    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        if self.history.len() > HISTORY_LIMIT {
            let dropped = self.history.remove(1);
            self.history_dropped = self.history_dropped.saturating_add(1);
            if dropped.action == HistoryAction::Rescheduled {
                self.reschedules_dropped = self.reschedules_dropped.saturating_add(1);
            }
        }
    }

    /// How many changes the appointment has seen, the booking included
    /// (numbers its notices, so two never share a key).
    pub fn changes(&self) -> usize {
        self.history.len() + self.history_dropped as usize
    }
}

impl Record for AppointmentRecord {
    const TABLE: Table = Table::Appointments;
    const VERSION: u16 = 1;
}

/// Index entry (`provider/appointment` or `patient/appointment` keys).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {}

macro_rules! index_record {
    ($name:ident, $table:expr) => {
        /// An index entry in its table.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub IndexEntry);
        impl Record for $name {
            const TABLE: Table = $table;
            const VERSION: u16 = 1;
        }
    };
}
index_record!(ProviderAppointment, Table::ProviderAppointments);
index_record!(PatientAppointment, Table::PatientAppointments);

macro_rules! cell_record {
    ($(#[$doc:meta])* $name:ident, $table:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The appointment holding it.
            pub appointment_id: AppointmentId,
        }
        impl Record for $name {
            const TABLE: Table = $table;
            const VERSION: u16 = 1;
        }
    };
}
cell_record!(
    /// A patient's reserved 5-minute cell (`patient/cell` key).
    PatientCell,
    Table::PatientCells
);
cell_record!(
    /// A doctor's reserved 5-minute cell (`provider/cell` key).
    ProviderCell,
    Table::ProviderCells
);

/// Booking limits, from the `[schedule]` config section.
#[derive(Debug, Clone, Copy)]
pub struct BookingRules {
    /// Bookings must start at least this long from now.
    pub min_notice: jiff::SignedDuration,
    /// Bookings may start at most this long from now.
    pub horizon: jiff::SignedDuration,
    /// How long a slot hold lasts.
    pub hold_for: jiff::SignedDuration,
    /// Live holds one patient may have, across all doctors.
    pub holds_per_patient: usize,
    /// How long a freed slot is held for a waitlisted patient.
    pub offer_for: jiff::SignedDuration,
}

/// Why a schedule operation failed; each maps to one protocol error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The provider, patient or appointment does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Not inside the doctor's hours, or not on a slot boundary.
    #[error("{0}")]
    OutsideAvailability(String),
    /// In the past or within the minimum notice.
    #[error("{0}")]
    TooSoon(String),
    /// Beyond the booking horizon.
    #[error("{0}")]
    TooFar(String),
    /// The slot is booked.
    #[error("that slot is already booked")]
    SlotTaken,
    /// The patient has an overlapping appointment.
    #[error("the patient already has an appointment at that time")]
    PatientConflict,
    /// The slot is held for another patient.
    #[error("that slot is held for another patient for a few minutes")]
    SlotHeld,
    /// The patient holds as many slots as they may.
    #[error("a patient may hold at most {0} slots at a time")]
    HoldLimit(usize),
    /// The status change is not allowed.
    #[error("{0}")]
    InvalidTransition(String),
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// The provider still has appointments ahead.
    #[error(
        "the provider has {0} appointments ahead; cancel them first or pass cancelAppointments=true"
    )]
    HasFutureAppointments(usize),
    /// The provider id exists.
    #[error("providerId is already taken")]
    ProviderExists,
    /// The store failed.
    #[error("storage failed")]
    Storage(#[source] Fault),
    /// The actor failed while handling the request (it was restarted).
    #[error("internal error")]
    Internal,
}

impl ScheduleError {
    /// The error a rejected write means: a doctor's cell taken is a slot
    /// taken, a patient's cell taken is the patient's conflict.
    pub fn from_write(e: WriteError) -> Self {
        match e {
            WriteError::Exists { table, .. } if table == Table::ProviderCells.name() => {
                ScheduleError::SlotTaken
            }
            WriteError::Exists { table, .. } if table == Table::PatientCells.name() => {
                ScheduleError::PatientConflict
            }
            WriteError::Exists { table, .. } if table == Table::Providers.name() => {
                ScheduleError::ProviderExists
            }
            e => ScheduleError::Storage(Fault::new(e)),
        }
    }
}

impl From<StoreError> for ScheduleError {
    fn from(e: StoreError) -> Self {
        ScheduleError::Storage(Fault::new(e))
    }
}

impl From<rules::Invalid> for ScheduleError {
    fn from(e: rules::Invalid) -> Self {
        ScheduleError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// A new appointment id.
pub fn new_appointment_id() -> AppointmentId {
    AppointmentId::parse(&new_id("apt")).expect("generated ids are valid")
}

/// Creates a provider profile; with `link`, attaches it to that doctor
/// account (which must not have a profile yet).
///
/// # Errors
/// [`ScheduleError::ProviderExists`], [`ScheduleError::Invalid`] for bad hours
/// or an unsuitable account, or a storage error.
pub async fn create_provider(
    store: &Store,
    record: ProviderRecord,
    link: Option<UserRecord>,
) -> Result<ProviderRecord, ScheduleError> {
    rules::validate_hours(
        &record.time_zone,
        record.slot_minutes,
        &record.availability,
        &record.exceptions,
    )?;
    let mut batch = WriteBatch::new();
    batch.require_absent(Table::Providers, record.provider_id.as_str());
    batch.put(record.provider_id.as_str(), &record);
    if let Some(mut user) = link {
        if user.role != medrelay_protocol::Role::Doctor || user.provider_id.is_some() {
            return Err(ScheduleError::Invalid {
                field: "userId".into(),
                message: "must name a doctor account without a provider profile".into(),
            });
        }
        user.provider_id = Some(record.provider_id.clone());
        batch.put(user.user_id.to_string(), &user);
    }
    match store.write(batch).await {
        Ok(_) => Ok(record),
        Err(e) => Err(ScheduleError::from_write(e)),
    }
}

/// Every appointment of a doctor, any status, oldest first (read from the
/// store: the doctor's actor holds only the window it decides on).
///
/// # Errors
/// A storage error.
pub fn provider_appointments(
    store: &Store,
    provider: &ProviderId,
) -> Result<Vec<AppointmentRecord>, StoreError> {
    let mut out = Vec::new();
    for id in indexed_ids::<ProviderAppointment>(store, provider.as_str(), usize::MAX)? {
        if let Some(record) = store.get::<AppointmentRecord>(id.as_str())? {
            out.push(record);
        }
    }
    out.sort_by_key(|a| a.slot.start);
    Ok(out)
}

/// The ids of a key prefix's index entries (`prefix/<id>`), in key order.
///
/// # Errors
/// A storage error.
pub fn indexed_ids<T: Record>(
    store: &Store,
    owner: &str,
    limit: usize,
) -> Result<Vec<AppointmentId>, StoreError> {
    let prefix = format!("{owner}/");
    Ok(store
        .scan_prefix::<T>(&prefix, limit)?
        .into_iter()
        .filter_map(|(key, _)| AppointmentId::parse(&key[prefix.len()..]).ok())
        .collect())
}
