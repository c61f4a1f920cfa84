//! Routing a fired notice: the patient's routes within its reach, the
//! in-app record written at once and the others queued for their lanes;
//! deferring a notice past quiet hours; and how many text-only notices the
//! lanes have room for.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_actors::notify::{BookingConfirmation, NotificationRecord, PendingDelivery, policy};
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::stats::notifications;
use medrelay_actors::store::{Record, Table, WriteBatch};
use medrelay_protocol::notification::{
    DeliveryStatus, NotificationCategory, NotificationChannel, NotificationPreferences,
};

use super::firing::{Firing, Person, Reach, TextRoom, draft_for};
use super::{Draft, Notifier, NotifyError};

impl Notifier {
    /// Writes a notification's record in `batch`, counted in the figures
    /// (every write of one goes through here).
    pub(super) fn put(&self, batch: &mut WriteBatch, record: &NotificationRecord) {
        notifications::put(batch, self.store.stats_zone(), record);
    }
}

impl Firing<'_> {
    /// Sends `person` a notice about no appointment (a bill, an offer) due
    /// under `key`: [`Firing::dispatch`] of its text under `category`.
    pub(super) fn dispatch_notice(
        &mut self,
        person: &Person,
        (key, category): (&str, NotificationCategory),
        (subject, body): (String, String),
    ) {
        let base = draft_for(person, (key, category), (subject, body));
        self.dispatch(person, base, (false, Reach::Every));
    }

    /// Records `base` once per route the patient's preferences choose
    /// within `reach`: in-app at once, the others queued for their channels
    /// (`expired`: recorded as not sent, past their time).
    pub(super) fn dispatch(
        &mut self,
        person: &Person,
        base: Draft,
        (expired, reach): (bool, Reach),
    ) {
        let drafts = person.routes(reach).into_iter().map(|route| Draft {
            // Only e-mails carry an invitation.
            invitation: base
                .invitation
                .filter(|_| route.channel == NotificationChannel::Email),
            channel: route.channel,
            recipient: route.recipient,
            fallback: route.fallback,
            ..base.clone()
        });
        for draft in drafts {
            self.fired += 1;
            if expired {
                let mut record = draft.into_record(self.now, &self.n.vault);
                record.fallback.clear();
                record.push_status(
                    DeliveryStatus::Expired,
                    self.now,
                    None,
                    Some("not sent by its due time, and the appointment has begun".into()),
                );
                self.n.put(&mut self.batch, &record);
                continue;
            }
            if draft.channel == NotificationChannel::InApp {
                self.n.in_app(&mut self.batch, draft, self.now);
                continue;
            }
            self.queue(draft);
        }
    }

    /// A notice with no deadline that falls in its reader's quiet hours:
    /// moved, in this batch, to the same key due when they end (marked `q`).
    /// `true` when it was.
    pub(super) fn deferred<T: Record>(
        &mut self,
        key: &str,
        notice: &T,
        prefs: &NotificationPreferences,
        tz: &TimeZone,
    ) -> bool {
        match policy::deferred_past_quiet_hours(prefs, tz, self.now, Timestamp::MAX) {
            Some(end) => {
                let rest = key.get(13..).unwrap_or_default();
                let moved = format!("{:013}{rest}q", end.as_millisecond().max(0));
                self.batch.put(moved, notice);
                true
            }
            None => false,
        }
    }

    /// Records `draft` for an external channel (e-mail, SMS, push), queued
    /// for its lane once the batch commits.
    pub(super) fn queue(&mut self, draft: Draft) {
        let record: NotificationRecord = draft.into_record(self.now, &self.n.vault);
        self.n.put(&mut self.batch, &record);
        self.batch.put(
            record.notification_id.as_str(),
            &PendingDelivery {
                channel: record.channel,
            },
        );
        self.queued.push((record.channel, record.notification_id));
    }
}

