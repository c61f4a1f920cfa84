//! What a doctor's state allows of holds, waitlist entries and offers
//! (the records are in [`super::holds`] and [`super::waitlist`]), and the
//! offers themselves.
//!
//! Slot offers: a slot freed by a cancellation or a move, or opened by new
//! hours, is held for the
//! first waitlisted patient who wants it (in the order they joined), for
//! `schedule.offer_secs`. Booking with the hold accepts it; a decline or
//! the hold lapsing passes the slot to the next patient who wants it and
//! was not offered it yet. Each step is written in the batch of the change
//! that causes it (the cancellation, the decline, the lapse), so a restart
//! neither loses an offer nor makes one twice.
//!
//! The patient hears of an offer live (`offer_made` on their channel) and
//! by their text channel: an [`OfferNotice`] fired by the notification
//! scheduler, sent only while the hold still stands.

use std::collections::{BTreeSet, HashSet};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use medrelay_protocol::hold::HoldSlot;
use medrelay_protocol::schedule::{AppointmentId, ClockTime, SlotTime};
use medrelay_protocol::waitlist::JoinWaitlist;
use medrelay_protocol::{Event, PatientId, ProviderId, UserId};
use serde::{Deserialize, Serialize};

use super::holds::{self, HoldRecord, Offer};
use super::rules::{cells, find_slot, slots_for_date};
use super::state::{State, check_notice};
use super::waitlist::{self, WaitlistEntry};
use super::{BookingRules, PatientCell, ScheduleError};
use crate::accounts::ProviderRecord;
use crate::store::{Record, Store, Table, WriteBatch};

/// An offer to tell its patient of by their text channel (table
/// `offer_notices`, keyed `<due ms, 13 digits>/<hold>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferNotice {
    /// The doctor.
    pub provider_id: ProviderId,
    /// The hold keeping the slot (the notice is sent only while it stands).
    pub hold_id: String,
}

impl Record for OfferNotice {
    const TABLE: Table = Table::OfferNotices;
    const VERSION: u16 = 1;
}

/// After a change that frees `slot` (in `batch`, being prepared): holds it
/// for the first waitlisted patient who wants it, could book it, and is
/// not in `offered`, with its events and notice. `except`: the appointment
/// moving away from the slot or the hold letting go of it, still in the
/// state. `None` when nobody waiting can take it, or it can no longer be
/// booked (the doctor's hours, the minimum notice).
///
/// A patient is passed over while their entry already has a live offer,
/// while they have an appointment at that time (with any doctor), or once
/// their profile is deleted. The offer lasts `offer_for`, or until the
/// minimum notice closes booking, whichever comes first.
pub fn offer_freed(
    state: &State,
    (store, batch): (&Store, &mut WriteBatch),
    (slot, offered): (&SlotTime, &[PatientId]),
    except: (Option<&AppointmentId>, Option<&str>),
    rules: &BookingRules,
    now: Timestamp,
) -> Option<HoldRecord> {
    if state.waitlist.is_empty() {
        return None;
    }
    // Only a slot of the doctor's hours as they are now, still bookable.
    if state
        .bookable(slot.date, slot.time_slot, rules, now)
        .ok()
        .as_ref()
        != Some(slot)
    {
        return None;
    }
    let until = offer_until(slot, rules, now)?;
    state.check_free(slot, except, now).ok()?;
    let offered_now: Vec<&str> = live_offers(state, now)
        .map(|(_, o)| o.entry_id.as_str())
        .collect();
    let entry = state.waitlist.values().find(|e| {
        e.wants(slot)
            && !offered.contains(&e.patient_id)
            && !offered_now.contains(&e.entry_id.as_str())
            && can_take(store, &e.patient_id, slot)
    })?;
    let mut chain = offered.to_vec();
    chain.push(entry.patient_id.clone());
    Some(offer(batch, entry, (slot, until), chain, now))
}

