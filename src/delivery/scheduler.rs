//! The reminder scheduler: fires reminders and notices as they fall due.
//!
//! Pending reminders are keys in the store sorted by due time, so the
//! scheduler holds nothing in memory: it reads the first keys, fires those
//! that are due in one transaction (which deletes each key on the condition
//! that it is still there), and sleeps until the next is due, a booking
//! wakes it, or a second passes. It is an actor, [`ReminderScheduler`], one
//! per node, supervised like the others. A restart needs no reload: reminders that
//! fell due while the server was down are simply the first keys.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;

use medrelay_actors::billing::notices::BillingNotice;
use medrelay_actors::notify::doctors::DoctorNotice;
use medrelay_actors::notify::{
    self as records, BookingConfirmation, ReminderIndex, ReminderKind, ReminderRecord, due_of,
    policy, reminder_key,
};
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::schedule::offers::OfferNotice;
use medrelay_actors::store::{Record, StoreError, Table, WriteError};
use medrelay_actors::system::count_restart;
use medrelay_protocol::notification::NotificationChannel;

use super::compose::{Facts, compose};
use super::firing::{Firing, Person, Reach, draft_for};
use super::{Draft, Notifier, NotifyError};

/// The longest the scheduler sleeps without looking (a clock change or a
/// missed wake-up costs at most this much lateness).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Look for due reminders now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Fire;

/// The `ReminderScheduler` actor, one per node. Its mailbox takes [`Fire`]
/// from its own timer (the next due time, at most a second away) and from
/// the wake-ups of bookings and clock moves; one firing runs at a time.
/// Wake-ups coalesce: while one `Fire` waits in the mailbox, more wake-ups
/// add nothing, since that firing will see everything committed before it.
pub struct ReminderScheduler {
    n: Arc<Notifier>,
    /// Sends held back while a backlog of due reminders is fired (up to a
    /// bound): firing is what makes a reminder durable and on time, and the
    /// channels would otherwise compete with it for the store and the CPU.
    held: Vec<(NotificationChannel, String)>,
    /// The pending timer, replaced by every firing.
    timer: Option<SpawnHandle>,
    /// Set while a wake-up's `Fire` waits in the mailbox.
    woken: Arc<AtomicBool>,
}

impl ReminderScheduler {
    /// The scheduler of `n`'s reminders.
    pub fn new(n: Arc<Notifier>) -> Self {
        Self {
            n,
            held: Vec::new(),
            timer: None,
            woken: Arc::default(),
        }
    }

    fn fire_in(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.timer = Some(ctx.notify_later(Fire, wait));
    }
}

impl Actor for ReminderScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bookings and clock moves wake the scheduler between timers. This
        // runs beside the mailbox; while a firing holds the actor it is not
        // polled, and a wake-up meanwhile is kept by the `Notify`.
        let (plan, clock, me) = (self.n.plan.clone(), self.n.clock.clone(), ctx.address());
        let woken = self.woken.clone();
        ctx.spawn(
            async move {
                loop {
                    tokio::select! {
                        () = plan.wake.notified() => {}
                        () = clock.moved() => {}
                    }
                    if !woken.swap(true, Ordering::AcqRel) {
                        me.do_send(Fire);
                    }
                }
            }
            .into_actor(self),
        );
        ctx.notify(Fire);
    }
}

impl Supervised for ReminderScheduler {
    fn restarting(&mut self, _: &mut Context<Self>) {
        count_restart("reminder_scheduler");
    }
}

impl Handler<Fire> for ReminderScheduler {
    type Result = ();

