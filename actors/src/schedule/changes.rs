//! The write batch of each schedule change, built from the doctor's state
//! without actix, so the rules can be tested on their own.
//!
//! Every change that takes time reserves the cells it covers under the
//! doctor and under the patient (each `require_absent`); every change that
//! gives time back deletes them, in the same batch as the record.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use medrelay_protocol::schedule::{AppointmentStatus, BookAppointment, ClockTime, SlotTime};
use medrelay_protocol::{Channel, Event, UserId};

use super::holds::HoldRecord;
use super::offers;
use super::rules::{cells, fits_hours};
use super::state::{Booked, State, free_slots};
use super::waitlist::WaitlistEntry;
use super::{
    AppointmentRecord, BookingRules, HistoryAction, HistoryEntry, IndexEntry, PatientAppointment,
    PatientCell, ProviderAppointment, ProviderCell, ScheduleError, new_appointment_id,
};
use crate::accounts::ProviderRecord;
use crate::notify::{self, ReminderKind, ReminderPlan};
use crate::stats;
use crate::store::{Record, Store, Table, WriteBatch};

/// What to do to the in-memory state once a write is durable.
pub enum Apply {
    /// An appointment changed.
    Upsert(AppointmentRecord),
    /// The profile changed, and with it these appointments' flags; the
    /// holds are offers of time it opened.
    Provider(
        Box<ProviderRecord>,
        TimeZone,
        Vec<AppointmentRecord>,
        Vec<HoldRecord>,
    ),
    /// Holds or waitlist entries changed (and maybe an appointment).
    Holds(Box<HoldChange>),
    /// The provider is gone.
    Deleted,
}

/// What a change did to the doctor's holds and waitlist.
#[derive(Debug, Default)]
pub struct HoldChange {
    /// The appointment it booked, moved or cancelled.
    pub upsert: Option<AppointmentRecord>,
    /// Holds (and offers) it made.
    pub held: Vec<HoldRecord>,
    /// Holds it ended.
    pub released: Vec<String>,
    /// A waitlist entry it added.
    pub joined: Option<WaitlistEntry>,
    /// Waitlist entries it removed.
    pub left: Vec<String>,
}

/// A change ready to commit: its batch, what to apply after, the reply.
pub type Prepared<T> = Result<(WriteBatch, Apply, T), ScheduleError>;

/// The slot a booking request asks for, if the doctor's hours, the
/// booking limits and the held appointments allow it, and the hold the
/// booking takes: the one it names, or else the patient's own live hold
/// on that very slot (an offer they book without quoting it).
///
/// # Errors
/// The booking rules' errors, `SlotTaken` or `SlotHeld` when the state
/// holds an overlap, `Invalid` for a hold that does not fit the booking.
pub fn free_slot(
    state: &State,
    request: &BookAppointment,
    rules: &BookingRules,
    now: Timestamp,
) -> Result<(SlotTime, Option<HoldRecord>), ScheduleError> {
    let slot = state.bookable(request.appointment_date, request.time_slot, rules, now)?;
    let redeemed = match &request.hold_id {
        Some(id) => Some(offers::redeem(state, id, &request.patient_id, &slot, now)?),
        None => state
            .held(slot.start, slot.end, None, now)
            .filter(|h| h.patient_id == request.patient_id && h.slot.start == slot.start),
    };
    // The slot's own hold, when the booking takes it, keeps nobody out.
    state.check_free(&slot, (None, redeemed.map(|h| h.hold_id.as_str())), now)?;
    Ok((slot, redeemed.cloned()))
}

/// A new appointment in a slot [`free_slot`] found: its record, index
/// entries, cells, and the booking event. `from_waitlist` marks a booking
/// that took a waitlist offer.
pub fn book(
    provider: &ProviderRecord,
    request: BookAppointment,
    (slot, from_waitlist): (SlotTime, bool),
    by: Option<UserId>,
    now: Timestamp,
) -> (WriteBatch, Apply, AppointmentRecord) {
    let record = AppointmentRecord {
        appointment_id: new_appointment_id(),
        provider_id: provider.provider_id.clone(),
        patient_id: request.patient_id,
        slot,
        status: AppointmentStatus::Scheduled,
        history: vec![HistoryEntry {
            at: now,
            by,
            action: HistoryAction::Booked,
            from: None,
        }],
        history_dropped: 0,
        reschedules_dropped: 0,
        from_waitlist,
        needs_reschedule: false,
    };
    let mut batch = WriteBatch::new();
    let id = record.appointment_id.as_str();
    batch.put(
        format!("{}/{id}", record.provider_id),
        &ProviderAppointment(IndexEntry {}),
    );
    batch.put(
        format!("{}/{id}", record.patient_id),
        &PatientAppointment(IndexEntry {}),
    );
    reserve_cells(&mut batch, &record, None);
    batch.put(id, &record);
    emit(
        &mut batch,
        &record,
        Event::AppointmentBooked {
            appointment_id: record.appointment_id.clone(),
            provider_id: record.provider_id.clone(),
            patient_id: Some(record.patient_id.clone()),
            slot: record.slot.clone(),
        },
    );
    (batch, Apply::Upsert(record.clone()), record)
}