/// After a change of hours to `hours` (the new profile and its zone; the
/// state still has the old ones): offers each waitlisted patient, in the
/// order they joined, the first slot that the new hours opened, that is
/// free, and that they want and could book. One offer per patient, one
/// patient per slot; patients with a live offer from this doctor wait for
/// it to end.
///
/// Bounded for the doctor's actor: nothing is looked at unless the hours,
/// zone or slot length changed, and at most [`SLOTS_LOOKED_AT`] slots and
/// [`CELL_CHECKS`] patients' calendars are.
pub fn offer_opened(
    state: &State,
    (provider, tz): (&ProviderRecord, &TimeZone),
    (store, batch): (&Store, &mut WriteBatch),
    rules: &BookingRules,
    now: Timestamp,
) -> Vec<HoldRecord> {
    let old = &state.provider;
    let same_hours = old.availability == provider.availability
        && old.exceptions == provider.exceptions
        && old.slot_minutes == provider.slot_minutes
        && old.time_zone == provider.time_zone;
    if state.waitlist.is_empty() || same_hours {
        return Vec::new();
    }
    // The days someone waits for, between the first bookable day and the
    // horizon, in order.
    let first = (now + rules.min_notice).to_zoned(tz.clone()).date();
    let last = (now + rules.horizon).to_zoned(tz.clone()).date();
    let mut days = BTreeSet::new();
    for entry in state.waitlist.values() {
        let mut day = entry.from.max(first);
        while day <= entry.to.min(last) {
            days.insert(day);
            day = day.saturating_add(1.day());
        }
    }
    let (mut opened, mut looked) = (Vec::new(), 0);
    'days: for date in days {
        let p = provider;
        for slot in slots_for_date(tz, date, p.slot_minutes, &p.availability, &p.exceptions) {
            looked += 1;
            if looked > SLOTS_LOOKED_AT {
                break 'days;
            }
            let Some(until) = offer_until(&slot, rules, now) else {
                continue;
            };
            let fits = check_notice(&slot, rules, now).is_ok();
            if fits && !had_slot(state, &slot) && state.check_free(&slot, (None, None), now).is_ok()
            {
                opened.push(Some((slot, until)));
            }
        }
    }
    if opened.is_empty() {
        return Vec::new();
    }
    // Patients with a live offer from this doctor wait for it to end.
    let mut offered: HashSet<PatientId> = live_offers(state, now)
        .map(|(h, _)| h.patient_id.clone())
        .collect();
    let mut checks = 0;
    let mut made: Vec<HoldRecord> = Vec::new();
    for entry in state.waitlist.values() {
        if checks >= CELL_CHECKS {
            break; // no calendar can be checked any more: no more offers
        }
        let patient = &entry.patient_id;
        if offered.contains(patient) {
            continue;
        }
        // Their profile is read only once a slot they want is found.
        let mut live = None;
        let found = opened.iter_mut().find(|s| {
            s.as_ref().is_some_and(|(slot, _)| {
                entry.wants(slot)
                    && *live.get_or_insert_with(|| {
                        crate::patients::is_live(store, patient).unwrap_or(false)
                    })
                    && {
                        checks += 1;
                        checks <= CELL_CHECKS && is_free_for(store, patient, slot)
                    }
            })
        });
        let Some((slot, until)) = found.and_then(Option::take) else {
            continue;
        };
        offered.insert(patient.clone());
        let chain = vec![patient.clone()];
        made.push(offer(batch, entry, (&slot, until), chain, now));
    }
    if !made.is_empty() {
        tracing::info!(provider = %provider.provider_id, offers = made.len(), "time opened by new hours offered to the waitlist");
    }
    made
}

/// Until when an offer of `slot` made `now` lasts: `offer_for`, or until the
/// minimum notice closes booking, whichever comes first; `None` when that
/// is not after now.
fn offer_until(slot: &SlotTime, rules: &BookingRules, now: Timestamp) -> Option<Timestamp> {
    let until = (now + rules.offer_for).min(slot.start - rules.min_notice);
    (until > now).then_some(until)
}