    fn handle(&mut self, _: Fire, ctx: &mut Context<Self>) {
        // Wake-ups from here on need a firing of their own.
        self.woken.store(false, Ordering::Release);
        let n = self.n.clone();
        let mut held = std::mem::take(&mut self.held);
        ctx.wait(
            async move {
                // A panic while firing must not end the actor: its
                // reminders are still in the store for the next try.
                let fired = AssertUnwindSafe(fire_due(&n, &mut held))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(NotifyError::Panicked("firing reminders")));
                (fired, held)
            }
            .into_actor(self)
            .map(|(fired, held), act, ctx| {
                act.held = held;
                let more = match fired {
                    Ok(more) => more,
                    Err(e) => {
                        if store_closed(&e) {
                            tracing::debug!("the store is closed (the server is stopping); due reminders fire after the next start");
                        } else {
                            tracing::error!(error = %e, "could not fire reminders; retrying in 1 s");
                        }
                        act.fire_in(MAX_SLEEP, ctx);
                        return;
                    }
                };
                if more && act.held.len() < HOLD_SENDS_UP_TO {
                    act.fire_in(Duration::ZERO, ctx);
                    return;
                }
                for (channel, id) in act.held.drain(..) {
                    act.n.enqueue(channel, &id);
                }
                let wait = if more {
                    Duration::ZERO
                } else {
                    next_wait(&act.n)
                };
                act.fire_in(wait, ctx);
            }),
        );
    }
}

/// The most billing notices fired in one transaction.
const NOTICES_PER_FIRING: usize = 64;

/// The most sends held back while a backlog is fired.
const HOLD_SENDS_UP_TO: usize = 50_000;

fn next_wait(n: &Notifier) -> Duration {
    let next = n
        .store
        .scan::<ReminderRecord>(None, 1)
        .ok()
        .and_then(|page| page.first().and_then(|(k, _)| due_of(k)));
    match next {
        Some(due) => {
            let left = due.duration_since(n.clock.now());
            Duration::try_from(left).unwrap_or_default().min(MAX_SLEEP)
        }
        None => MAX_SLEEP,
    }
}

/// Fires one batch of due reminders; the external notifications it created
/// are added to `queued`, for the caller to hand to their lanes. `Ok(true)`
/// when it did something (so more may be due at once).
///
/// # Errors
/// [`NotifyError`] when the store fails.
pub async fn fire_due(
    n: &Notifier,
    queued: &mut Vec<(NotificationChannel, String)>,
) -> Result<bool, NotifyError> {
    let now = n.clock.now();
    // Only what is due is read (and decoded): a wake-up costs one seek when
    // nothing is, however many reminders are pending.
    let below = records::due_keys_below(now);
    let batch_size = n.settings.scheduler_batch;
    let due = due_rows::<ReminderRecord>(n, &below, batch_size).await?;
    // Billing notices come one per payment: fired in small batches, so
    // that a backlog never makes one long transaction the payments wait on.
    let notices = due_rows::<BillingNotice>(n, &below, batch_size.min(NOTICES_PER_FIRING)).await?;
    // Doctors' notices come one per booking when doctors have accounts:
    // small batches here too, so that a run of them never makes one long
    // transaction the bookings wait on (measured: 512 per transaction
    // booked about 10% slower than 64).
    let to_doctors =
        due_rows::<DoctorNotice>(n, &below, batch_size.min(NOTICES_PER_FIRING)).await?;
    let offers = due_rows::<OfferNotice>(n, &below, batch_size.min(NOTICES_PER_FIRING)).await?;
    // Confirmations go by e-mail or SMS only: made no faster than those
    // channels send, so that a burst of bookings leaves the store writer to
    // the bookings (the rest wait, small and durable, for their turn).
    let room = n.text_room(queued);
    let confirmations = match room.any() && !n.confirmations_resting() {
        false => Vec::new(),
        true => due_rows::<BookingConfirmation>(n, &below, NOTICES_PER_FIRING).await?,
    };
    if due.is_empty()
        && notices.is_empty()
        && to_doctors.is_empty()
        && offers.is_empty()
        && confirmations.is_empty()
    {
        return Ok(false);
    }
    let mut firing = Firing::new(n, now, room);
    for (key, reminder) in &due {
        firing.fire((Table::Reminders, key), reminder)?;
    }
    let mut confirmed = 0;
    for (key, confirmation) in &confirmations {
        confirmed += u64::from(firing.fire_confirmation(key, confirmation)?);
    }
    if !confirmations.is_empty() && confirmed == 0 {
        n.rest_confirmations();
    }
    for (key, notice) in &notices {
        firing.fire_billing(key, notice)?;
    }
    for (key, notice) in &to_doctors {
        firing.fire_doctor(key, notice)?;
    }
    for (key, notice) in &offers {
        firing.fire_offer(key, notice)?;
    }
    // Only confirmations waiting for their channel's room: nothing to do.
    if firing.batch.is_empty() {
        return Ok(false);
    }
    let Firing {
        batch,
        queued: fired_sends,
        indexes,
        fired,
        ..
    } = firing;
    let mut batch = batch;
    for (appointment, keys) in indexes {
        if keys.is_empty() {
            batch.delete(Table::AppointmentReminders, appointment.as_str());
        } else {
            batch.put(appointment.as_str(), &ReminderIndex(keys));
        }
    }
    match n.store.write(batch).await {
        Ok(_) => {}
        // A reminder was moved or removed since it was read, or an agenda
        // re-planned; read again.
        Err(WriteError::Missing { .. } | WriteError::Changed { .. }) => return Ok(true),
        Err(e) => return Err(e.into()),
    }
    metrics::counter!("reminders_fired_total").increment(due.len() as u64);
    metrics::counter!("booking_confirmations_fired_total").increment(confirmed);
    metrics::counter!("billing_notices_fired_total").increment(notices.len() as u64);
    metrics::counter!("reminder_notifications_total").increment(fired);
    queued.extend(fired_sends);
    Ok(true)
}

