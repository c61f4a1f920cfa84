//! One doctor's loaded state and the checks made against it.
//!
//! The state holds only the appointments that hold their time and end no
//! earlier than [`WINDOW_BEHIND`] ago: every booking decision concerns the
//! future, so older history stays in the store and is read on demand. The
//! window starts at a time, not at a count, so its size is bounded by the
//! booking horizon.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay_protocol::Channel;
use medrelay_protocol::schedule::{AppointmentId, ClockTime, SlotTime};

use super::holds::{self, HoldRecord};
use super::messages::Holder;
use super::rules::{SLOT_MINUTES, cell_key, cell_of, find_slot, slots_for_date};
use super::waitlist::{self, WaitlistEntry};
use super::{AppointmentRecord, BookingRules, ProviderCell, ScheduleError};
use crate::accounts::ProviderRecord;
use crate::fault::Fault;
use crate::store::{Store, StoreError};

/// How far back the loaded window reaches.
pub const WINDOW_BEHIND: SignedDuration = SignedDuration::from_hours(24);

/// How many free slots an appointment that must move is offered.
pub const SUGGESTIONS: usize = 3;

/// How many days ahead free slots are looked for.
const SUGGEST_DAYS: i32 = 31;

/// The appointments that hold a doctor's time, by start.
#[derive(Debug, Default)]
pub struct Booked {
    records: HashMap<AppointmentId, AppointmentRecord>,
    by_start: BTreeMap<Timestamp, AppointmentId>,
}

impl Booked {
    /// Adds, replaces or (when it no longer holds its time) removes `record`.
    pub fn upsert(&mut self, record: AppointmentRecord) {
        self.remove(&record.appointment_id);
        if record.status.holds_slot() {
            self.by_start
                .insert(record.slot.start, record.appointment_id.clone());
            self.records.insert(record.appointment_id.clone(), record);
        }
    }

    fn remove(&mut self, id: &AppointmentId) {
        if let Some(old) = self.records.remove(id)
            && self.by_start.get(&old.slot.start) == Some(id)
        {
            self.by_start.remove(&old.slot.start);
        }
    }

    /// A held appointment.
    pub fn get(&self, id: &AppointmentId) -> Option<&AppointmentRecord> {
        self.records.get(id)
    }

    /// Every held appointment, in no order.
    pub fn all(&self) -> impl Iterator<Item = &AppointmentRecord> {
        self.records.values()
    }

    /// The held appointment overlapping `[start, end)`, other than `except`.
    /// Slots are at most [`SLOT_MINUTES`] long, so only starts that recent
    /// are looked at.
    pub fn overlapping(
        &self,
        start: Timestamp,
        end: Timestamp,
        except: Option<&AppointmentId>,
    ) -> Option<&AppointmentRecord> {
        let reach = start - SignedDuration::from_mins(i64::from(*SLOT_MINUTES.end()));
        self.by_start
            .range(reach..end)
            .rev()
            .filter(|(_, id)| Some(*id) != except)
            .filter_map(|(_, id)| self.records.get(id))
            .find(|a| a.slot.end > start)
    }

    /// Forgets appointments that ended before `cutoff`.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        let old: Vec<AppointmentId> = self
            .by_start
            .range(..cutoff)
            .filter_map(|(_, id)| self.records.get(id))
            .filter(|a| a.slot.end < cutoff)
            .map(|a| a.appointment_id.clone())
            .collect();
        for id in old {
            self.remove(&id);
        }
    }
}

/// The loaded state of one doctor.
pub struct State {
    /// The profile.
    pub provider: ProviderRecord,
    /// Its zone.
    pub tz: TimeZone,
    /// The appointments holding time in the window.
    pub booked: Booked,
    /// The board channel's seq the state reflects.
    pub board_seq: u64,
    /// Slot holds by id, live or lapsed but not yet released.
    pub holds: BTreeMap<String, HoldRecord>,
    /// The waitlist by entry id, which sorts in the order joined.
    pub waitlist: BTreeMap<String, WaitlistEntry>,
}

impl State {
    /// Reads a doctor's profile and the appointments of the window from the
    /// store: it walks the doctor's cells from the window's start, jumping
    /// over each appointment found, so it reads one key per appointment.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown provider; storage errors.
    pub fn load(store: &Store, provider_id: &str, now: Timestamp) -> Result<State, ScheduleError> {
        let Some(provider) = store.get::<ProviderRecord>(provider_id)? else {
            return Err(ScheduleError::NotFound(format!(
                "no provider {provider_id}"
            )));
        };
        let tz = TimeZone::get(&provider.time_zone).map_err(|e| {
            ScheduleError::Storage(Fault::context(
                format!("stored time zone {}", provider.time_zone),
                e,
            ))
        })?;
        let board_seq = store.channel_head(&Channel::Board(provider.provider_id.clone()))?;
        let mut booked = Booked::default();
        let prefix = format!("{provider_id}/");
        let mut from = cell_key(provider_id, cell_of(now - WINDOW_BEHIND));
        while let Some((key, cell)) = next_cell(store, &from, &prefix)? {
            let Some(record) = store.get::<AppointmentRecord>(cell.appointment_id.as_str())? else {
                tracing::warn!(provider = provider_id, %key, "a doctor's cell names a missing appointment");
                from = format!("{key}~");
                continue;
            };
            from = cell_key(provider_id, cell_of(record.slot.end).max(next_number(&key)));
            booked.upsert(record);
        }
        let holds = holds::load(store, provider_id)?
            .into_iter()
            .map(|h| (h.hold_id.clone(), h))
            .collect();
        let waitlist = waitlist::load(store, provider_id)?
            .into_iter()
            .map(|e| (e.entry_id.clone(), e))
            .collect();
        Ok(State {
            provider,
            tz,
            booked,
            board_seq,
            holds,
            waitlist,
        })
    }