/// Moves a Scheduled appointment: takes the new cells and frees the old
/// ones in one batch. A move clears `needs_reschedule`.
///
/// # Errors
/// `InvalidTransition` for an appointment that is not Scheduled, the
/// booking rules' errors, `SlotTaken`.
pub fn reschedule(
    state: &State,
    current: AppointmentRecord,
    (date, clock): (Date, ClockTime),
    rules: &BookingRules,
    by: Option<UserId>,
    now: Timestamp,
) -> Prepared<AppointmentRecord> {
    if current.status != AppointmentStatus::Scheduled {
        return Err(ScheduleError::InvalidTransition(format!(
            "a {} appointment cannot be moved",
            current.status.as_str()
        )));
    }
    if date == current.slot.date && clock == current.slot.time_slot {
        return Ok((WriteBatch::new(), Apply::Upsert(current.clone()), current));
    }
    let to = state.bookable(date, clock, rules, now)?;
    state.check_free(&to, (Some(&current.appointment_id), None), now)?;
    let from = current.slot.clone();
    let mut record = current;
    record.slot = to.clone();
    record.needs_reschedule = false;
    record.push_history(HistoryEntry {
        at: now,
        by,
        action: HistoryAction::Rescheduled,
        from: Some(from.clone()),
    });
    let mut batch = WriteBatch::new();
    reserve_cells(&mut batch, &record, Some(&from));
    free_cells(&mut batch, &record, &from, Some(&record.slot));
    batch.put(record.appointment_id.as_str(), &record);
    emit(
        &mut batch,
        &record,
        Event::AppointmentRescheduled {
            appointment_id: record.appointment_id.clone(),
            provider_id: record.provider_id.clone(),
            patient_id: Some(record.patient_id.clone()),
            from,
            to,
        },
    );
    Ok((batch, Apply::Upsert(record.clone()), record))
}

/// Changes an appointment's status; one that stops holding its time
/// (cancelled, no-show, completed) frees the doctor's and the patient's cells.
///
/// # Errors
/// `InvalidTransition` for a change the status does not allow.
pub fn change_status(
    current: AppointmentRecord,
    target: AppointmentStatus,
    by: Option<UserId>,
    now: Timestamp,
) -> Prepared<AppointmentRecord> {
    if !current.status.may_become(target) {
        return Err(ScheduleError::InvalidTransition(format!(
            "a {} appointment cannot become {}",
            current.status.as_str(),
            target.as_str()
        )));
    }
    let mut record = current;
    record.status = target;
    record.push_history(HistoryEntry {
        at: now,
        by,
        action: HistoryAction::Status(target),
        from: None,
    });
    let mut batch = WriteBatch::new();
    if !target.holds_slot() {
        free_cells(&mut batch, &record, &record.slot, None);
    }
    let event = if target == AppointmentStatus::Cancelled {
        Event::AppointmentCancelled {
            appointment_id: record.appointment_id.clone(),
            provider_id: record.provider_id.clone(),
            patient_id: Some(record.patient_id.clone()),
            slot: record.slot.clone(),
            cancelled_at: Some(now),
        }
    } else {
        Event::AppointmentStatusChanged {
            appointment_id: record.appointment_id.clone(),
            provider_id: record.provider_id.clone(),
            patient_id: Some(record.patient_id.clone()),
            slot: record.slot.clone(),
            status: target,
        }
    };
    batch.put(record.appointment_id.as_str(), &record);
    emit(&mut batch, &record, event);
    Ok((batch, Apply::Upsert(record.clone()), record))
}

/// Re-checks the appointments ahead against new hours: those that stopped
/// fitting are flagged `needs_reschedule` (event with the next free slots
/// on the board and the patient's channel, and a notice to the patient);
/// flagged ones that fit again are cleared. Times never change here.
pub fn recheck_hours(
    batch: &mut WriteBatch,
    booked: &Booked,
    provider: &ProviderRecord,
    tz: &TimeZone,
    rules: &BookingRules,
    plan: &ReminderPlan,
    now: Timestamp,
) -> Vec<AppointmentRecord> {
    let mut ahead: Vec<&AppointmentRecord> = booked
        .all()
        .filter(|a| a.status == AppointmentStatus::Scheduled && a.slot.start > now)
        .collect();
    ahead.sort_by_key(|a| a.slot.start);
    let mut changed = Vec::new();
    for appointment in ahead {
        let fits = fits_hours(
            tz,
            appointment.slot.start,
            appointment.slot.end,
            &provider.availability,
            &provider.exceptions,
        );
        if fits != appointment.needs_reschedule {
            continue;
        }
        // The flag moves no analytics figure (see `stats::appointments`).
        let mut record = appointment.clone();
        record.needs_reschedule = !fits;
        record.push_history(HistoryEntry {
            at: now,
            by: None,
            action: if fits {
                HistoryAction::RescheduleCleared
            } else {
                HistoryAction::NeedsReschedule
            },
            from: None,
        });
        let suggestions = if fits {
            Vec::new()
        } else {
            free_slots(provider, tz, booked, record.slot.date, rules, now)
        };
        batch.put(record.appointment_id.as_str(), &record);
        if !fits {
            plan.notice(
                batch,
                &record.appointment_id,
                ReminderKind::NeedsReschedule,
                (record.changes(), now),
                suggestions.clone(),
            );
        }
        emit(
            batch,
            &record,
            Event::AppointmentNeedsReschedule {
                appointment_id: record.appointment_id.clone(),
                provider_id: record.provider_id.clone(),
                patient_id: Some(record.patient_id.clone()),
                slot: record.slot.clone(),
                needs_reschedule: record.needs_reschedule,
                suggestions,
            },
        );
        changed.push(record);
    }
    changed
}

