//! One transaction's worth of fired notices ([`Firing`]), what it reads of
//! doctors and patients, and the routing vocabulary the scheduler and
//! dispatch share ([`Reach`], [`TextRoom`], [`draft_for`]). Both build on
//! this module; neither on the other.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::notify::{DeviceRecord, due_of, policy};
use medrelay_actors::patients::PatientRecord;
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::notification::{
    NotificationCategory, NotificationChannel, NotificationPreferences,
};
use medrelay_protocol::schedule::AppointmentId;
use medrelay_protocol::{PatientId, ProviderId};

use super::{Draft, Notifier};

/// One transaction's worth of fired reminders.
pub(super) struct Firing<'a> {
    pub(super) n: &'a Notifier,
    pub(super) now: Timestamp,
    pub(super) batch: WriteBatch,
    /// External notifications to hand to their lanes after the commit.
    pub(super) queued: Vec<(NotificationChannel, String)>,
    /// Appointment → its reminder keys after this batch.
    pub(super) indexes: HashMap<AppointmentId, Vec<String>>,
    /// Doctors' names and patients' details read by this batch (a burst
    /// often holds many reminders of one doctor or patient).
    pub(super) doctors: HashMap<ProviderId, Arc<Doctor>>,
    pub(super) people: HashMap<PatientId, Option<Arc<Person>>>,
    /// Doctors' accounts and patients' names read by this batch for the
    /// doctors' notices (a busy doctor's bookings come in runs).
    pub(super) accounts: HashMap<ProviderId, Option<Arc<DoctorAccount>>>,
    pub(super) names: HashMap<PatientId, String>,
    pub(super) fired: u64,
    /// Confirmations the text channels still have room for.
    pub(super) room: TextRoom,
}

/// What firing needs to know about a doctor.
pub(super) struct Doctor {
    pub(super) name: String,
    pub(super) time_zone: Option<String>,
}

/// What sending a doctor a notice needs to know of them.
pub(super) struct DoctorAccount {
    pub(super) doctor: ProviderRecord,
    pub(super) user: UserRecord,
    pub(super) prefs: NotificationPreferences,
    pub(super) devices: Vec<DeviceRecord>,
}

/// What firing needs to know about a patient.
pub(super) struct Person {
    pub(super) patient: PatientRecord,
    pub(super) user: Option<UserRecord>,
    pub(super) prefs: NotificationPreferences,
    pub(super) devices: Vec<DeviceRecord>,
}

impl Person {
    /// The routes the patient's preferences choose within `reach`.
    pub(super) fn routes(&self, reach: Reach) -> Vec<policy::Route> {
        policy::routes(
            &self.prefs,
            &self.patient,
            self.user.as_ref(),
            &self.devices,
        )
        .into_iter()
        .filter(|route| reach == Reach::Every || route.channel.is_text())
        .collect()
    }
}

/// Which of a patient's routes a notice takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// Every route their preferences choose.
    Every,
    /// Only their text route (e-mail or SMS).
    TextOnly,
}

/// The in-app draft of a notice to `person` due under `key`, about no
/// appointment; [`Firing::dispatch`] makes one per route of it.
pub(super) fn draft_for(
    person: &Person,
    (key, category): (&str, NotificationCategory),
    (subject, body): (String, String),
) -> Draft {
    let patient = &person.patient;
    Draft {
        channel: NotificationChannel::InApp,
        recipient: patient.patient_id.to_string(),
        subject: Some(subject),
        body,
        category: Some(category),
        user_id: patient.user_id.clone(),
        patient_id: Some(patient.patient_id.clone()),
        appointment_id: None,
        due_at: due_of(key),
        created_by: None,
        fallback: Vec::new(),
        fallback_of: None,
        invitation: None,
    }
}

/// How many confirmations each text channel has room for now.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TextRoom {
    pub(super) email: usize,
    pub(super) sms: usize,
}

impl TextRoom {
    /// Whether either channel has room.
    pub(super) fn any(self) -> bool {
        self.email + self.sms > 0
    }

    /// The room left on `channel`; `None` for a channel not paced.
    fn left(&mut self, channel: NotificationChannel) -> Option<&mut usize> {
        match channel {
            NotificationChannel::Email => Some(&mut self.email),
            NotificationChannel::Sms => Some(&mut self.sms),
            NotificationChannel::Push | NotificationChannel::InApp => None,
        }
    }

    /// Whether `channel` has room for one more message.
    pub(super) fn has(mut self, channel: NotificationChannel) -> bool {
        self.left(channel).is_none_or(|left| *left > 0)
    }

    /// Takes room for one message on `channel`; `false` when there is none.
    pub(super) fn take(&mut self, channel: NotificationChannel) -> bool {
        let had = self.has(channel);
        if let Some(left) = self.left(channel) {
            *left = left.saturating_sub(1);
        }
        had
    }
}
