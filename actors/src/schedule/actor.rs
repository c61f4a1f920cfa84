//! `ScheduleActor`: one per doctor, owner of that doctor's bookings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use medrelay_protocol::profile::ContactInfo;
use medrelay_protocol::schedule::{
    AppointmentId, AppointmentStatus, BookAppointment, ClockTime, DateException, DayAvailability,
    RequestedStatus, SlotTime, UpdateAppointment,
};
use medrelay_protocol::{Channel, Event, PatientId, UserId};

use super::rules::{self, find_slot, patient_cells, slots_for_date};
use super::{
    AppointmentRecord, BookingRules, HistoryEntry, IndexEntry, PatientAppointment, PatientCell,
    ProviderAppointment, ScheduleError, indexed_ids, new_appointment_id,
};
use crate::accounts::{PatientRecord, ProviderRecord, UserRecord};
use crate::notify::{self, ReminderKind, ReminderPlan};
use crate::store::{Committed, Store, Table, WriteBatch, WriteError};
use crate::system::{IdleTimer, KeyedActor, Retire, count_restart, guarded};

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

/// Read one appointment.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AppointmentRecord, ScheduleError>")]
pub struct GetAppointment {
    /// The appointment.
    pub appointment_id: AppointmentId,
}

/// List this doctor's appointments starting in `[from, to)`, optionally of one status.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<AppointmentRecord>, ScheduleError>")]
pub struct ListAppointments {
    /// Earliest start.
    pub from: Option<Timestamp>,
    /// Latest start (exclusive).
    pub to: Option<Timestamp>,
    /// Only this status.
    pub status: Option<AppointmentStatus>,
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
}

/// One slot on a board.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardSlot {
    /// When.
    pub slot: SlotTime,
    /// The appointment holding it, if booked.
    pub booked: Option<(AppointmentId, PatientId)>,
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

/// Update the provider profile.
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

/// The loaded state of one doctor.
struct State {
    provider: ProviderRecord,
    tz: TimeZone,
    appointments: HashMap<AppointmentId, AppointmentRecord>,
    /// Start instant → the appointment holding that slot.
    taken: BTreeMap<Timestamp, AppointmentId>,
    board_seq: u64,
}

impl State {
    fn insert(&mut self, record: AppointmentRecord) {
        if let Some(old) = self.appointments.get(&record.appointment_id)
            && self.taken.get(&old.slot.start) == Some(&old.appointment_id)
        {
            self.taken.remove(&old.slot.start);
        }
        if record.status.holds_slot() {
            self.taken
                .insert(record.slot.start, record.appointment_id.clone());
        }
        self.appointments
            .insert(record.appointment_id.clone(), record);
    }

    /// The bookable slot at `date`/`clock`, checked against hours and limits.
    fn bookable(
        &self,
        date: Date,
        clock: ClockTime,
        rules: &BookingRules,
    ) -> Result<SlotTime, ScheduleError> {
        let p = &self.provider;
        let slot = find_slot(
            &self.tz,
            date,
            clock,
            p.slot_minutes,
            &p.availability,
            &p.exceptions,
        )
        .ok_or_else(|| {
            ScheduleError::OutsideAvailability(format!(
                "{date} {clock} is not a slot of {} (hours in {}, {}-minute slots)",
                p.provider_id, p.time_zone, p.slot_minutes
            ))
        })?;
        let now = Timestamp::now();
        if slot.start < now + rules.min_notice {
            return Err(ScheduleError::TooSoon(format!(
                "{date} {clock} is in the past or sooner than the minimum notice"
            )));
        }
        if slot.start > now + rules.horizon {
            return Err(ScheduleError::TooFar(format!(
                "{date} {clock} is beyond the booking horizon"
            )));
        }
        Ok(slot)
    }
}

/// What to do to the in-memory state once a write is durable.
enum Apply {
    Upsert(AppointmentRecord),
    Provider(Box<ProviderRecord>, TimeZone),
    Deleted,
}

type Prepared<T> = Result<(WriteBatch, Apply, T), ScheduleError>;

