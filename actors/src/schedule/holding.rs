//! The `ScheduleActor`'s slot holds and waitlist: taking and ending holds,
//! releasing lapsed ones, and joining and leaving the waitlist. An offer
//! that ends unanswered (declined, lapsed) passes to the next patient in
//! the same batch ([`offers`]).

use jiff::Timestamp;

use super::ScheduleError;
use super::actor::ScheduleActor;
use super::changes::{Apply, HoldChange, Prepared};
use super::holds::{self, HoldRecord, Released};
use super::messages::{Hold, JoinWaitlist, LeaveWaitlist, ReleaseHold, ReleaseLapsed};
use super::offers;
use super::state::State;
use super::waitlist::{self, WaitlistEntry};
use crate::store::{Store, WriteBatch};

impl ScheduleActor {
    pub(super) fn hold(&mut self, msg: Hold) -> Prepared<HoldRecord> {
        let (rules, store) = (self.rules, self.life.store().clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let who = (msg.patient_id, &msg.request, msg.by);
        let (batch, record) = offers::hold(state, &store, &rules, who, now)?;
        let change = HoldChange {
            held: vec![record.clone()],
            ..HoldChange::default()
        };
        Ok((batch, Apply::Holds(Box::new(change)), record))
    }

    pub(super) fn release_hold(&mut self, msg: ReleaseHold) -> Prepared<HoldRecord> {
        let (rules, store) = (self.rules, self.life.store().clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let hold = state
            .holds
            .get(&msg.hold_id)
            .cloned()
            .ok_or_else(|| ScheduleError::NotFound(format!("no hold {}", msg.hold_id)))?;
        let mut batch = WriteBatch::new();
        let mut change = HoldChange::default();
        end(
            state,
            (&store, &mut batch),
            &mut change,
            &hold,
            Released::Cancelled,
            &rules,
            now,
        );
        Ok((batch, Apply::Holds(Box::new(change)), hold))
    }

    pub(super) fn release_lapsed(&mut self, _: ReleaseLapsed) -> Prepared<usize> {
        let (rules, store) = (self.rules, self.life.store().clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let lapsed = state.lapsed(now);
        let mut batch = WriteBatch::new();
        let mut change = HoldChange::default();
        for hold in &lapsed {
            end(
                state,
                (&store, &mut batch),
                &mut change,
                hold,
                Released::Expired,
                &rules,
                now,
            );
        }
        Ok((batch, Apply::Holds(Box::new(change)), lapsed.len()))
    }

    pub(super) fn join_waitlist(&mut self, msg: JoinWaitlist) -> Prepared<WaitlistEntry> {
        let (rules, store) = (self.rules, self.life.store().clone());
        let now = Timestamp::now();
        let state = self.load()?;
        let who = (msg.patient_id, &msg.request, msg.by);
        let (batch, entry, stale) = offers::join(state, &store, &rules, who, now)?;
        let change = HoldChange {
            joined: Some(entry.clone()),
            left: stale,
            ..HoldChange::default()
        };
        Ok((batch, Apply::Holds(Box::new(change)), entry))
    }

    pub(super) fn leave_waitlist(&mut self, msg: LeaveWaitlist) -> Prepared<WaitlistEntry> {
        let state = self.load()?;
        let entry = state.waitlist.get(&msg.entry_id).cloned().ok_or_else(|| {
            ScheduleError::NotFound(format!("no waitlist entry {}", msg.entry_id))
        })?;
        let mut batch = WriteBatch::new();
        waitlist::remove(&mut batch, &entry);
        let change = HoldChange {
            left: vec![entry.entry_id.clone()],
            ..HoldChange::default()
        };
        Ok((batch, Apply::Holds(Box::new(change)), entry))
    }
}

/// Ends `hold` in `batch` (and `change`); an offer ending unanswered
/// passes its slot to the next patient who wants it.
fn end(
    state: &State,
    (store, batch): (&Store, &mut WriteBatch),
    change: &mut HoldChange,
    hold: &HoldRecord,
    why: Released,
    rules: &super::BookingRules,
    now: Timestamp,
) {
    holds::release(batch, hold, why);
    change.released.push(hold.hold_id.clone());
    let Some(offer) = &hold.offer else {
        return;
    };
    if why == Released::Expired {
        offers::expired(batch, hold);
    }
    // Holds made in this same batch keep their slots from the next offer.
    let taken = change
        .held
        .iter()
        .any(|h| h.overlaps(hold.slot.start, hold.slot.end));
    if taken {
        return;
    }
    let except = (None, Some(hold.hold_id.as_str()));
    let slot = (&hold.slot, offer.offered.as_slice());
    if let Some(next) = offers::offer_freed(state, (store, batch), slot, except, rules, now) {
        change.held.push(next);
    }
}