/// The due rows of `T` below `below`, at most `limit`. A row that cannot
/// be read is set aside (kept whole in `set_aside`) rather than stopping
/// every firing behind it: one written by a newer release, say, before a
/// rollback.
///
/// # Errors
/// [`NotifyError`] when the store fails otherwise.
async fn due_rows<T: Record>(
    n: &Notifier,
    below: &str,
    limit: usize,
) -> Result<Vec<(String, T)>, NotifyError> {
    for _ in 0..SET_ASIDE_PER_READ {
        let (key, reason) = match n.store.scan_below::<T>(below, limit) {
            Err(StoreError::Corrupt { key, reason, .. }) => (key, reason),
            read => return Ok(read?),
        };
        let Some(batch) = n.store.set_aside::<T>(&key, &reason)? else {
            continue; // gone, or rewritten readable: read again
        };
        match n.store.write(batch).await {
            Ok(_) => {}
            // Rewritten or removed meanwhile (or set aside in the same
            // millisecond by another read): read again.
            Err(
                WriteError::Missing { .. } | WriteError::Changed { .. } | WriteError::Exists { .. },
            ) => continue,
            Err(e) => return Err(e.into()),
        }
        // The reason may quote the row; only the table and key are logged.
        tracing::error!(table = T::TABLE.name(), key = %key, "unreadable row set aside in set_aside");
        metrics::counter!("rows_set_aside_total", "table" => T::TABLE.name()).increment(1);
    }
    Ok(Vec::new())
}

/// The most unreadable rows set aside by one read, before it gives up
/// until the next firing.
const SET_ASIDE_PER_READ: usize = 16;

