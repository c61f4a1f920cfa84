//! Routing a fired notice: the patient's routes within its reach, the
//! in-app record written at once and the others queued for their lanes;
//! deferring a notice past quiet hours; and how many text-only notices the
//! lanes have room for.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_actors::notify::{NotificationRecord, PendingDelivery, policy};
use medrelay_actors::store::Record;
use medrelay_protocol::notification::{
    DeliveryStatus, NotificationCategory, NotificationChannel, NotificationPreferences,
};

use super::scheduler::{Firing, Person, Reach, draft_for};
use super::{Draft, Notifier};

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
        let Person {
            patient,
            user,
            prefs,
            devices,
        } = person;
        let drafts = policy::routes(prefs, patient, user.as_ref(), devices)
            .into_iter()
            .filter(|route| reach == Reach::Every || route.channel.is_text())
            .map(|route| Draft {
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
                self.batch.put(record.notification_id.as_str(), &record);
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
        self.batch.put(record.notification_id.as_str(), &record);
        self.batch.put(
            record.notification_id.as_str(),
            &PendingDelivery {
                channel: record.channel,
            },
        );
        self.queued.push((record.channel, record.notification_id));
    }
}

impl Notifier {
    /// How many more notices for the text channels alone (e-mail, SMS) to
    /// make now: a second's worth of sends (`rate_per_sec`) less what the
    /// busier of the two lanes holds and the `held` sends not handed over
    /// yet. Making them faster only fills the store and the queues.
    pub(super) fn text_room(&self, held: usize) -> usize {
        let busiest = [NotificationChannel::Email, NotificationChannel::Sms]
            .iter()
            .filter_map(|c| self.lanes.get(c))
            .map(|lane| lane.owned.lock().unwrap_or_else(|e| e.into_inner()).len())
            .max()
            .unwrap_or(0);
        let second = usize::try_from(self.settings.delivery.rate_per_sec).unwrap_or(usize::MAX);
        second.saturating_sub(busiest + held)
    }
}
