//! Firing billing notices ([`BillingNotice`]): the scheduler reads them
//! beside the reminders, by due time, and sends each to the patient under
//! the `billing` category, in the same transaction that deletes it.

use medrelay_actors::billing::notices::BillingNotice;
use medrelay_actors::notify::policy;
use medrelay_actors::store::Table;
use medrelay_protocol::notification::NotificationCategory;

use super::NotifyError;
use super::compose::compose_billing;
use super::firing::Firing;

impl Firing<'_> {
    /// Sends the notice under `key` to its patient, by their preferences;
    /// past their quiet hours if it falls due within them.
    pub(super) fn fire_billing(
        &mut self,
        key: &str,
        notice: &BillingNotice,
    ) -> Result<(), NotifyError> {
        self.batch.require_present(Table::BillingNotices, key);
        self.batch.delete(Table::BillingNotices, key);
        let Some(person) = self.person(&notice.patient_id)? else {
            return Ok(());
        };
        let category = NotificationCategory::Billing;
        if !person.prefs.categories.allows(category) {
            tracing::debug!(subject = %notice.subject_id, "opted out of billing notices; not sent");
            return Ok(());
        }
        let tz = self.n.time_zone_of(policy::zone_name(&person.prefs, None));
        // No deadline: a notice that falls in quiet hours waits them out.
        if self.deferred(key, notice, &person.prefs, &tz) {
            return Ok(());
        }
        let (subject, body) = compose_billing(
            &self.n.settings.templates,
            notice,
            &person.patient.name,
            &self.n.currency,
        );
        self.dispatch_notice(&person, (key, category), (subject, body));
        Ok(())
    }
}
