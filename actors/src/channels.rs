//! Who may subscribe to which channel, who sees patients' identities on it,
//! and what a channel's snapshot holds.

use medrelay_protocol::{Channel, PatientId, ProviderId, Role, UserId};
use serde_json::{Value, json};

use crate::accounts::{ProviderRecord, UserRecord};
use crate::patients::StoredPatient;
use crate::schedule::{AppointmentRecord, PatientAppointment, ProviderAppointment, indexed_ids};
use crate::store::{Store, StoreError, StoredEvent};

/// The most users a `users` snapshot lists.
const USERS_SNAPSHOT_LIMIT: usize = 500;
/// The most appointments a patient channel's snapshot lists.
const PATIENT_SNAPSHOT_LIMIT: usize = 500;

/// Who is looking: an account, with the profiles it owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    /// The account.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// Its patient profile.
    pub patient_id: Option<PatientId>,
    /// Its provider profile.
    pub provider_id: Option<ProviderId>,
}

impl From<&UserRecord> for Viewer {
    fn from(u: &UserRecord) -> Self {
        Viewer {
            user_id: u.user_id.clone(),
            role: u.role,
            patient_id: u.patient_id.clone(),
            provider_id: u.provider_id.clone(),
        }
    }
}

impl Viewer {
    /// Whether this viewer is the doctor of `provider` (or an admin).
    pub fn manages(&self, provider: &ProviderId) -> bool {
        self.role == Role::Admin
            || (self.role == Role::Doctor && self.provider_id.as_ref() == Some(provider))
    }

    /// Whether this viewer may read `patient`'s data: that patient, an admin,
    /// or a doctor who has (or had) an appointment with them.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn may_see_patient(&self, store: &Store, patient: &PatientId) -> Result<bool, StoreError> {
        Ok(match self.role {
            Role::Admin => true,
            Role::Patient => self.patient_id.as_ref() == Some(patient),
            Role::Doctor => match &self.provider_id {
                None => false,
                Some(own) => {
                    // The doctor's own index answers without decoding any
                    // appointment: is `<doctor>/<appointment>` there?
                    for id in
                        indexed_ids::<PatientAppointment>(store, patient.as_str(), usize::MAX)?
                    {
                        let key = format!("{own}/{id}");
                        if store.get::<ProviderAppointment>(&key)?.is_some() {
                            return Ok(true);
                        }
                    }
                    false
                }
            },
        })
    }
}

/// Whether `viewer` may subscribe to `channel`.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn may_subscribe(
    store: &Store,
    viewer: &Viewer,
    channel: &Channel,
) -> Result<bool, StoreError> {
    Ok(match channel {
        Channel::Users => viewer.role == Role::Admin,
        Channel::User(owner) => viewer.role == Role::Admin || *owner == viewer.user_id,
        Channel::Board(_) => true,
        Channel::Patient(patient) => viewer.may_see_patient(store, patient)?,
        Channel::Patients => matches!(viewer.role, Role::Admin | Role::Doctor),
        Channel::Billing(patient) => {
            viewer.role == Role::Admin || viewer.patient_id.as_ref() == Some(patient)
        }
        Channel::Analytics => viewer.role == Role::Admin,
    })
}

/// Whether what `channel` is about exists: the account, the doctor, the
/// patient. Subscribing allocates the channel's ring in the hub for as long
/// as the subscription lasts, so a channel of nothing is refused before that.
/// Ask after [`may_subscribe`], so that a viewer who may not see a channel
/// does not learn whether it exists.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn exists(store: &Store, channel: &Channel) -> Result<bool, StoreError> {
    Ok(match channel {
        Channel::Users | Channel::Patients | Channel::Analytics => true,
        Channel::User(user) => store.get::<UserRecord>(user.as_str())?.is_some(),
        Channel::Board(provider) => store.get::<ProviderRecord>(provider.as_str())?.is_some(),
        Channel::Patient(patient) | Channel::Billing(patient) => {
            store.get::<StoredPatient>(patient.as_str())?.is_some()
        }
    })
}

