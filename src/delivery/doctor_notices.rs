//! Firing notices to doctors ([`DoctorNotice`]): read beside the reminders
//! by due time, sent to the doctor's account by their preferences (e-mail
//! and push; a doctor has no in-app channel of their own yet), in the same
//! transaction that deletes the notice.

use std::sync::Arc;

use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::notify::doctors::{DoctorNotice, DoctorNoticeKind};
use medrelay_actors::notify::{self as records, policy};
use medrelay_actors::patients;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::store::Table;
use medrelay_protocol::notification::{NotificationCategory, NotificationChannel};
use medrelay_protocol::{PatientId, ProviderId};

use super::NotifyError;
use super::compose::{DoctorFacts, compose_doctor};
use super::draft::Draft;
use super::firing::{DoctorAccount, Firing};

impl Firing<'_> {
    /// Sends the notice under `key` to its doctor's account; past their
    /// quiet hours if it falls due within them. A doctor without an
    /// account, or opted out (of appointment changes; of the agenda by
    /// choosing no time for it), gets nothing.
    pub(super) fn fire_doctor(
        &mut self,
        key: &str,
        notice: &DoctorNotice,
    ) -> Result<(), NotifyError> {
        self.batch.require_present(Table::DoctorNotices, key);
        self.batch.delete(Table::DoctorNotices, key);
        let agenda = notice.kind == DoctorNoticeKind::Agenda;
        if agenda && !self.chain_agenda(key, notice)? {
            return Ok(());
        }
        let Some(account) = self.account(&notice.provider_id)? else {
            return Ok(());
        };
        let DoctorAccount {
            doctor,
            user,
            prefs,
            devices,
        } = &*account;
        if notice.user_id.as_ref().is_some_and(|u| *u != user.user_id) {
            // The schedule belongs to another account since.
            return Ok(());
        }
        let n = self.n;
        let store = &n.store;
        let category = if agenda {
            NotificationCategory::AppointmentReminder
        } else {
            NotificationCategory::AppointmentChange
        };
        let allowed = prefs.categories.allows(category) && (!agenda || prefs.agenda_at.is_some());
        if !allowed {
            tracing::debug!(provider = %doctor.provider_id, kind = ?notice.kind, "opted out; not sent");
            return Ok(());
        }
        let tz = self
            .n
            .time_zone_of(policy::zone_name(prefs, Some(&doctor.time_zone)));
        // The agenda comes at the time the doctor chose, quiet hours or not
        // (deferred, it would list a day already begun).
        if !agenda && self.deferred(key, notice, prefs, &tz) {
            return Ok(());
        }
        let shown = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M");
        let mut facts = DoctorFacts {
            doctor: &doctor.name,
            ..DoctorFacts::default()
        };
        let patient_name;
        match notice.kind {
            DoctorNoticeKind::NeedsReschedule => {
                // Only those still outside the doctor's hours are listed.
                for id in &notice.appointments {
                    let Some(a) = store.get::<AppointmentRecord>(id.as_str())? else {
                        continue;
                    };
                    if !a.needs_reschedule || !a.status.holds_slot() {
                        continue;
                    }
                    let name = self.patient_name(&a.patient_id);
                    facts.lines.push(format!("{} {name}", shown(a.slot.start)));
                }
                if facts.lines.is_empty() {
                    return Ok(());
                }
            }
            DoctorNoticeKind::Booked
            | DoctorNoticeKind::Rescheduled
            | DoctorNoticeKind::Cancelled => {
                let Some(id) = notice.appointments.first() else {
                    return Ok(());
                };
                let Some(a) = store.get::<AppointmentRecord>(id.as_str())? else {
                    return Ok(());
                };
                patient_name = self.patient_name(&a.patient_id);
                facts.patient = &patient_name;
                facts.when = shown(notice.at.unwrap_or(a.slot.start)).to_string();
                facts.from = notice
                    .from
                    .map(|t| shown(t).to_string())
                    .unwrap_or_default();
            }
            DoctorNoticeKind::Agenda => {
                let Some(day) = notice.day else {
                    return Ok(());
                };
                facts.date = day.to_string();
                for (start, patient) in self.agenda(&notice.provider_id, day, &tz)? {
                    let name = self.patient_name(&patient);
                    let time = start.to_zoned(tz.clone()).strftime("%H:%M").to_string();
                    facts.lines.push(format!("{time} {name}"));
                }
            }
        }
        let (subject, body) = compose_doctor(&self.n.settings().templates, notice.kind, &facts);
        let mut routes = Vec::new();
        if prefs.channels.allows(NotificationChannel::Email) {
            routes.push((NotificationChannel::Email, user.email.as_str().to_owned()));
        }
        if prefs.channels.allows(NotificationChannel::Push) {
            for device in devices {
                routes.push((NotificationChannel::Push, device.token.clone()));
            }
        }
        for (channel, recipient) in routes {
            // A push shows on a locked screen and passes through its
            // provider: the subject only, which names no patient.
            let body = if channel == NotificationChannel::Push {
                subject.clone()
            } else {
                body.clone()
            };
            self.queue(Draft {
                channel,
                recipient,
                subject: Some(subject.clone()),
                body,
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

    /// A patient's name as a doctor's notice shows it, read once per batch.
    fn patient_name(&mut self, id: &PatientId) -> String {
        if let Some(name) = self.names.get(id) {
            return name.clone();
        }
        let name = patients::load(&self.n.store, &self.n.vault, id)
            .ok()
            .flatten()
            .map_or_else(|| "a patient".to_owned(), |p| p.name);
        self.names.insert(id.clone(), name.clone());
        name
    }

    /// The doctor's schedule, account, preferences and devices, read once
    /// per batch; `None` when the schedule or its account is gone.
    pub(super) fn account(
        &mut self,
        id: &ProviderId,
    ) -> Result<Option<Arc<DoctorAccount>>, NotifyError> {
        if let Some(known) = self.accounts.get(id) {
            return Ok(known.clone());
        }
        let store = &self.n.store;
        let mut account = None;
        if let Some(doctor) = store.get::<ProviderRecord>(id.as_str())?
            && let Some(user) = &doctor.user_id
            && let Some(user) = store.get::<UserRecord>(user.as_str())?
        {
            account = Some(Arc::new(DoctorAccount {
                prefs: records::preferences(store, &user.user_id)?,
                devices: self.n.devices(&user.user_id)?,
                doctor,
                user,
            }));
        }
        self.accounts.insert(id.clone(), account.clone());
        Ok(account)
    }
}
