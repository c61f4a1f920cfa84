//! One transaction's worth of fired notices ([`Firing`]), what it reads of
//! doctors and patients, and the routing vocabulary the scheduler and
//! dispatch share ([`Reach`], [`TextRoom`], [`draft_for`]). Both build on
//! this module; neither on the other. What a batch does with what it reads
//! (reminders, confirmations, notices) stays with the scheduler and the
//! notice modules.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use medrelay_actors::accounts::{ProviderRecord, UserRecord};
use medrelay_actors::fault::Fault;
use medrelay_actors::notify::{self as records, DeviceRecord, due_of, policy};
use medrelay_actors::patients;
use medrelay_actors::patients::PatientRecord;
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::notification::{
    NotificationCategory, NotificationChannel, NotificationPreferences,
};
use medrelay_protocol::schedule::AppointmentId;
use medrelay_protocol::{PatientId, ProviderId};

use super::{Draft, Notifier, NotifyError};

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
    doctors: HashMap<ProviderId, Arc<Doctor>>,
    people: HashMap<PatientId, Option<Arc<Person>>>,
    /// Doctors' accounts and patients' names read by this batch for the
    /// doctors' notices (a busy doctor's bookings come in runs).
    pub(super) accounts: HashMap<ProviderId, Option<Arc<DoctorAccount>>>,
    pub(super) names: HashMap<PatientId, String>,
    pub(super) fired: u64,
    /// Confirmations the text channels still have room for.
    pub(super) room: TextRoom,
}

impl<'a> Firing<'a> {
    /// An empty batch, firing as of `now`.
    pub(super) fn new(n: &'a Notifier, now: Timestamp, room: TextRoom) -> Self {
        Firing {
            n,
            now,
            batch: WriteBatch::new(),
            queued: Vec::new(),
            indexes: HashMap::new(),
            doctors: HashMap::new(),
            people: HashMap::new(),
            accounts: HashMap::new(),
            names: HashMap::new(),
            fired: 0,
            room,
        }
    }

    /// A doctor's name and zone, read once per batch.
    pub(super) fn doctor(&mut self, id: &ProviderId) -> Result<Arc<Doctor>, NotifyError> {
        if let Some(known) = self.doctors.get(id) {
            return Ok(known.clone());
        }
        let doctor = Arc::new(match self.n.store.get::<ProviderRecord>(id.as_str())? {
            Some(p) => Doctor {
                name: p.name,
                time_zone: Some(p.time_zone),
            },
            None => Doctor {
                name: "your doctor".to_owned(),
                time_zone: None,
            },
        });
        self.doctors.insert(id.clone(), doctor.clone());
        Ok(doctor)
    }

    /// A patient's profile, account, preferences and devices, read once per
    /// batch; `None` when the patient is gone.
    pub(super) fn person(&mut self, id: &PatientId) -> Result<Option<Arc<Person>>, NotifyError> {
        if let Some(known) = self.people.get(id) {
            return Ok(known.clone());
        }
        let store = &self.n.store;
        let loaded = patients::load(store, &self.n.vault, id);
        let person = match loaded.map_err(|e| NotifyError::Storage(Fault::new(e)))? {
            None => None,
            Some(patient) => {
                let user = match &patient.user_id {
                    Some(u) => store.get::<UserRecord>(u.as_str())?,
                    None => None,
                };
                let (prefs, devices) = match &user {
                    Some(u) => (
                        records::preferences(store, &u.user_id)?,
                        self.n.devices(&u.user_id)?,
                    ),
                    None => (Default::default(), Vec::new()),
                };
                Some(Arc::new(Person {
                    patient,
                    user,
                    prefs,
                    devices,
                }))
            }
        };
        self.people.insert(id.clone(), person.clone());
        Ok(person)
    }
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
