//! Slot offers: a slot freed by a cancellation or a move is held for the
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

use jiff::Timestamp;
use medrelay_protocol::schedule::{AppointmentId, SlotTime};
use medrelay_protocol::{Channel, Event, PatientId, ProviderId};
use serde::{Deserialize, Serialize};

use super::BookingRules;
use super::holds::{self, HoldRecord};
use super::state::State;
use crate::store::{Record, Table, WriteBatch};

/// What makes a hold an offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The waitlist entry it answers.
    pub entry_id: String,
    /// The patients offered this slot so far, in order (this one last).
    pub offered: Vec<PatientId>,
}

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
/// for the first waitlisted patient who wants it and is not in `offered`,
/// with its events and notice. `except`: the appointment moving away from
/// the slot or the hold letting go of it, still in the state. `None` when
/// nobody waits for it, or it is too soon to book.
pub fn offer_freed(
    state: &State,
    batch: &mut WriteBatch,
    (slot, offered): (&SlotTime, &[PatientId]),
    except: (Option<&AppointmentId>, Option<&str>),
    rules: &BookingRules,
    now: Timestamp,
) -> Option<HoldRecord> {
    if state.waitlist.is_empty() || slot.start < now + rules.min_notice {
        return None;
    }
    state.check_free(slot, except, now).ok()?;
    let entry = state
        .waitlist
        .values()
        .find(|e| e.wants(slot) && !offered.contains(&e.patient_id))?;
    let mut chain = offered.to_vec();
    chain.push(entry.patient_id.clone());
    let hold = HoldRecord {
        hold_id: crate::ids::new_id("hld"),
        provider_id: state.provider.provider_id.clone(),
        patient_id: entry.patient_id.clone(),
        slot: slot.clone(),
        expires_at: now + rules.offer_for,
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
    batch.event(Channel::Board(hold.provider_id.clone()), made.clone());
    batch.event(Channel::Patient(hold.patient_id.clone()), made);
    batch.put(
        format!("{:013}/{}", now.as_millisecond().max(0), hold.hold_id),
        &OfferNotice {
            provider_id: hold.provider_id.clone(),
            hold_id: hold.hold_id.clone(),
        },
    );
    tracing::info!(provider = %hold.provider_id, hold = %hold.hold_id, "freed slot offered to the waitlist");
    Some(hold)
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
    batch.event(Channel::Board(hold.provider_id.clone()), event.clone());
    batch.event(Channel::Patient(hold.patient_id.clone()), event);
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
    batch.event(Channel::Board(hold.provider_id.clone()), event.clone());
    batch.event(Channel::Patient(hold.patient_id.clone()), event);
    let entry = state.waitlist.get(&offer.entry_id)?;
    super::waitlist::remove(batch, entry);
    Some(entry.entry_id.clone())
}