impl Firing<'_> {
    /// Fires the booking confirmation under `key` if the patient's text
    /// channel has room for it; otherwise it waits, untouched, for a later
    /// firing. `true` when it was fired.
    pub(super) fn fire_confirmation(
        &mut self,
        key: &str,
        confirmation: &BookingConfirmation,
    ) -> Result<bool, NotifyError> {
        // Known to wait for a channel that still has no room: passed over
        // without reading its patient again.
        if self.n.waiting_for(key).is_some_and(|c| !self.room.has(c)) {
            return Ok(false);
        }
        let id = confirmation.appointment_id.as_str();
        let appointment = self.n.store.get::<AppointmentRecord>(id)?;
        let person = match &appointment {
            Some(a) => self.person(&a.patient_id)?,
            None => None,
        };
        let channel = person
            .as_deref()
            .and_then(|p| p.routes(Reach::TextOnly).first().map(|r| r.channel));
        // With no text route it is fired as nothing (and removed).
        if let Some(c) = channel
            && !self.room.take(c)
        {
            self.n.wait_for_room(key, c);
            return Ok(false);
        }
        self.n.forget_waiting(key);
        let at = (Table::BookingConfirmations, key);
        self.fire_about(at, &confirmation.reminder(), appointment)?;
        Ok(true)
    }
}

/// How long firings skip confirmations that all wait for their channels.
const CONFIRMATIONS_REST: std::time::Duration = std::time::Duration::from_millis(100);

/// The most confirmations remembered as waiting for their channel.
const WAITING_REMEMBERED: usize = 1_024;

impl Notifier {
    /// The text channel a confirmation was found waiting for.
    fn waiting_for(&self, key: &str) -> Option<NotificationChannel> {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.get(key).copied()
    }

    /// Remembers that the confirmation under `key` waits for `channel`;
    /// bounded, since only the first keys are ever looked at.
    fn wait_for_room(&self, key: &str, channel: NotificationChannel) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.len() >= WAITING_REMEMBERED {
            waiting.clear();
        }
        waiting.insert(key.to_owned(), channel);
    }

    /// Whether firings skip the confirmations for now.
    pub(super) fn confirmations_resting(&self) -> bool {
        let rest = self
            .confirmations_rest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        rest.is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Skips the confirmations for [`CONFIRMATIONS_REST`]: those looked at
    /// all wait for their channels, which free up at their pace.
    pub(super) fn rest_confirmations(&self) {
        let mut rest = self
            .confirmations_rest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *rest = Some(std::time::Instant::now() + CONFIRMATIONS_REST);
    }

    /// Forgets a confirmation that no longer waits.
    fn forget_waiting(&self, key: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.remove(key);
    }

    /// How many confirmations each text channel (e-mail, SMS) has room
    /// for now: a second's worth of sends (`rate_per_sec`) less what its
    /// lane holds and the `held` sends for it not handed over yet. Making
    /// them faster only fills the store and the queues; per channel, so
    /// that one channel's outage (its sends waiting through retries) holds
    /// back another's only while a firing's first 64 all wait for it.
    pub(super) fn text_room(&self, held: &[(NotificationChannel, String)]) -> TextRoom {
        let second = usize::try_from(self.settings.delivery.rate_per_sec).unwrap_or(usize::MAX);
        let (mut emails, mut texts) = (0, 0);
        for (channel, _) in held {
            match channel {
                NotificationChannel::Email => emails += 1,
                NotificationChannel::Sms => texts += 1,
                _ => {}
            }
        }
        let room = |channel: NotificationChannel, waiting: usize| {
            let Some(lane) = self.lanes.get(&channel) else {
                return 0;
            };
            let owned = lane.owned.lock().unwrap_or_else(|e| e.into_inner()).len();
            second.saturating_sub(owned + waiting)
        };
        TextRoom {
            email: room(NotificationChannel::Email, emails),
            sms: room(NotificationChannel::Sms, texts),
        }
    }
}
