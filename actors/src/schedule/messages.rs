//! What a `ScheduleActor` is asked, and what it answers.

use actix::prelude::*;
use jiff::civil::Date;
use medrelay_protocol::PatientId;
use medrelay_protocol::UserId;
use medrelay_protocol::hold::HoldSlot;
use medrelay_protocol::profile::ContactInfo;
use medrelay_protocol::schedule::{
    AppointmentId, BookAppointment, DateException, DayAvailability, SlotTime, UpdateAppointment,
};

use super::holds::HoldRecord;
use super::waitlist::WaitlistEntry;
use super::{AppointmentRecord, ScheduleError};
use crate::accounts::ProviderRecord;

/// The most days one board or slot query may span.
pub const MAX_RANGE_DAYS: i32 = 31;

/// Book a slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AppointmentRecord, ScheduleError>")]
pub struct Book {
    /// The request (its `providerId` is this actor's).
    pub request: BookAppointment,
    /// Who asks.
    pub by: Option<UserId>,
}

/// Hold a slot for a patient for a few minutes.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<HoldRecord, ScheduleError>")]
pub struct Hold {
    /// The patient it is for (checked by the caller).
    pub patient_id: PatientId,
    /// The slot.
    pub request: HoldSlot,
    /// Who asks.
    pub by: Option<UserId>,
}

/// End a hold before its time (who may was checked by the caller).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<HoldRecord, ScheduleError>")]
pub struct ReleaseHold {
    /// The hold.
    pub hold_id: String,
}

/// Release the holds whose time has run out (the actor's own tick, and at
/// start for doctors with holds left by the last run).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<usize, ScheduleError>")]
pub struct ReleaseLapsed;

/// Put a patient on the doctor's waitlist.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WaitlistEntry, ScheduleError>")]
pub struct JoinWaitlist {
    /// The patient (checked by the caller).
    pub patient_id: PatientId,
    /// What they wait for.
    pub request: medrelay_protocol::waitlist::JoinWaitlist,
    /// Who asks.
    pub by: Option<UserId>,
}

/// Take an entry off the doctor's waitlist (who may was checked by the caller).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WaitlistEntry, ScheduleError>")]
pub struct LeaveWaitlist {
    /// The entry.
    pub entry_id: String,
}

/// Move an appointment or change its status.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AppointmentRecord, ScheduleError>")]
pub struct Update {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// The change.
    pub change: UpdateAppointment,
    /// Who asks.
    pub by: Option<UserId>,
}

/// The slots of a date range with who holds them, and the board `seq` that
/// state corresponds to.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Board, ScheduleError>")]
pub struct GetBoard {
    /// First date (doctor's zone).
    pub from: Option<Date>,
    /// Last date, inclusive.
    pub to: Option<Date>,
}

/// A board snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// The doctor.
    pub provider: ProviderRecord,
    /// The board channel's seq this snapshot reflects.
    pub seq: u64,
    /// First date.
    pub from: Date,
    /// Last date.
    pub to: Date,
    /// Every slot in the range.
    pub slots: Vec<BoardSlot>,
    /// Appointments in the range that no longer fit the doctor's hours
    /// (they may lie outside every slot above).
    pub needs_reschedule: Vec<AppointmentRecord>,
}

/// One slot on a board.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardSlot {
    /// When.
    pub slot: SlotTime,
    /// The appointment holding (part of) it, if any.
    pub booked: Option<Holder>,
    /// Else the live hold keeping it, if any.
    pub held: Option<HoldRecord>,
}

/// The appointment that holds a board slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// The appointment.
    pub appointment_id: AppointmentId,
    /// Its patient.
    pub patient_id: PatientId,
    /// Whether it waits to be moved (the doctor's hours changed under it).
    pub needs_reschedule: bool,
}

/// Changes to a provider profile; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    /// Display name.
    pub name: Option<String>,
    /// Specialization.
    pub specialization: Option<String>,
    /// Contact details.
    pub contact_info: Option<ContactInfo>,
    /// IANA zone.
    pub time_zone: Option<String>,
    /// Slot length.
    pub slot_minutes: Option<u16>,
    /// Weekly hours.
    pub availability: Option<Vec<DayAvailability>>,
    /// Date exceptions.
    pub exceptions: Option<Vec<DateException>>,
}

/// Update the provider profile. Appointments ahead that no longer fit the
/// new hours are flagged `needs_reschedule` in the same transaction.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ProviderRecord, ScheduleError>")]
pub struct UpdateProvider {
    /// The changes.
    pub patch: ProviderPatch,
}

/// Delete the provider; with `cancel_appointments`, its appointments ahead
/// are cancelled in the same transaction, otherwise their existence refuses it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, ScheduleError>")]
pub struct DeleteProvider {
    /// Cancel appointments ahead instead of refusing.
    pub cancel_appointments: bool,
    /// Who asks.
    pub by: Option<UserId>,
}

/// Panics inside the handler: proves one doctor's crash spares the others.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ScheduleError>")]
pub struct InjectPanic;

/// Test hook for the hand-over between two actors of one doctor: the actor
/// takes itself out of the registry as if idle, says so on `retired`, and
/// holds its thread until `resume` (or 10 s) before it stops. Meanwhile a
/// test starts its successor and queues messages to the old address, which
/// is exactly the interleaving a late message meets in production.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ParkRetirement {
    /// Told once the actor left the registry.
    pub retired: std::sync::mpsc::SyncSender<()>,
    /// Waited on before the actor stops.
    pub resume: std::sync::mpsc::Receiver<()>,
}
