//! Doctors' daily agendas: one chain of durable notices per doctor (see
//! [`medrelay_actors::notify::doctors`]), kept in step with their account
//! and preferences by [`Notifier::ensure_agenda`], each link writing the
//! next as it fires, in the same transaction.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::calendar::{FeedOwner, FeedWindow, feed_appointments};
use medrelay_actors::notify::doctors::{
    AGENDA_LATE_BY, AgendaPlan, DoctorNotice, next_agenda, plan_agenda,
};
use medrelay_actors::notify::{self as records, policy};
use medrelay_actors::store::{Table, WriteBatch, WriteError};
use medrelay_protocol::notification::NotificationPreferences;
use medrelay_protocol::{PatientId, ProviderId, Role};

use super::firing::Firing;
use super::{Notifier, NotifyError};

impl Notifier {
    /// [`Notifier::ensure_agenda`] after a change that may affect it (a link,
    /// new preferences): a failure is logged, not returned, since the
    /// change itself is done and the next start plans the agenda again.
    pub async fn replan_agenda(&self, provider: &ProviderId) {
        if let Err(e) = self.ensure_agenda(provider).await {
            tracing::error!(provider = %provider, error = %e, "could not plan the daily agenda; planned again at the next start");
        }
    }

    /// Starts, replaces or ends the doctor's agenda chain so that it
    /// matches their account and preferences now: one chain while the
    /// provider has a doctor account that chose a time, none otherwise.
    /// Cheap when nothing changed. The write requires the chain it read,
    /// so two of these at once (a start and a new preference) cannot leave
    /// the older view in place; the loser reads again.
    ///
    /// # Errors
    /// [`NotifyError`] when the store fails.
    pub async fn ensure_agenda(&self, provider: &ProviderId) -> Result<(), NotifyError> {
        for _ in 0..3 {
            let current = self.store.get::<AgendaPlan>(provider.as_str())?;
            let wanted = self.wanted_agenda(provider)?;
            let mut batch = WriteBatch::new();
            match &current {
                Some(c) => {
                    batch.require_equal(provider.as_str(), c);
                    // The pending link goes with the chain it belongs to.
                    batch.delete(Table::DoctorNotices, c.next.as_str());
                }
                None => {
                    batch.require_absent(Table::DoctorAgendas, provider.as_str());
                }
            }
            match (&current, wanted) {
                (None, None) => return Ok(()),
                (Some(c), Some(w))
                    if (&c.user_id, c.at, &c.zone) == (&w.user_id, w.at, &w.zone)
                        && self.store.get::<DoctorNotice>(&c.next)?.is_some() =>
                {
                    return Ok(());
                }
                (Some(_), None) => {
                    batch.delete(Table::DoctorAgendas, provider.as_str());
                }
                (_, Some(mut plan)) => {
                    plan.last_day = current.as_ref().and_then(|c| c.last_day);
                    let tz = self.time_zone_of(Some(&plan.zone));
                    match next_agenda(&tz, plan.at, self.clock.now(), plan.last_day) {
                        Some(next) => plan_agenda(&mut batch, provider, plan, next),
                        None => {
                            batch.delete(Table::DoctorAgendas, provider.as_str());
                        }
                    }
                }
            }
            match self.store.write(batch).await {
                Ok(_) => {}
                Err(WriteError::Changed { .. } | WriteError::Exists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(provider = %provider, "daily agenda planned");
            // The first may be due before the scheduler's next look.
            self.plan.wake.notify_one();
            return Ok(());
        }
        tracing::warn!(provider = %provider, "daily agenda changed under three tries; left as it is");
        Ok(())
    }

    /// [`Notifier::ensure_agenda`] for every provider, page by page (at
    /// start); one that fails is logged and the others go on.
    ///
    /// # Errors
    /// [`NotifyError`] when the providers cannot be read.
    pub async fn ensure_agendas(&self) -> Result<(), NotifyError> {
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan::<ProviderRecord>(after.as_deref(), 200)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (_, provider) in page {
                self.replan_agenda(&provider.provider_id).await;
            }
        }
    }

    /// The chain the doctor's account and preferences ask for (its `plan`
    /// fresh, its `next` still empty).
    fn wanted_agenda(&self, provider: &ProviderId) -> Result<Option<AgendaPlan>, NotifyError> {
        let Some(doctor) = self.store.get::<ProviderRecord>(provider.as_str())? else {
            return Ok(None);
        };
        let Some(user) = &doctor.user_id else {
            return Ok(None);
        };
        let Some(user) = self.store.get::<UserRecord>(user.as_str())? else {
            return Ok(None);
        };
        if user.role != Role::Doctor || user.provider_id.as_ref() != Some(provider) {
            return Ok(None);
        }
        let prefs = records::preferences(&self.store, &user.user_id)?;
        let Some(at) = prefs.agenda_at else {
            return Ok(None);
        };
        Ok(Some(AgendaPlan {
            plan: medrelay_actors::ids::new_id("ag"),
            user_id: user.user_id,
            at,
            zone: agenda_zone(&prefs, &doctor),
            next: String::new(),
            last_day: None,
        }))
    }
}

/// The zone a doctor's agenda time is read in: their preferences', else
/// their schedule's.
fn agenda_zone(prefs: &NotificationPreferences, doctor: &ProviderRecord) -> String {
    policy::zone_name(prefs, Some(&doctor.time_zone))
        .unwrap_or(&doctor.time_zone)
        .to_owned()
}

impl Firing<'_> {
    /// Checks an agenda notice against its doctor's live chain and, when it
    /// is the chain's pending link, writes the next link in this batch (on
    /// the condition that the chain is still the same when it commits).
    /// `true` when it is to be sent: of the live chain (a link, or one
    /// moved past quiet hours) and not over [`AGENDA_LATE_BY`] late.
    pub(super) fn chain_agenda(
        &mut self,
        key: &str,
        notice: &DoctorNotice,
    ) -> Result<bool, NotifyError> {
        let provider = &notice.provider_id;
        let Some(plan) = self.n.store.get::<AgendaPlan>(provider.as_str())? else {
            return Ok(false);
        };
        if notice.plan.as_deref() != Some(plan.plan.as_str()) {
            // A chain since replaced or ended.
            return Ok(false);
        }
        let due = records::due_of(key).unwrap_or(self.now);
        let late_by = self.now.duration_since(due);
        let send = late_by <= AGENDA_LATE_BY;
        if !send {
            tracing::info!(provider = %provider, late_secs = late_by.as_secs(), "daily agenda too late; skipped");
        }
        if plan.next != key {
            return Ok(send);
        }
        // The chain's pending link: plan the next one, from the account as
        // it is now (a new zone of the schedule, a time chosen since), on
        // the condition that the chain is still the same when this commits.
        self.batch.require_equal(provider.as_str(), &plan);
        let account = self.account(provider)?;
        let wanted = account.as_deref().and_then(|a| {
            let linked =
                a.user.user_id == plan.user_id && a.user.provider_id.as_ref() == Some(provider);
            let at = a.prefs.agenda_at.filter(|_| linked)?;
            Some((at, agenda_zone(&a.prefs, &a.doctor)))
        });
        let Some((at, zone)) = wanted else {
            // The schedule, its account or the wish for an agenda is gone.
            self.batch.delete(Table::DoctorAgendas, provider.as_str());
            return Ok(false);
        };
        let last_day = if send {
            notice.day.or(plan.last_day)
        } else {
            plan.last_day
        };
        let next_plan = AgendaPlan {
            at,
            zone,
            last_day,
            ..plan
        };
        let tz = self.n.time_zone_of(Some(&next_plan.zone));
        // After a long outage (or a clock moved far), the next link is the
        // first one not already over-late, not one per missed day.
        let floor = self.now.checked_sub(AGENDA_LATE_BY).unwrap_or(self.now);
        match next_agenda(&tz, at, due.max(floor), last_day) {
            Some(next) => plan_agenda(&mut self.batch, provider, next_plan, next),
            None => {
                self.batch.delete(Table::DoctorAgendas, provider.as_str());
            }
        }
        Ok(send)
    }

    /// The doctor's appointments that hold their time on local `day`, by
    /// start: read from their cells and recent bookings, never their
    /// whole history.
    pub(super) fn agenda(
        &self,
        provider: &ProviderId,
        day: Date,
        tz: &TimeZone,
    ) -> Result<Vec<(Timestamp, PatientId)>, NotifyError> {
        let start = |d: Date| d.to_zoned(tz.clone()).map(|z| z.timestamp()).ok();
        let next_day = day.tomorrow().ok().and_then(start);
        let (Some(from), Some(to)) = (start(day), next_day) else {
            return Ok(Vec::new());
        };
        let to = to.checked_sub(SignedDuration::from_secs(1)).unwrap_or(to);
        // Every appointment that holds time has cells in the day, so only
        // the day's own bookings need the index.
        let window = FeedWindow {
            from,
            to,
            cancelled_since: Timestamp::MAX,
            made_since: from,
        };
        let owner = FeedOwner::Provider(provider.clone());
        let entries = feed_appointments(&self.n.store, &owner, window)?;
        Ok(entries
            .into_iter()
            .filter(|e| e.status.holds_slot())
            .map(|e| (e.start, e.patient_id))
            .collect())
    }
}
