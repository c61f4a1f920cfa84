//! `ScheduleActor`: one per doctor, owner of that doctor's bookings.
//!
//! It follows the keyed-actor template ([`crate::system::keyed`]), whose
//! one-owner rule means a revived actor forwards to its successor. The
//! store's cells would refuse an overlap either way; forwarding also keeps
//! boards and replies consistent.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::{Timestamp, ToSpan};
use medrelay_protocol::schedule::{AppointmentStatus, RequestedStatus};
use medrelay_protocol::{Channel, Event};

use super::changes::{self, Apply, HoldChange, Prepared, follow_change};
use super::holds::{self, HoldRecord, Released};
use super::messages::*;
use super::offers;
use super::rules::slots_for_date;
use super::state::{State, WINDOW_BEHIND};
use super::waitlist::{self, WaitlistEntry};
use super::{AppointmentRecord, BookingRules, ScheduleError};
use crate::accounts::{ProviderRecord, UserRecord};
use crate::fault::describe;
use crate::notify::ReminderPlan;
use crate::notify::doctors::{self, DoctorNotice, DoctorNoticeKind};
use crate::patients::StoredPatient;
use crate::stats;
use crate::store::{Committed, Store, Table, WriteBatch};
use crate::system::keyed::{self, Lifecycle, Owner};
use crate::system::{Retire, guarded};

/// One doctor's schedule.
pub struct ScheduleActor {
    pub(super) life: Lifecycle<ScheduleActor>,
    pub(super) rules: BookingRules,
    plan: Arc<ReminderPlan>,
    state: Option<State>,
}

impl ScheduleActor {
    /// An actor for `provider_id`; its state is loaded from the store on start.
    pub fn new(
        provider_id: String,
        store: Store,
        rules: BookingRules,
        plan: Arc<ReminderPlan>,
        idle_after: Duration,
        retire: Retire<ScheduleActor>,
    ) -> Self {
        Self {
            life: Lifecycle::new(provider_id, store, retire, idle_after),
            rules,
            plan,
            state: None,
        }
    }

    pub(super) fn load(&mut self) -> Result<&mut State, ScheduleError> {
        if self.state.is_none() {
            self.state = Some(State::load(
                self.life.store(),
                self.life.key(),
                Timestamp::now(),
            )?);
        }
        Ok(self.state.as_mut().expect("loaded above"))
    }