/// One doctor's schedule.
pub struct ScheduleActor {
    provider_id: String,
    store: Store,
    rules: BookingRules,
    plan: Arc<ReminderPlan>,
    state: Option<State>,
    idle: IdleTimer,
    retire: Retire<ScheduleActor>,
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
            provider_id,
            store,
            rules,
            plan,
            state: None,
            idle: IdleTimer::new(idle_after),
            retire,
        }
    }

    fn load(&mut self) -> Result<&mut State, ScheduleError> {
        if self.state.is_none() {
            let Some(provider) = self.store.get::<ProviderRecord>(&self.provider_id)? else {
                return Err(ScheduleError::NotFound(format!(
                    "no provider {}",
                    self.provider_id
                )));
            };
            let tz = TimeZone::get(&provider.time_zone).map_err(|e| {
                ScheduleError::Storage(format!("stored time zone {}: {e}", provider.time_zone))
            })?;
            let board_seq = self
                .store
                .channel_head(&Channel::Board(provider.provider_id.clone()))?;
            let mut state = State {
                provider,
                tz,
                appointments: HashMap::new(),
                taken: BTreeMap::new(),
                board_seq,
            };
            for id in
                indexed_ids::<ProviderAppointment>(&self.store, &self.provider_id, usize::MAX)?
            {
                if let Some(record) = self.store.get::<AppointmentRecord>(id.as_str())? {
                    state.insert(record);
                }
            }
            self.state = Some(state);
        }
        Ok(self.state.as_mut().expect("loaded above"))
    }

    fn book(&mut self, msg: Book) -> Prepared<AppointmentRecord> {
        let rules = self.rules;
        let store = self.store.clone();
        let state = self.load()?;
        let req = msg.request;
        if !matches!(req.status, None | Some(RequestedStatus::Scheduled)) {
            return Err(ScheduleError::Invalid {
                field: "status".into(),
                message: "a new appointment can only be Scheduled".into(),
            });
        }
        let slot = state.bookable(req.appointment_date, req.time_slot, &rules)?;
        if state.taken.contains_key(&slot.start) {
            return Err(ScheduleError::SlotTaken);
        }
        if store
            .get::<PatientRecord>(req.patient_id.as_str())?
            .is_none()
        {
            return Err(ScheduleError::NotFound(format!(
                "no patient {}",
                req.patient_id
            )));
        }
        let record = AppointmentRecord {
            appointment_id: new_appointment_id(),
            provider_id: state.provider.provider_id.clone(),
            patient_id: req.patient_id,
            slot,
            status: AppointmentStatus::Scheduled,
            history: vec![HistoryEntry {
                at: Timestamp::now(),
                by: msg.by,
                action: "Booked".into(),
                from: None,
            }],
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
        reserve_cells(&mut batch, &record, &[]);
        batch.put(id, &record);
        self.plan.schedule(&mut batch, &record, Timestamp::now());
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
        Ok((batch, Apply::Upsert(record.clone()), record))
    }

    fn update(&mut self, msg: Update) -> Prepared<AppointmentRecord> {
        let rules = self.rules;
        let state = self.load()?;
        let current = state
            .appointments
            .get(&msg.appointment_id)
            .cloned()
            .ok_or_else(|| {
                ScheduleError::NotFound(format!("no appointment {}", msg.appointment_id))
            })?;
        let change = msg.change;
        let moving = change.appointment_date.is_some()
            || change.time_slot.is_some()
            || change.status == Some(RequestedStatus::Rescheduled);
        if moving {
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
            let moved = reschedule(state, current.clone(), date, clock, &rules, msg.by);
            return self.follow_reminders(&current, moved);
        }
        let target = match change.status {
            None => {
                return Err(ScheduleError::Invalid {
                    field: "status".into(),
                    message: "give appointmentDate/timeSlot to move, or a status".into(),
                });
            }
            Some(RequestedStatus::Scheduled) if current.status == AppointmentStatus::Scheduled => {
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
        let changed = change_status(current.clone(), target, msg.by);
        self.follow_reminders(&current, changed)
    }

    /// See [`follow_reminders`].
    fn follow_reminders(
        &self,
        before: &AppointmentRecord,
        prepared: Prepared<AppointmentRecord>,
    ) -> Prepared<AppointmentRecord> {
        follow_reminders(&self.store, &self.plan, before, prepared)
    }

    fn update_provider(&mut self, msg: UpdateProvider) -> Prepared<ProviderRecord> {
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
        let tz = rules::validate_hours(
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
                at: Timestamp::now(),
            },
        );
        Ok((
            batch,
            Apply::Provider(Box::new(provider.clone()), tz),
            provider,
        ))
    }

    fn delete_provider(&mut self, msg: DeleteProvider) -> Prepared<usize> {
        let store = self.store.clone();
        let plan = self.plan.clone();
        let state = self.load()?;
        let now = Timestamp::now();
        let ahead: Vec<AppointmentRecord> = state
            .appointments
            .values()
            .filter(|a| a.status.holds_slot() && a.slot.start > now)
            .cloned()
            .collect();
        if !ahead.is_empty() && !msg.cancel_appointments {
            return Err(ScheduleError::HasFutureAppointments(ahead.len()));
        }
        let mut batch = WriteBatch::new();
        let count = ahead.len();
        for appointment in ahead {
            let cancelled = change_status(
                appointment.clone(),
                AppointmentStatus::Cancelled,
                msg.by.clone(),
            );
            let (b, _, _) = follow_reminders(&store, &plan, &appointment, cancelled)?;
            batch.absorb(b);
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
        let today = Timestamp::now().to_zoned(state.tz.clone()).date();
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
                let booked = state
                    .taken
                    .get(&slot.start)
                    .and_then(|id| state.appointments.get(id))
                    .map(|a| (a.appointment_id.clone(), a.patient_id.clone()));
                slots.push(BoardSlot { slot, booked });
            }
            date = date.saturating_add(1.day());
        }
        Ok(Board {
            provider: state.provider.clone(),
            seq: state.board_seq,
            from,
            to,
            slots,
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
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        if batch.is_empty() {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(reply))));
        }
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.write(batch).await }
                .into_actor(self)
                .map(move |written, act, _| match written {
                    Ok(committed) => {
                        act.apply(apply, &committed);
                        // New reminders or notices may be due before the
                        // scheduler's next wake-up.
                        act.plan.wake.notify_one();
                        Ok(reply)
                    }
                    Err(WriteError::Exists { .. }) => Err(ScheduleError::PatientConflict),
                    Err(e) => Err(ScheduleError::Storage(e.to_string())),
                }),
        ))
    }

    fn apply(&mut self, apply: Apply, committed: &Committed) {
        match apply {
            Apply::Deleted => {
                // Forgotten now; the interval retires the actor shortly.
                self.state = None;
                return;
            }
            Apply::Upsert(record) => {
                if let Some(state) = self.state.as_mut() {
                    state.insert(record);
                }
            }
            Apply::Provider(provider, tz) => {
                if let Some(state) = self.state.as_mut() {
                    state.provider = *provider;
                    state.tz = tz;
                }
            }
        }
        // The board event is always the first of a batch.
        if let (Some(state), Some(seq)) = (self.state.as_mut(), committed.seqs.first()) {
            state.board_seq = *seq;
        }
    }
}