/// Whether `viewer` sees who is booked on `channel` (boards show patients and
/// displays slot state only).
pub fn reveals_patients(viewer: &Viewer, channel: &Channel) -> bool {
    match channel {
        Channel::Board(provider) => viewer.manages(provider),
        _ => true,
    }
}

/// The current state of a channel whose state lives in the store (every
/// channel but boards, whose snapshot comes from their `ScheduleActor`).
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn snapshot(store: &Store, channel: &Channel) -> Result<Value, StoreError> {
    match channel {
        Channel::Users => {
            let users = store.scan::<UserRecord>(None, USERS_SNAPSHOT_LIMIT + 1)?;
            let truncated = users.len() > USERS_SNAPSHOT_LIMIT;
            let users: Vec<Value> = users
                .iter()
                .take(USERS_SNAPSHOT_LIMIT)
                .map(|(_, u)| summary(u))
                .collect();
            Ok(json!({ "users": users, "truncated": truncated }))
        }
        Channel::User(id) => Ok(store
            .get::<UserRecord>(id.as_str())?
            .map(|u| json!({ "user": summary(&u) }))
            .unwrap_or_else(|| json!({ "user": null }))),
        Channel::Patient(patient) => {
            let now = jiff::Timestamp::now();
            let mut appointments = Vec::new();
            for id in indexed_ids::<PatientAppointment>(store, patient.as_str(), usize::MAX)? {
                if let Some(a) = store.get::<AppointmentRecord>(id.as_str())?
                    && a.slot.end > now
                    && a.status.holds_slot()
                {
                    appointments.push(a);
                }
            }
            appointments.sort_by_key(|a| a.slot.start);
            appointments.truncate(PATIENT_SNAPSHOT_LIMIT);
            let list: Vec<Value> = appointments
                .iter()
                .map(|a| {
                    json!({
                        "appointmentId": a.appointment_id, "providerId": a.provider_id,
                        "status": a.status, "slot": a.slot,
                    })
                })
                .collect();
            Ok(json!({ "patientId": patient, "upcoming": list }))
        }
        // A stream of changes, not a state: it starts empty.
        Channel::Patients => Ok(json!({})),
        // Changes too; the state is GET /api/billing-accounts/{patientId}
        // (amounts would not survive a JSON value).
        Channel::Billing(patient) => Ok(json!({ "patientId": patient })),
        Channel::Board(_) => Ok(Value::Null),
        Channel::Analytics => Ok(json!({
            "today": crate::stats::headline(store, jiff::Timestamp::now())?
        })),
    }
}

/// What a subscriber who last saw `since` is owed, up to the channel's
/// `head`.
#[derive(Debug)]
pub struct Replay {
    /// The events after `since`, oldest first (empty on a resync).
    pub events: Vec<StoredEvent>,
    /// True when the missed events are no longer all kept, or `since` is
    /// ahead of the channel: the subscriber must start over from a snapshot.
    pub resync: bool,
}

/// The events of `channel` after `since` up to `head`, or a resync when
/// they are not all kept.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn replay(
    store: &Store,
    channel: &Channel,
    since: u64,
    head: u64,
) -> Result<Replay, StoreError> {
    if since > head {
        return Ok(Replay {
            events: Vec::new(),
            resync: true,
        });
    }
    let wanted = head - since;
    let (events, _) = store.channel_events(channel, since, wanted as usize)?;
    let complete =
        events.len() as u64 == wanted && events.first().is_none_or(|e| e.seq == since + 1);
    Ok(if complete {
        Replay {
            events,
            resync: false,
        }
    } else {
        Replay {
            events: Vec::new(),
            resync: true,
        }
    })
}

fn summary(user: &UserRecord) -> Value {
    json!({
        "userId": user.user_id,
        "username": user.username,
        "role": user.role,
        "patientId": user.patient_id,
        "providerId": user.provider_id,
    })
}