    fn book(&mut self, msg: Book) -> Prepared<AppointmentRecord> {
        let (rules, store, plan) = (self.rules, self.life.store().clone(), self.plan.clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let req = msg.request;
        if !matches!(req.status, None | Some(RequestedStatus::Scheduled)) {
            return Err(ScheduleError::Invalid {
                field: "status".into(),
                message: "a new appointment can only be Scheduled".into(),
            });
        }
        // Rules and the slot first: they answer from memory.
        let (slot, redeemed) = changes::free_slot(state, &req, &rules, now)?;
        if store
            .get::<StoredPatient>(req.patient_id.as_str())?
            .is_none()
        {
            return Err(ScheduleError::NotFound(format!(
                "no patient {}",
                req.patient_id
            )));
        }
        let by = msg.by;
        let from_waitlist = redeemed.as_ref().is_some_and(|h| h.offer.is_some());
        let (mut batch, mut apply, record) =
            changes::book(&state.provider, req, (slot, from_waitlist), by.clone(), now);
        stats::tally(&mut batch, store.stats_zone(), None, &record);
        plan.booked(&mut batch, &record, now);
        doctors::tell_doctor(&mut batch, &state.provider, None, &record, by.as_ref(), now);
        if let Some(hold) = redeemed {
            holds::release(&mut batch, &hold, Released::Booked);
            let left = offers::accepted(state, &mut batch, &hold);
            apply = Apply::Holds(Box::new(HoldChange {
                upsert: Some(record.clone()),
                released: vec![hold.hold_id],
                left: left.into_iter().collect(),
                ..HoldChange::default()
            }));
        }
        Ok((batch, apply, record))
    }

    fn update(&mut self, msg: Update) -> Prepared<AppointmentRecord> {
        let (rules, store, plan) = (self.rules, self.life.store().clone(), self.plan.clone());
        let now = Timestamp::now();
        let provider_id = self.life.key().to_owned();
        let state = self.load()?;
        let current = match state.booked.get(&msg.appointment_id) {
            Some(held) => held.clone(),
            // Outside the window, or no longer holding time: the store has it.
            None => store
                .get::<AppointmentRecord>(msg.appointment_id.as_str())?
                .filter(|a| a.provider_id.as_str() == provider_id)
                .ok_or_else(|| {
                    ScheduleError::NotFound(format!("no appointment {}", msg.appointment_id))
                })?,
        };
        let (change, by) = (msg.change, msg.by);
        let moving = change.appointment_date.is_some()
            || change.time_slot.is_some()
            || change.status == Some(RequestedStatus::Rescheduled);
        let prepared = if moving {
            if !matches!(
                change.status,
                None | Some(RequestedStatus::Rescheduled | RequestedStatus::Scheduled)
            ) {
                return Err(ScheduleError::Invalid {
                    field: "status".into(),
                    message: "a move cannot also change the status".into(),
                });
            }
            let date = change.appointment_date.unwrap_or(current.slot.date);
            let clock = change.time_slot.unwrap_or(current.slot.time_slot);
            changes::reschedule(
                state,
                current.clone(),
                (date, clock),
                &rules,
                by.clone(),
                now,
            )
        } else {
            let target = match change.status {
                None => {
                    return Err(ScheduleError::Invalid {
                        field: "status".into(),
                        message: "give appointmentDate/timeSlot to move, or a status".into(),
                    });
                }
                Some(RequestedStatus::Scheduled)
                    if current.status == AppointmentStatus::Scheduled =>
                {
                    return Ok((WriteBatch::new(), Apply::Upsert(current.clone()), current));
                }
                Some(RequestedStatus::Scheduled | RequestedStatus::Rescheduled) => {
                    AppointmentStatus::Scheduled
                }
                Some(RequestedStatus::CheckedIn) => AppointmentStatus::CheckedIn,
                Some(RequestedStatus::Completed) => AppointmentStatus::Completed,
                Some(RequestedStatus::Cancelled) => AppointmentStatus::Cancelled,
                Some(RequestedStatus::NoShow) => AppointmentStatus::NoShow,
            };
            changes::change_status(current.clone(), target, by.clone(), now)
        };
        let (mut batch, apply, after) = follow_change(&store, &plan, &current, prepared, now)?;
        if batch.is_empty() {
            return Ok((batch, apply, after));
        }
        let provider = &state.provider;
        doctors::tell_doctor(
            &mut batch,
            provider,
            Some(&current),
            &after,
            by.as_ref(),
            now,
        );
        // The time it gave back goes to the waitlist, if someone waits for it.
        let (was, now_at) = (&current.slot, &after.slot);
        let apart = now_at.end <= was.start || was.end <= now_at.start;
        let freed = current.status.holds_slot() && (!after.status.holds_slot() || apart);
        // Not offered back to the patient who gave it up.
        let except = (Some(&current.appointment_id), None);
        let given_up = [current.patient_id.clone()];
        let offered = freed
            .then(|| {
                let slot = (&current.slot, given_up.as_slice());
                offers::offer_freed(state, (&store, &mut batch), slot, except, &rules, now)
            })
            .flatten();
        let Some(offer) = offered else {
            return Ok((batch, apply, after));
        };
        let change = HoldChange {
            upsert: Some(after.clone()),
            held: vec![offer],
            ..HoldChange::default()
        };
        Ok((batch, Apply::Holds(Box::new(change)), after))
    }

    fn update_provider(&mut self, msg: UpdateProvider) -> Prepared<ProviderRecord> {
        let (rules, plan) = (self.rules, self.plan.clone());
        let store = self.life.store().clone();
        let now = Timestamp::now();
        let state = self.load()?;
        let mut provider = state.provider.clone();
        let patch = msg.patch;
        if let Some(v) = patch.name {
            provider.name = v;
        }
        if let Some(v) = patch.specialization {
            provider.specialization = v;
        }
        if let Some(v) = patch.contact_info {
            provider.contact_info = v;
        }
        if let Some(v) = patch.time_zone {
            provider.time_zone = v;
        }
        if let Some(v) = patch.slot_minutes {
            provider.slot_minutes = v;
        }
        if let Some(v) = patch.availability {
            provider.availability = v;
        }
        if let Some(v) = patch.exceptions {
            provider.exceptions = v;
        }
        let tz = super::rules::validate_hours(
            &provider.time_zone,
            provider.slot_minutes,
            &provider.availability,
            &provider.exceptions,
        )?;
        let mut batch = WriteBatch::new();
        batch.put(provider.provider_id.as_str(), &provider);
        batch.event(
            Channel::Board(provider.provider_id.clone()),
            Event::AvailabilityChanged {
                provider_id: provider.provider_id.clone(),
                at: now,
            },
        );
        let flagged = changes::recheck_hours(
            &mut batch,
            &state.booked,
            &provider,
            &tz,
            &rules,
            &plan,
            now,
        );
        let to_move: Vec<_> = flagged
            .iter()
            .filter(|a| a.needs_reschedule)
            .map(|a| a.appointment_id.clone())
            .collect();
        if !to_move.is_empty() {
            // The doctor hears once which appointments their change left
            // outside their hours; each patient hears of their own.
            let notice =
                DoctorNotice::listing(&provider, DoctorNoticeKind::NeedsReschedule, to_move);
            doctors::notify_doctor(&mut batch, now, &notice);
        }
        // Time the new hours opened goes to the waitlist, if someone waits.
        let offers =
            offers::offer_opened(state, (&provider, &tz), (&store, &mut batch), &rules, now);
        if !flagged.is_empty() {
            tracing::info!(
                provider = %provider.provider_id,
                changed = flagged.len(),
                "hours changed: appointments flagged or cleared for rescheduling"
            );
        }
        Ok((
            batch,
            Apply::Provider(Box::new(provider.clone()), tz, flagged, offers),
            provider,
        ))
    }

    fn delete_provider(&mut self, msg: DeleteProvider) -> Prepared<usize> {
        let (store, plan) = (self.life.store().clone(), self.plan.clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let ahead: Vec<AppointmentRecord> = state
            .booked
            .all()
            .filter(|a| a.slot.start > now)
            .cloned()
            .collect();
        if !ahead.is_empty() && !msg.cancel_appointments {
            return Err(ScheduleError::HasFutureAppointments(ahead.len()));
        }
        let mut batch = WriteBatch::new();
        let count = ahead.len();
        for appointment in ahead {
            let cancelled = changes::change_status(
                appointment.clone(),
                AppointmentStatus::Cancelled,
                msg.by.clone(),
                now,
            );
            let (b, _, _) = follow_change(&store, &plan, &appointment, cancelled, now)?;
            batch.absorb(b);
        }
        // Its holds end and its waitlist goes with it (patients' hold
        // limits are freed at once; nothing is offered).
        for hold in state.holds.values() {
            holds::release(&mut batch, hold, Released::Cancelled);
        }
        for entry in state.waitlist.values() {
            waitlist::remove(&mut batch, entry);
        }
        let provider = &state.provider;
        batch.delete(Table::Providers, provider.provider_id.as_str());
        if let Some(user_id) = &provider.user_id
            && let Some(mut user) = store.get::<UserRecord>(user_id.as_str())?
        {
            user.provider_id = None;
            batch.put(user_id.as_str(), &user);
        }
        Ok((batch, Apply::Deleted, count))
    }

    fn board(&mut self, msg: GetBoard) -> Result<Board, ScheduleError> {
        let state = self.load()?;
        let now = Timestamp::now();
        let today = now.to_zoned(state.tz.clone()).date();
        let from = msg.from.unwrap_or(today);
        let to = msg.to.unwrap_or_else(|| from.saturating_add(6.days()));
        check_range(from, to)?;
        let p = &state.provider;
        let mut slots = Vec::new();
        let mut date = from;
        while date <= to {
            for slot in slots_for_date(
                &state.tz,
                date,
                p.slot_minutes,
                &p.availability,
                &p.exceptions,
            ) {
                let booked = state.holder(&slot);
                let held = match booked {
                    Some(_) => None,
                    None => state.held(slot.start, slot.end, None, now).cloned(),
                };
                slots.push(BoardSlot { slot, booked, held });
            }
            date = date.saturating_add(1.day());
        }
        let mut needs_reschedule: Vec<AppointmentRecord> = state
            .booked
            .all()
            .filter(|a| a.needs_reschedule && a.slot.date >= from && a.slot.date <= to)
            .cloned()
            .collect();
        needs_reschedule.sort_by_key(|a| a.slot.start);
        Ok(Board {
            provider: state.provider.clone(),
            seq: state.board_seq,
            from,
            to,
            slots,
            needs_reschedule,
        })
    }

    /// Writes a prepared change and replies once it is durable; only then is
    /// the state changed. The mailbox waits meanwhile, so the next request
    /// sees this one's outcome.
    fn commit<T: 'static>(
        &mut self,
        prepared: Prepared<T>,
    ) -> AtomicResponse<Self, Result<T, ScheduleError>> {
        let (batch, apply, reply) = match prepared {
            Ok(p) => p,
            Err(e) => return keyed::refused(e),
        };
        let id = self.life.key();
        let board_event =
            batch.last_event_where(|c| matches!(c, Channel::Board(p) if p.as_str() == id));
        keyed::commit(
            self,
            batch,
            ScheduleError::from_write,
            move |act, committed| {
                act.apply(apply, committed, board_event);
                // New reminders or notices may be due before the scheduler's
                // next wake-up.
                act.plan.wake.notify_one();
                reply
            },
        )
    }

    fn apply(&mut self, apply: Apply, committed: &Committed, board_event: Option<usize>) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match apply {
            Apply::Deleted => {
                // Forgotten now; the interval retires the actor shortly.
                self.state = None;
                return;
            }
            Apply::Upsert(record) => state.booked.upsert(record),
            Apply::Provider(provider, tz, flagged, offers) => {
                state.provider = *provider;
                state.tz = tz;
                for record in flagged {
                    state.booked.upsert(record);
                }
                for hold in offers {
                    state.holds.insert(hold.hold_id.clone(), hold);
                }
            }
            Apply::Holds(change) => {
                let HoldChange {
                    upsert,
                    held,
                    released,
                    joined,
                    left,
                } = *change;
                if let Some(record) = upsert {
                    state.booked.upsert(record);
                }
                for id in released {
                    state.holds.remove(&id);
                }
                for hold in held {
                    state.holds.insert(hold.hold_id.clone(), hold);
                }
                if let Some(entry) = joined {
                    state.waitlist.insert(entry.entry_id.clone(), entry);
                }
                for id in left {
                    state.waitlist.remove(&id);
                }
            }
        }
        if let Some(seq) = board_event.and_then(|i| committed.seqs.get(i)) {
            state.board_seq = *seq;
        }
    }
}

