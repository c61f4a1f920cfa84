//! NATS subjects and payloads.
//!
//! - Events: `<prefix>.evt.<aggregate>.<id>.<kind>`, payload [`EventEnvelope`],
//!   header `Nats-Msg-Id` = [`EventEnvelope::event_id`].
//! - Commands: `<prefix>.cmd.schedule.<providerId>`, request/reply. The request
//!   body is a WebSocket [`crate::ws::ClientFrame`] (`book`, `reschedule`,
//!   `cancel`, `get`, `board`), the reply a [`crate::ws::Reply`]; the caller's
//!   JWT travels in the `Authorization: Bearer <token>` header.
//! - Commands: `<prefix>.cmd.billing.<patientId>`, request/reply, the same
//!   header: [`BillingCommand`] (the seed's `GetBillingAccount` and
//!   `CreateBillingAccount`), answered with the account in a reply of the
//!   WebSocket's shape.
//!
//! Only events that other systems act on leave the server: everything on a
//! doctor's board (aggregate `schedule`) and account creation (aggregate
//! `user`). A patient's own channel repeats the board's events and session
//! events are private, so neither is published.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::event::Event;
use crate::ids::{PatientId, ProviderId};

/// The version of [`EventEnvelope`]; bumped on an incompatible change.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The NATS header that carries the caller's token on a command.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// One published event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    /// Schema version of this envelope ([`EVENT_SCHEMA_VERSION`]).
    pub v: u32,
    /// Globally unique and stable across republishes: `<channel>/<seq>`.
    pub event_id: String,
    /// The live channel the event belongs to.
    pub channel: Channel,
    /// The event's gap-free position in its channel.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// The aggregate and id an event is published under, or `None` when events of
/// `channel` stay inside the server.
pub fn aggregate(channel: &Channel, event: &Event) -> Option<(&'static str, String)> {
    match channel {
        Channel::Board(provider) => Some(("schedule", provider.to_string())),
        Channel::Users => Some((
            "user",
            match event {
                Event::UserRegistered { user_id, .. }
                | Event::SignedIn { user_id, .. }
                | Event::SignedOut { user_id, .. }
                | Event::SessionRevoked { user_id, .. } => user_id.to_string(),
                _ => "all".to_owned(),
            },
        )),
        Channel::Patients => match event {
            Event::PatientRegistered { patient_id, .. }
            | Event::PatientUpdated { patient_id, .. }
            | Event::PatientDeleted { patient_id, .. } => Some(("patient", patient_id.to_string())),
            Event::RecordCreated(c) | Event::RecordUpdated(c) | Event::RecordDeleted(c) => {
                Some(("patient", c.patient_id.to_string()))
            }
            _ => None,
        },
        Channel::Billing(patient) => Some(("billing", patient.to_string())),
        Channel::User(_) | Channel::Patient(_) | Channel::Analytics => None,
    }
}

/// Whether events of `channel` are published.
pub fn is_published(channel: &Channel) -> bool {
    matches!(
        channel,
        Channel::Board(_) | Channel::Users | Channel::Patients | Channel::Billing(_)
    )
}

/// Subject names under one prefix (default `medrelay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects under `prefix` (a NATS token path such as `medrelay` or `clinic1.medrelay`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where `event` on `channel` is published, or `None` when it is not.
    pub fn event(&self, channel: &Channel, event: &Event) -> Option<String> {
        let (aggregate, id) = aggregate(channel, event)?;
        Some(format!(
            "{}.evt.{aggregate}.{id}.{}",
            self.prefix,
            event.kind()
        ))
    }

    /// Every event subject (the stream's subject filter).
    pub fn all_events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// The command subject of one doctor's schedule.
    pub fn schedule_command(&self, provider: &ProviderId) -> String {
        format!("{}.cmd.schedule.{provider}", self.prefix)
    }

    /// Every doctor's command subject (what the owner node listens to).
    pub fn all_schedule_commands(&self) -> String {
        format!("{}.cmd.schedule.*", self.prefix)
    }

    /// The provider a command subject names, if it is one.
    pub fn provider_of(&self, subject: &str) -> Option<ProviderId> {
        let rest = subject.strip_prefix(self.prefix.as_str())?;
        let id = rest.strip_prefix(".cmd.schedule.")?;
        ProviderId::parse(id).ok()
    }

    /// The command subject of one patient's billing account.
    pub fn billing_command(&self, patient: &PatientId) -> String {
        format!("{}.cmd.billing.{patient}", self.prefix)
    }

    /// Every patient's billing command subject.
    pub fn all_billing_commands(&self) -> String {
        format!("{}.cmd.billing.*", self.prefix)
    }

    /// The patient a billing command subject names, if it is one.
    pub fn patient_of(&self, subject: &str) -> Option<PatientId> {
        let rest = subject.strip_prefix(self.prefix.as_str())?;
        let id = rest.strip_prefix(".cmd.billing.")?;
        PatientId::parse(id).ok()
    }
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new("medrelay")
    }
}