/// Keeps an appointment's analytics figures and reminders in step with a
/// prepared change, in the same batch: a move re-plans the reminders and
/// sends a notice, a cancellation removes them and sends a notice, any
/// other status change away from Scheduled just removes them.
///
/// # Errors
/// The prepared change's error, or a storage error reading the reminders.
pub fn follow_change(
    store: &Store,
    plan: &ReminderPlan,
    before: &AppointmentRecord,
    prepared: Prepared<AppointmentRecord>,
    now: Timestamp,
) -> Prepared<AppointmentRecord> {
    let (mut batch, apply, after) = prepared?;
    if !batch.is_empty() {
        stats::tally(&mut batch, store.stats_zone(), Some(before), &after);
    }
    if batch.is_empty() || (before.slot == after.slot && before.status == after.status) {
        return Ok((batch, apply, after));
    }
    let id = &after.appointment_id;
    let keys = notify::pending_keys(store, id)?;
    plan.unschedule(&mut batch, id, &keys);
    let change = after.changes();
    match after.status {
        AppointmentStatus::Scheduled => {
            plan.schedule(&mut batch, &after, now);
            if before.slot != after.slot {
                let kind = ReminderKind::Rescheduled;
                plan.notice(&mut batch, id, kind, (change, now), Vec::new());
            }
        }
        AppointmentStatus::Cancelled => {
            let kind = ReminderKind::Cancelled;
            plan.notice(&mut batch, id, kind, (change, now), Vec::new());
        }
        _ => {}
    }
    Ok((batch, apply, after))
}

/// Reserves the doctor's and the patient's cells of `record`'s slot, each
/// required to be free, except those `keep` (the slot it leaves) holds already.
pub fn reserve_cells(batch: &mut WriteBatch, record: &AppointmentRecord, keep: Option<&SlotTime>) {
    let id = &record.appointment_id;
    let doctor = ProviderCell {
        appointment_id: id.clone(),
    };
    reserve(batch, record.provider_id.as_str(), record, keep, &doctor);
    let patient = PatientCell {
        appointment_id: id.clone(),
    };
    reserve(batch, record.patient_id.as_str(), record, keep, &patient);
}

/// Reserves `owner`'s cells of `record`'s slot in `holder`'s table.
fn reserve<T: Record>(
    batch: &mut WriteBatch,
    owner: &str,
    record: &AppointmentRecord,
    keep: Option<&SlotTime>,
    holder: &T,
) {
    let kept = keep.map(|slot| cells(owner, slot)).unwrap_or_default();
    for cell in cells(owner, &record.slot) {
        if !kept.contains(&cell) {
            batch.require_absent(T::TABLE, cell.clone());
            batch.put(cell, holder);
        }
    }
}

/// Frees the doctor's and the patient's cells of `slot`, except those
/// `still` (the slot it moves to) covers.
pub fn free_cells(
    batch: &mut WriteBatch,
    record: &AppointmentRecord,
    slot: &SlotTime,
    still: Option<&SlotTime>,
) {
    for (owner, table) in owners(record) {
        let kept = still.map(|s| cells(owner, s)).unwrap_or_default();
        for cell in cells(owner, slot) {
            if !kept.contains(&cell) {
                batch.delete(table, cell);
            }
        }
    }
}

fn owners(record: &AppointmentRecord) -> [(&str, Table); 2] {
    [
        (record.provider_id.as_str(), Table::ProviderCells),
        (record.patient_id.as_str(), Table::PatientCells),
    ]
}

/// Puts the event on the doctor's board (first: its seq is the board's) and
/// on the patient's channel.
pub fn emit(batch: &mut WriteBatch, record: &AppointmentRecord, event: Event) {
    batch.event(Channel::Board(record.provider_id.clone()), event.clone());
    batch.event(Channel::Patient(record.patient_id.clone()), event);
}