fn check_range(from: jiff::civil::Date, to: jiff::civil::Date) -> Result<(), ScheduleError> {
    if to < from {
        return Err(ScheduleError::Invalid {
            field: "to".into(),
            message: "must not be before from".into(),
        });
    }
    let days = from.until(to).map(|s| s.get_days()).unwrap_or(i32::MAX);
    if days >= MAX_RANGE_DAYS {
        return Err(ScheduleError::Invalid {
            field: "to".into(),
            message: format!("a range spans at most {MAX_RANGE_DAYS} days"),
        });
    }
    Ok(())
}

keyed::keyed_actor!(ScheduleActor, "schedule");

impl Owner for ScheduleActor {
    fn lifecycle(&mut self) -> &mut Lifecycle<Self> {
        &mut self.life
    }

    fn forget(&mut self) {
        self.state = None;
    }

    fn load_now(&mut self) -> Result<(), String> {
        self.load().map(|_| ()).map_err(|e| describe(&e))
    }

    /// Retires soon after the provider turned out not to exist (or was
    /// deleted), so unknown ids cannot pile up actors; trims appointments
    /// that have passed.
    fn keep(&mut self) -> bool {
        match self.state.as_mut() {
            Some(state) => {
                state.booked.forget_before(Timestamp::now() - WINDOW_BEHIND);
                true
            }
            None => false,
        }
    }

