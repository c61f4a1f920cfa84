//! Names of live channels a WebSocket client can subscribe to.
//!
//! Every channel has its own gap-free sequence of events. The later issues add
//! `board:<providerId>` and `patient:<patientId>`; the machinery is the same.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{InvalidValue, PatientId, ProviderId, UserId};

/// A channel name as it appears on the wire (`"users"`, `"user:usr_123"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Account events of the whole clinic (`user_registered`); admins only.
    Users,
    /// One account's own events (sign-ins, sign-outs, revoked sessions);
    /// that user and admins only.
    User(UserId),
    /// A doctor's live schedule board: every change to their slots. Anyone
    /// signed in may watch; only that doctor and admins see who is booked.
    Board(ProviderId),
    /// One patient's appointment events; that patient, their doctors, admins.
    Patient(PatientId),
    /// Changes to patients and their medical records, by id and field name
    /// only (never values); staff (admins and doctors).
    Patients,
    /// `billing:<patientId>`: that patient's bills, claims and payments as
    /// they change (ids, states and amounts; never what a bill's services
    /// were); the patient and admins.
    Billing(PatientId),
    /// Today's headline figures of the whole clinic as they change, at most
    /// once a second; admins only.
    Analytics,
}

impl Channel {
    /// The channel's wire name; also its key in the store.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Users => f.write_str("users"),
            Channel::User(id) => write!(f, "user:{id}"),
            Channel::Board(id) => write!(f, "board:{id}"),
            Channel::Patient(id) => write!(f, "patient:{id}"),
            Channel::Patients => f.write_str("patients"),
            Channel::Billing(id) => write!(f, "billing:{id}"),
            Channel::Analytics => f.write_str("analytics"),
        }
    }
}

impl FromStr for Channel {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "users" => Ok(Channel::Users),
            None if s == "patients" => Ok(Channel::Patients),
            None if s == "analytics" => Ok(Channel::Analytics),
            Some(("user", id)) => Ok(Channel::User(UserId::parse(id)?)),
            Some(("board", id)) => Ok(Channel::Board(ProviderId::parse(id)?)),
            Some(("patient", id)) => Ok(Channel::Patient(PatientId::parse(id)?)),
            Some(("billing", id)) => Ok(Channel::Billing(PatientId::parse(id)?)),
            _ => Err(InvalidValue(format!(
                "unknown channel {s:?}; expected users, patients, analytics, user:<userId>, board:<providerId>, patient:<patientId> or billing:<patientId>"
            ))),
        }
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Channel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Channel".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A channel name: users, patients, analytics, user:<userId>, board:<providerId>, patient:<patientId> or billing:<patientId>.",
            "pattern": "^(users|patients|analytics|(user|board|patient|billing):[A-Za-z0-9_-]{1,64})$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "users",
            "patients",
            "user:usr_1",
            "board:prov001",
            "patient:pat_9",
            "billing:pat_9",
            "analytics",
        ] {
            let channel: Channel = name.parse().unwrap();
            assert_eq!(channel.to_string(), name);
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for bad in ["", "user", "user:", "user:a.b", "board", "nope:1"] {
            assert!(bad.parse::<Channel>().is_err(), "{bad:?} accepted");
        }
    }
}