impl Firing<'_> {
    /// Fires the reminder or notice under `key` of `table`.
    pub(super) fn fire(
        &mut self,
        at: (Table, &str),
        reminder: &ReminderRecord,
    ) -> Result<(), NotifyError> {
        let id = reminder.appointment_id.as_str();
        let appointment = self.n.store.get::<AppointmentRecord>(id)?;
        self.fire_about(at, reminder, appointment)
    }

    /// [`Firing::fire`] with its appointment already read (`None`: gone).
    pub(super) fn fire_about(
        &mut self,
        (table, key): (Table, &str),
        reminder: &ReminderRecord,
        appointment: Option<AppointmentRecord>,
    ) -> Result<(), NotifyError> {
        let store = &self.n.store;
        self.batch.require_present(table, key);
        self.batch.delete(table, key);
        let id = &reminder.appointment_id;
        let is_reminder = matches!(reminder.kind, ReminderKind::Reminder { .. });
        // Only reminders are in the appointment's index; a notice firing
        // leaves it alone (a move may be rewriting it right now).
        if is_reminder {
            if !self.indexes.contains_key(id) {
                let keys = records::pending_keys(store, id)?;
                self.indexes.insert(id.clone(), keys);
            }
            if let Some(keys) = self.indexes.get_mut(id) {
                keys.retain(|k| k != key);
            }
        }
        let Some(appointment) = appointment else {
            return Ok(());
        };
        if policy::is_stale(reminder, &appointment) {
            return Ok(());
        }
        let Some(person) = self.person(&appointment.patient_id)? else {
            return Ok(());
        };
        let Person {
            patient,
            user,
            prefs,
            ..
        } = &*person;
        let category = reminder.kind.category();
        if !prefs.categories.allows(category) {
            tracing::debug!(appointment = %id, category = category.as_str(), "opted out; not sent");
            return Ok(());
        }
        let doctor = self.doctor(&appointment.provider_id)?;
        let tz = self
            .n
            .time_zone_of(policy::zone_name(prefs, doctor.time_zone.as_deref()));
        let mut expired = false;
        if is_reminder {
            if appointment.slot.start <= self.now {
                expired = true;
            } else if let Some(end) =
                policy::deferred_past_quiet_hours(prefs, &tz, self.now, appointment.slot.start)
            {
                let suffix = key.rsplit('/').next().unwrap_or("r");
                let moved = reminder_key(end, id, &format!("{suffix}q"));
                self.batch.put(moved.clone(), reminder);
                if let Some(keys) = self.indexes.get_mut(id) {
                    keys.push(moved);
                }
                return Ok(());
            }
        }
        let (subject, body) = compose(
            &self.n.settings.templates,
            reminder.kind,
            &Facts {
                patient: &patient.name,
                doctor: &doctor.name,
                appointment_id: id.as_str(),
                start: appointment.slot.start,
                tz: &tz,
                slots: &reminder
                    .suggestions
                    .iter()
                    .map(|s| s.start)
                    .collect::<Vec<_>>(),
            },
        );
        let base = Draft {
            user_id: user.as_ref().map(|u| u.user_id.clone()),
            appointment_id: Some(id.clone()),
            invitation: u32::try_from(appointment.changes()).ok(),
            ..draft_for(&person, (key, category), (subject, body))
        };
        // A confirmation is for the patient's mailbox or phone: the app
        // shows the booking live already.
        let reach = match reminder.kind {
            ReminderKind::Booked => Reach::TextOnly,
            _ => Reach::Every,
        };
        self.dispatch(&person, base, (expired, reach));
        Ok(())
    }
}

/// Whether firing failed because the store had been closed: the server is
/// stopping, and what was not fired is still in the store for the next start.
fn store_closed(e: &NotifyError) -> bool {
    let NotifyError::Storage(fault) = e else {
        return false;
    };
    matches!(
        fault.downcast_ref::<StoreError>(),
        Some(StoreError::Closed | StoreError::Write(WriteError::Closed))
    ) || matches!(fault.downcast_ref::<WriteError>(), Some(WriteError::Closed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_store_is_told_from_other_failures() {
        assert!(store_closed(&StoreError::Closed.into()));
        assert!(store_closed(&WriteError::Closed.into()));
        assert!(store_closed(&StoreError::Write(WriteError::Closed).into()));
        assert!(!store_closed(
            &StoreError::Log(std::io::Error::other("disk")).into()
        ));
        assert!(!store_closed(&NotifyError::Panicked("firing reminders")));
    }
}