/// The most slots of new hours looked at for the waitlist per change.
pub const SLOTS_LOOKED_AT: usize = 20_000;

/// The most checks of a waiting patient's own calendar per change of hours.
pub const CELL_CHECKS: usize = 2_000;

/// The doctor's live offers.
fn live_offers(state: &State, now: Timestamp) -> impl Iterator<Item = (&HoldRecord, &Offer)> {
    state
        .holds
        .values()
        .filter(move |h| h.live(now))
        .filter_map(|h| h.offer.as_ref().map(|o| (h, o)))
}

/// Whether the hours the state has (before a change) had `slot`: one with
/// the same start and end.
fn had_slot(state: &State, slot: &SlotTime) -> bool {
    let p = &state.provider;
    let local = slot.start.to_zoned(state.tz.clone());
    let minutes = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let Ok(minutes) = u16::try_from(minutes) else {
        return false;
    };
    let clock = ClockTime::from_minutes(minutes);
    find_slot(
        &state.tz,
        local.date(),
        clock,
        p.slot_minutes,
        &p.availability,
        &p.exceptions,
    )
    .is_some_and(|old| old.start == slot.start && old.end == slot.end)
}

/// Holds `slot` for `entry`'s patient until `until` as an offer (`chain`:
/// the patients offered it so far, theirs last), with its events and its
/// notice, in `batch`.
fn offer(
    batch: &mut WriteBatch,
    entry: &WaitlistEntry,
    (slot, until): (&SlotTime, Timestamp),
    chain: Vec<PatientId>,
    now: Timestamp,
) -> HoldRecord {
    let hold = HoldRecord {
        hold_id: crate::ids::new_id("hld"),
        provider_id: entry.provider_id.clone(),
        patient_id: entry.patient_id.clone(),
        slot: slot.clone(),
        expires_at: until,
        by: None,
        offer: Some(Offer {
            entry_id: entry.entry_id.clone(),
            offered: chain,
        }),
    };
    holds::put(batch, &hold);
    let made = Event::OfferMade {
        provider_id: hold.provider_id.clone(),
        hold_id: hold.hold_id.clone(),
        patient_id: Some(hold.patient_id.clone()),
        slot: hold.slot.clone(),
        expires_at: hold.expires_at,
    };
    holds::emit(batch, &hold, made);
    batch.put(
        format!("{:013}/{}", now.as_millisecond().max(0), hold.hold_id),
        &OfferNotice {
            provider_id: hold.provider_id.clone(),
            hold_id: hold.hold_id.clone(),
        },
    );
    tracing::info!(provider = %hold.provider_id, hold = %hold.hold_id, "slot offered to the waitlist");
    hold
}

/// Whether `patient` could book `slot`: their profile is live and none of
/// their appointments (with any doctor) covers part of it. A read error
/// counts as no.
fn can_take(store: &Store, patient: &PatientId, slot: &SlotTime) -> bool {
    crate::patients::is_live(store, patient).unwrap_or(false) && is_free_for(store, patient, slot)
}

/// Whether none of `patient`'s appointments (with any doctor) covers part
/// of `slot`. A read error counts as no.
fn is_free_for(store: &Store, patient: &PatientId, slot: &SlotTime) -> bool {
    cells(patient.as_str(), slot)
        .iter()
        .all(|cell| matches!(store.get::<PatientCell>(cell), Ok(None)))
}

/// Adds to `batch` the end of an offer that lapsed unanswered
/// (`offer_expired`), before it passes on.
pub fn expired(batch: &mut WriteBatch, hold: &HoldRecord) {
    let event = Event::OfferExpired {
        provider_id: hold.provider_id.clone(),
        hold_id: hold.hold_id.clone(),
        patient_id: Some(hold.patient_id.clone()),
        slot: hold.slot.clone(),
    };
    holds::emit(batch, hold, event);
}

