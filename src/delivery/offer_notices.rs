//! Firing slot offers ([`OfferNotice`]): read beside the reminders by due
//! time, sent to the patient by their routes (in-app, their text channel,
//! push) under `appointment_change`, only while the hold still stands, in
//! the same transaction that deletes the notice. Not deferred past quiet
//! hours: the hold lapses in minutes.

use medrelay_actors::notify::policy;
use medrelay_actors::schedule::holds::HoldRecord;
use medrelay_actors::schedule::offers::OfferNotice;
use medrelay_actors::store::Table;
use medrelay_protocol::notification::NotificationCategory;

use super::NotifyError;
use super::compose::{Facts, compose_offer};
use super::firing::Firing;

impl Firing<'_> {
    /// Sends the offer under `key` to its patient, if its hold stands.
    pub(super) fn fire_offer(
        &mut self,
        key: &str,
        notice: &OfferNotice,
    ) -> Result<(), NotifyError> {
        self.batch.require_present(Table::OfferNotices, key);
        self.batch.delete(Table::OfferNotices, key);
        let hold_key = format!("{}/{}", notice.provider_id, notice.hold_id);
        let Some(hold) = self.n.store.get::<HoldRecord>(&hold_key)? else {
            return Ok(());
        };
        if !hold.live(self.now) {
            return Ok(());
        }
        let Some(person) = self.person(&hold.patient_id)? else {
            return Ok(());
        };
        let category = NotificationCategory::AppointmentChange;
        if !person.prefs.categories.allows(category) {
            tracing::debug!(hold = %hold.hold_id, "opted out of appointment changes; offer not sent");
            return Ok(());
        }
        let doctor = self.doctor(&hold.provider_id)?;
        let tz = self.n.time_zone_of(policy::zone_name(
            &person.prefs,
            doctor.time_zone.as_deref(),
        ));
        let (subject, body) = compose_offer(
            &self.n.settings.templates,
            &Facts {
                patient: &person.patient.name,
                doctor: &doctor.name,
                appointment_id: "",
                start: hold.slot.start,
                tz: &tz,
                slots: &[],
            },
            hold.expires_at,
        );
        self.dispatch_notice(&person, (key, category), (subject, body));
        Ok(())
    }
}