    /// The bookable slot at `date`/`clock`, checked against hours and limits.
    ///
    /// # Errors
    /// `OutsideAvailability`, `TooSoon` or `TooFar`.
    pub fn bookable(
        &self,
        date: Date,
        clock: ClockTime,
        rules: &BookingRules,
        now: Timestamp,
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
        check_notice(&slot, rules, now)?;
        Ok(slot)
    }

    /// Whether `slot` is free for a booking or a hold: no appointment but
    /// `appointment` (the one moving) holds part of it, and no live hold
    /// but `hold` (the one redeemed) keeps it.
    ///
    /// # Errors
    /// `SlotTaken`, `SlotHeld`.
    pub fn check_free(
        &self,
        slot: &SlotTime,
        (appointment, hold): (Option<&AppointmentId>, Option<&str>),
        now: Timestamp,
    ) -> Result<(), ScheduleError> {
        if self
            .booked
            .overlapping(slot.start, slot.end, appointment)
            .is_some()
        {
            return Err(ScheduleError::SlotTaken);
        }
        if self.held(slot.start, slot.end, hold, now).is_some() {
            return Err(ScheduleError::SlotHeld);
        }
        Ok(())
    }

    /// The live hold covering part of `[start, end)`, other than `except`.
    pub fn held(
        &self,
        start: Timestamp,
        end: Timestamp,
        except: Option<&str>,
        now: Timestamp,
    ) -> Option<&HoldRecord> {
        self.holds
            .values()
            .find(|h| Some(h.hold_id.as_str()) != except && h.live(now) && h.overlaps(start, end))
    }

    /// The holds whose time has run out.
    pub fn lapsed(&self, now: Timestamp) -> Vec<HoldRecord> {
        self.holds
            .values()
            .filter(|h| !h.live(now))
            .cloned()
            .collect()
    }

    /// The holder of a board slot.
    pub fn holder(&self, slot: &SlotTime) -> Option<Holder> {
        self.booked
            .overlapping(slot.start, slot.end, None)
            .map(|a| Holder {
                appointment_id: a.appointment_id.clone(),
                patient_id: a.patient_id.clone(),
                needs_reschedule: a.needs_reschedule,
            })
    }
}

/// Whether a slot is far enough ahead and not beyond the horizon.
pub(super) fn check_notice(
    slot: &SlotTime,
    rules: &BookingRules,
    now: Timestamp,
) -> Result<(), ScheduleError> {
    let (date, clock) = (slot.date, slot.time_slot);
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
    Ok(())
}

/// The first free, bookable slots of `provider` (hours as given) from
/// `from` on (the day an appointment was on, so that day's other times come
/// first), at most [`SUGGESTIONS`], looking `SUGGEST_DAYS` ahead.
pub fn free_slots(
    provider: &ProviderRecord,
    tz: &TimeZone,
    booked: &Booked,
    from: Date,
    rules: &BookingRules,
    now: Timestamp,
) -> Vec<SlotTime> {
    let today = (now + rules.min_notice).to_zoned(tz.clone()).date();
    let mut date = from.max(today);
    let mut out = Vec::new();
    for _ in 0..SUGGEST_DAYS {
        for slot in slots_for_date(
            tz,
            date,
            provider.slot_minutes,
            &provider.availability,
            &provider.exceptions,
        ) {
            if check_notice(&slot, rules, now).is_ok()
                && booked.overlapping(slot.start, slot.end, None).is_none()
            {
                out.push(slot);
                if out.len() == SUGGESTIONS {
                    return out;
                }
            }
        }
        date = date.saturating_add(1.day());
    }
    out
}

/// The doctor's first cell at or after `from`, if still under `prefix`.
fn next_cell(
    store: &Store,
    from: &str,
    prefix: &str,
) -> Result<Option<(String, ProviderCell)>, StoreError> {
    Ok(store
        .scan_from::<ProviderCell>(from, 1)?
        .into_iter()
        .next()
        .filter(|(key, _)| key.starts_with(prefix)))
}

/// The cell number after the one `key` names.
fn next_number(key: &str) -> i64 {
    key.rsplit('/')
        .next()
        .and_then(|n| n.parse::<i64>().ok())
        .map_or(i64::MAX, |n| n + 1)
}