fn check_range(from: Date, to: Date) -> Result<(), ScheduleError> {
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

/// Reserves the patient's cells of `record`'s slot that `keep` does not
/// already hold, each required to be free.
fn reserve_cells(batch: &mut WriteBatch, record: &AppointmentRecord, keep: &[String]) {
    for cell in patient_cells(record.patient_id.as_str(), &record.slot) {
        if !keep.contains(&cell) {
            batch.require_absent(Table::PatientCells, cell.clone());
            batch.put(
                cell,
                &PatientCell {
                    appointment_id: record.appointment_id.clone(),
                },
            );
        }
    }
}

/// Puts the event on the doctor's board (first: its seq is the board's) and
/// on the patient's channel.
fn emit(batch: &mut WriteBatch, record: &AppointmentRecord, event: Event) {
    batch.event(Channel::Board(record.provider_id.clone()), event.clone());
    batch.event(Channel::Patient(record.patient_id.clone()), event);
}

/// Keeps an appointment's reminders in step with a prepared change, in the
/// same batch: a move re-plans them and sends a notice, a cancellation
/// removes them and sends a notice, any other status change away from
/// Scheduled just removes them.
fn follow_reminders(
    store: &Store,
    plan: &ReminderPlan,
    before: &AppointmentRecord,
    prepared: Prepared<AppointmentRecord>,
) -> Prepared<AppointmentRecord> {
    let (mut batch, apply, after) = prepared?;
    if batch.is_empty() || (before.slot == after.slot && before.status == after.status) {
        return Ok((batch, apply, after));
    }
    let now = Timestamp::now();
    let id = &after.appointment_id;
    let keys = notify::pending_keys(store, id)?;
    plan.unschedule(&mut batch, id, &keys);
    let change = after.history.len();
    match after.status {
        AppointmentStatus::Scheduled => {
            plan.schedule(&mut batch, &after, now);
            if before.slot != after.slot {
                plan.notice(&mut batch, id, ReminderKind::Rescheduled, change, now);
            }
        }
        AppointmentStatus::Cancelled => {
            plan.notice(&mut batch, id, ReminderKind::Cancelled, change, now);
        }
        _ => {}
    }
    Ok((batch, apply, after))
}

fn reschedule(
    state: &State,
    current: AppointmentRecord,
    date: Date,
    clock: ClockTime,
    rules: &BookingRules,
    by: Option<UserId>,
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
    let to = state.bookable(date, clock, rules)?;
    if state
        .taken
        .get(&to.start)
        .is_some_and(|holder| *holder != current.appointment_id)
    {
        return Err(ScheduleError::SlotTaken);
    }
    let old_cells = patient_cells(current.patient_id.as_str(), &current.slot);
    let from = current.slot.clone();
    let mut record = current;
    record.slot = to.clone();
    record.history.push(HistoryEntry {
        at: Timestamp::now(),
        by,
        action: "Rescheduled".into(),
        from: Some(from.clone()),
    });
    let new_cells = patient_cells(record.patient_id.as_str(), &record.slot);
    let mut batch = WriteBatch::new();
    // Take the new slot and free the old one in one transaction.
    reserve_cells(&mut batch, &record, &old_cells);
    for cell in old_cells.iter().filter(|c| !new_cells.contains(c)) {
        batch.delete(Table::PatientCells, cell.clone());
    }
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

fn change_status(
    current: AppointmentRecord,
    target: AppointmentStatus,
    by: Option<UserId>,
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
    record.history.push(HistoryEntry {
        at: Timestamp::now(),
        by,
        action: target.as_str().into(),
        from: None,
    });
    let mut batch = WriteBatch::new();
    let event = if target == AppointmentStatus::Cancelled {
        for cell in patient_cells(record.patient_id.as_str(), &record.slot) {
            batch.delete(Table::PatientCells, cell);
        }
        Event::AppointmentCancelled {
            appointment_id: record.appointment_id.clone(),
            provider_id: record.provider_id.clone(),
            patient_id: Some(record.patient_id.clone()),
            slot: record.slot.clone(),
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

impl Actor for ScheduleActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Revived after retiring (a late message held the address): take
        // the key back, so the next request does not start a second actor.
        self.retire.reinstate(&ctx.address());
        // (Re)load from the store: after a panic the in-memory state may be
        // half-changed, and the store is the truth.
        self.state = None;
        if let Err(e) = self.load() {
            tracing::debug!(provider = %self.provider_id, error = %e, "schedule not loaded at start");
        }
        self.idle.touch();
        // Retire when idle, and soon after the provider turned out not to
        // exist (or was deleted), so unknown ids cannot pile up actors.
        let every = self.idle.check_every().min(Duration::from_secs(5));
        ctx.run_interval(every, |act, ctx| {
            if act.idle.expired() || act.state.is_none() {
                act.retire.now(&ctx.address());
                ctx.stop();
            }
        });
    }
}

impl Supervised for ScheduleActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        count_restart(Self::KIND);
    }
}

impl KeyedActor for ScheduleActor {
    const KIND: &'static str = "schedule";
}

macro_rules! writing_handler {
    ($msg:ty, $reply:ty, $method:ident) => {
        impl Handler<$msg> for ScheduleActor {
            type Result = AtomicResponse<Self, Result<$reply, ScheduleError>>;

            fn handle(&mut self, msg: $msg, ctx: &mut Context<Self>) -> Self::Result {
                self.idle.touch();
                let prepared = guarded(
                    self,
                    ctx,
                    || Err(ScheduleError::Internal),
                    |act, _| act.$method(msg),
                );
                self.commit(prepared)
            }
        }
    };
}
writing_handler!(Book, AppointmentRecord, book);
writing_handler!(Update, AppointmentRecord, update);
writing_handler!(UpdateProvider, ProviderRecord, update_provider);
writing_handler!(DeleteProvider, usize, delete_provider);

impl Handler<GetBoard> for ScheduleActor {
    type Result = Result<Board, ScheduleError>;

    fn handle(&mut self, msg: GetBoard, ctx: &mut Context<Self>) -> Self::Result {
        self.idle.touch();
        guarded(
            self,
            ctx,
            || Err(ScheduleError::Internal),
            |act, _| act.board(msg),
        )
    }
}

impl Handler<GetAppointment> for ScheduleActor {
    type Result = Result<AppointmentRecord, ScheduleError>;

    fn handle(&mut self, msg: GetAppointment, ctx: &mut Context<Self>) -> Self::Result {
        self.idle.touch();
        guarded(
            self,
            ctx,
            || Err(ScheduleError::Internal),
            |act, _| {
                act.load()?
                    .appointments
                    .get(&msg.appointment_id)
                    .cloned()
                    .ok_or_else(|| {
                        ScheduleError::NotFound(format!("no appointment {}", msg.appointment_id))
                    })
            },
        )
    }
}

impl Handler<ListAppointments> for ScheduleActor {
    type Result = Result<Vec<AppointmentRecord>, ScheduleError>;

    fn handle(&mut self, msg: ListAppointments, ctx: &mut Context<Self>) -> Self::Result {
        self.idle.touch();
        guarded(
            self,
            ctx,
            || Err(ScheduleError::Internal),
            |act, _| {
                let mut out: Vec<AppointmentRecord> = act
                    .load()?
                    .appointments
                    .values()
                    .filter(|a| msg.from.is_none_or(|f| a.slot.start >= f))
                    .filter(|a| msg.to.is_none_or(|t| a.slot.start < t))
                    .filter(|a| msg.status.is_none_or(|s| a.status == s))
                    .cloned()
                    .collect();
                out.sort_by_key(|a| a.slot.start);
                Ok(out)
            },
        )
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
                    state.taken.clear();
                }
                panic!("injected fault for {}", act.provider_id)
            },
        )
    }
}