    /// Releases holds whose time ran out, and stays up while any are left
    /// to release.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        if state.holds.is_empty() {
            return;
        }
        self.life.touch();
        if !state.lapsed(Timestamp::now()).is_empty() {
            ctx.notify(ReleaseLapsed);
        }
    }
}

keyed::writing_handlers!(
    ScheduleActor,
    ScheduleError,
    Book => AppointmentRecord: book,
    Update => AppointmentRecord: update,
    UpdateProvider => ProviderRecord: update_provider,
    DeleteProvider => usize: delete_provider,
    Hold => HoldRecord: hold,
    ReleaseHold => HoldRecord: release_hold,
    ReleaseLapsed => usize: release_lapsed,
    JoinWaitlist => WaitlistEntry: join_waitlist,
    LeaveWaitlist => WaitlistEntry: leave_waitlist,
);

impl Handler<GetBoard> for ScheduleActor {
    type Result = ResponseFuture<Result<Board, ScheduleError>>;

    fn handle(&mut self, msg: GetBoard, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            return keyed::forward(next, msg, ScheduleError::Internal);
        }
        let board = guarded(
            self,
            ctx,
            || Err(ScheduleError::Internal),
            |act, _| act.board(msg),
        );
        Box::pin(std::future::ready(board))
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<InjectPanic> for ScheduleActor {
    type Result = Result<(), ScheduleError>;

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(ScheduleError::Internal),
            |act, _| {
                // Corrupt the in-memory state first, so a test can see the restart
                // reload it from the store.
                if let Some(state) = act.state.as_mut() {
                    state.booked = Default::default();
                }
                panic!("injected fault for {}", act.life.key())
            },
        )
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<ParkRetirement> for ScheduleActor {
    type Result = ();

    fn handle(&mut self, msg: ParkRetirement, ctx: &mut Context<Self>) {
        self.life.retire_now(&ctx.address());
        let _ = msg.retired.send(());
        // Holding the arbiter thread is the point: the successor cannot
        // start serving until the test lets this actor stop.
        let _ = msg.resume.recv_timeout(Duration::from_secs(10));
        ctx.stop();
    }
}