/// Adds to `batch` an accepted offer: its event, and its waitlist entry
/// removed (the patient has their slot).
pub fn accepted(state: &State, batch: &mut WriteBatch, hold: &HoldRecord) -> Option<String> {
    let offer = hold.offer.as_ref()?;
    let event = Event::OfferAccepted {
        provider_id: hold.provider_id.clone(),
        hold_id: hold.hold_id.clone(),
        patient_id: Some(hold.patient_id.clone()),
        slot: hold.slot.clone(),
    };
    holds::emit(batch, hold, event);
    let entry = state.waitlist.get(&offer.entry_id)?;
    waitlist::remove(batch, entry);
    Some(entry.entry_id.clone())
}

/// The longest date range one entry may span, in days.
const MAX_RANGE_DAYS: i32 = 92;

/// A new hold on the slot `request` names, for `patient`: the slot must be
/// bookable and neither booked nor held, and the patient under the limit.
///
/// # Errors
/// The booking rules' errors, `SlotTaken`, `SlotHeld`, `HoldLimit`,
/// `NotFound` for an unknown patient.
pub fn hold(
    state: &State,
    store: &Store,
    rules: &BookingRules,
    (patient, request, by): (PatientId, &HoldSlot, Option<UserId>),
    now: Timestamp,
) -> Result<(WriteBatch, HoldRecord), ScheduleError> {
    let slot = state.bookable(request.appointment_date, request.time_slot, rules, now)?;
    state.check_free(&slot, (None, None), now)?;
    if !crate::patients::is_live(store, &patient)? {
        return Err(ScheduleError::NotFound(format!("no patient {patient}")));
    }
    if holds::live_holds_of(store, &patient, now)? >= rules.holds_per_patient {
        return Err(ScheduleError::HoldLimit(rules.holds_per_patient));
    }
    let record = HoldRecord {
        hold_id: crate::ids::new_id("hld"),
        provider_id: state.provider.provider_id.clone(),
        patient_id: patient,
        expires_at: now + rules.hold_for,
        slot,
        by,
        offer: None,
    };
    let mut batch = WriteBatch::new();
    holds::put(&mut batch, &record);
    Ok((batch, record))
}

/// The hold a booking names, checked: live, the same patient, the same
/// slot start.
///
/// # Errors
/// `Invalid` naming `holdId` otherwise.
pub fn redeem<'a>(
    state: &'a State,
    hold_id: &str,
    patient: &PatientId,
    slot: &SlotTime,
    now: Timestamp,
) -> Result<&'a HoldRecord, ScheduleError> {
    let invalid = |message: &str| ScheduleError::Invalid {
        field: "holdId".into(),
        message: message.into(),
    };
    let hold = state
        .holds
        .get(hold_id)
        .ok_or_else(|| invalid("no such hold on this doctor's schedule"))?;
    if !hold.live(now) {
        return Err(invalid("the hold has expired"));
    }
    if &hold.patient_id != patient || hold.slot.start != slot.start {
        return Err(invalid("the hold is for another patient or slot"));
    }
    Ok(hold)
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
) -> Result<(WriteBatch, WaitlistEntry, Vec<String>), ScheduleError> {
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
    if request.times.len() > 8 || request.times.iter().any(|r| r.start >= r.end) {
        return Err(invalid(
            "times",
            "at most 8 ranges, each ending after it starts",
        ));
    }
    if !crate::patients::is_live(store, &patient)? {
        return Err(ScheduleError::NotFound(format!("no patient {patient}")));
    }
    // Entries whose dates have passed count for nothing and go now.
    let (stale, current): (Vec<&WaitlistEntry>, Vec<&WaitlistEntry>) =
        state.waitlist.values().partition(|e| e.to < today);
    let theirs = current.iter().filter(|e| e.patient_id == patient).count();
    if theirs >= waitlist::MAX_PER_PATIENT {
        return Err(invalid("patientId", "already on this waitlist 3 times"));
    }
    if current.len() >= waitlist::MAX_PER_DOCTOR {
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
    for old in &stale {
        waitlist::remove(&mut batch, old);
    }
    let stale = stale.iter().map(|e| e.entry_id.clone()).collect();
    Ok((batch, entry, stale))
}