/// Whether `prefix` is a valid subject prefix: dot-separated tokens of
/// letters, digits, `-` and `_`, no wildcards.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 128
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A request on `<prefix>.cmd.billing.<patientId>`:
/// `{"type":"get"}`, `{"type":"create"}`, or an insurer's decision on one
/// of the patient's claims, `{"type":"decide","claimId","decision":{...}}`
/// (the body of `PUT /api/claims/{claimId}`), with an optional `id` echoed
/// as the reply's `re`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingCommand {
    /// Echoed as the reply's `re`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What to do.
    #[serde(rename = "type")]
    pub kind: BillingCommandKind,
    /// With `decide`: the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<crate::ids::ClaimId>,
    /// With `decide`: the insurer's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::claim::ClaimDecision>,
}

/// What a [`BillingCommand`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingCommandKind {
    /// The account: balance, credit, open bills (`GetBillingAccount`).
    Get,
    /// Opens the account if the patient has none, then answers as `get`
    /// (`CreateBillingAccount`; admins).
    Create,
    /// Records an insurer's decision on a claim (admins, or an insurer's
    /// integration holding an admin token); answers `{"claimId","status"}`.
    Decide,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::schedule::AppointmentId;

    fn booked() -> Event {
        Event::AppointmentBooked {
            appointment_id: AppointmentId::parse("apt_1").unwrap(),
            provider_id: ProviderId::parse("prov001").unwrap(),
            patient_id: None,
            slot: serde_json::from_value(serde_json::json!({
                "date": "2026-12-01", "timeSlot": "09:00",
                "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:30:00Z"
            }))
            .unwrap(),
        }
    }

    #[test]
    fn event_subjects() {
        let subjects = Subjects::default();
        let board = Channel::Board(ProviderId::parse("prov001").unwrap());
        assert_eq!(
            subjects.event(&board, &booked()).as_deref(),
            Some("medrelay.evt.schedule.prov001.appointment_booked")
        );
        let registered = Event::UserRegistered {
            user_id: UserId::parse("usr_7").unwrap(),
            username: crate::Username::parse("ann").unwrap(),
            role: crate::Role::Patient,
            at: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            subjects.event(&Channel::Users, &registered).as_deref(),
            Some("medrelay.evt.user.usr_7.user_registered")
        );
        let patient = Channel::Patient(crate::PatientId::parse("pat_1").unwrap());
        assert_eq!(subjects.event(&patient, &booked()), None);
        let created = Event::RecordCreated(crate::event::RecordChange {
            record_id: crate::RecordId::parse("rec_1").unwrap(),
            patient_id: crate::PatientId::parse("pat_1").unwrap(),
            fields: vec!["diagnosis".into()],
            at: jiff::Timestamp::UNIX_EPOCH,
        });
        assert_eq!(
            subjects.event(&Channel::Patients, &created).as_deref(),
            Some("medrelay.evt.patient.pat_1.record_created")
        );
    }

    #[test]
    fn command_subjects_round_trip() {
        let subjects = Subjects::new("clinic1.medrelay");
        let provider = ProviderId::parse("prov001").unwrap();
        let subject = subjects.schedule_command(&provider);
        assert_eq!(subject, "clinic1.medrelay.cmd.schedule.prov001");
        assert_eq!(subjects.provider_of(&subject), Some(provider));
        assert_eq!(
            subjects.provider_of("clinic1.medrelay.cmd.schedule.a.b"),
            None
        );
        assert_eq!(subjects.provider_of("other.cmd.schedule.prov001"), None);
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("medrelay"));
        assert!(valid_prefix("clinic-1.medrelay"));
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a"] {
            assert!(!valid_prefix(bad), "{bad:?} accepted");
        }
    }
}
