//! Firing notices to doctors ([`DoctorNotice`]): read beside the reminders
//! by due time, sent to the doctor's account by their preferences (e-mail
//! and push; a doctor has no in-app channel of their own yet), in the same
//! transaction that deletes the notice.

use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::notify::doctors::DoctorNotice;
use medrelay_actors::notify::{self as records, policy};
use medrelay_actors::patients;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::store::Table;
use medrelay_protocol::notification::{NotificationCategory, NotificationChannel};

use super::NotifyError;
use super::compose::compose_doctor;
use super::draft::Draft;
use super::scheduler::Firing;

impl Firing<'_> {
    /// Sends the notice under `key` to its doctor's account; past their
    /// quiet hours if it falls due within them. A doctor without an
    /// account, or opted out of appointment changes, gets nothing.
    pub(super) fn fire_doctor(
        &mut self,
        key: &str,
        notice: &DoctorNotice,
    ) -> Result<(), NotifyError> {
        self.batch.require_present(Table::DoctorNotices, key);
        self.batch.delete(Table::DoctorNotices, key);
        let store = &self.n.store;
        let Some(doctor) = store.get::<ProviderRecord>(notice.provider_id.as_str())? else {
            return Ok(());
        };
        let Some(user) = doctor.user_id.as_ref() else {
            return Ok(());
        };
        let Some(user) = store.get::<UserRecord>(user.as_str())? else {
            return Ok(());
        };
        let prefs = records::preferences(store, &user.user_id)?;
        let category = NotificationCategory::AppointmentChange;
        if !prefs.categories.allows(category) {
            tracing::debug!(provider = %doctor.provider_id, "opted out of appointment changes; not sent");
            return Ok(());
        }
        let tz = self
            .n
            .time_zone_of(policy::zone_name(&prefs, Some(&doctor.time_zone)));
        if self.deferred(key, notice, &prefs, &tz) {
            return Ok(());
        }
        // Only those still outside the doctor's hours are listed.
        let mut lines = Vec::new();
        for id in &notice.appointments {
            let Some(a) = store.get::<AppointmentRecord>(id.as_str())? else {
                continue;
            };
            if !a.needs_reschedule || !a.status.holds_slot() {
                continue;
            }
            let patient = patients::load(store, &self.n.vault, &a.patient_id)
                .ok()
                .flatten()
                .map_or_else(|| "a patient".to_owned(), |p| p.name);
            let at = a.slot.start.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M");
            lines.push(format!("{at} {patient}"));
        }
        if lines.is_empty() {
            return Ok(());
        }
        let (subject, body) = compose_doctor(
            &self.n.settings().templates,
            notice.kind,
            &doctor.name,
            &lines,
        );
        let mut routes = Vec::new();
        if prefs.channels.allows(NotificationChannel::Email) {
            routes.push((NotificationChannel::Email, user.email.as_str().to_owned()));
        }
        if prefs.channels.allows(NotificationChannel::Push) {
            for device in self.n.devices(&user.user_id)? {
                routes.push((NotificationChannel::Push, device.token));
            }
        }
        for (channel, recipient) in routes {
            self.queue(Draft {
                channel,
                recipient,
                subject: Some(subject.clone()),
                body: body.clone(),
                category: Some(category),
                user_id: Some(user.user_id.clone()),
                patient_id: None,
                appointment_id: None,
                due_at: records::due_of(key),
                created_by: None,
                fallback: Vec::new(),
                fallback_of: None,
                invitation: None,
            });
        }
        Ok(())
    }
}
