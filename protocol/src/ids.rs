//! Identifiers and account values that validate when parsed.
//!
//! Each type's `parse` (also used by its `Deserialize`) is the only way to
//! build one, so code that holds a `ProviderId` knows it is safe to put in a
//! channel name, a log line or (later) a NATS subject.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a value was rejected; the message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Accepts 1..=64 ASCII letters, digits, `-` and `_`: safe in URLs, channel
/// names and NATS subject tokens (no `.`, `*`, `>` or whitespace).
pub(crate) fn check_token(kind: &str, s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() || s.len() > 64 {
        return Err(InvalidValue(format!("{kind} must be 1 to 64 characters")));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidValue(format!(
            "{kind} may contain only letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// Defines an id type over [`check_token`]; `$kind` names it in errors.
macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
        #[serde(transparent)]
        #[schemars(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an id: 1 to 64 letters, digits, `-` or `_`.
            ///
            /// # Errors
            /// [`InvalidValue`] naming the rule that was broken.
            pub fn parse(s: &str) -> Result<Self, $crate::ids::InvalidValue> {
                $crate::ids::check_token($kind, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use token_id;

token_id!(
    /// A user account's id.
    UserId,
    "userId"
);
token_id!(
    /// A patient profile's id.
    PatientId,
    "patientId"
);
token_id!(
    /// A provider (doctor) profile's id, e.g. `prov001`.
    ProviderId,
    "providerId"
);
token_id!(
    /// A medical record's id.
    RecordId,
    "recordId"
);
token_id!(
    /// A bill's id.
    BillId,
    "billId"
);
token_id!(
    /// An insurance claim's id.
    ClaimId,
    "claimId"
);
token_id!(
    /// A payment's id.
    PaymentId,
    "paymentId"
);

/// A login name: 3 to 32 characters, letters, digits, `.`, `-`, `_`; compared
/// case-insensitively (it is stored lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Username(String);

impl Username {
    /// Parses and lower-cases a username.
    ///
    /// # Errors
    /// [`InvalidValue`] when the length or a character is not allowed.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if !(3..=32).contains(&s.chars().count()) {
            return Err(InvalidValue("username must be 3 to 32 characters".into()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(InvalidValue(
                "username may contain only letters, digits, '.', '-' and '_'".into(),
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The normalised (lower-case) username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address: one `@`, a non-empty local part, a dotted domain, no
/// spaces, at most 254 characters. Deliverability is the mail server's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// [`InvalidValue`] when the address is not of the form `local@domain.tld`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let bad = || InvalidValue("email must look like name@example.org".into());
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What an account may do. Every route and channel names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and changes only their own data.
    #[default]
    Patient,
    /// Manages their own schedule; reads patients.
    Doctor,
    /// Everything, including creating doctor and admin accounts.
    Admin,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_reject_subject_and_path_characters() {
        assert!(ProviderId::parse("prov001").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "x/y", &"a".repeat(65)] {
            assert!(ProviderId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_are_case_insensitive() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("al ice").is_err());
    }

    #[test]
    fn emails_need_a_dotted_domain() {
        assert!(Email::parse("a@b.org").is_ok());
        for bad in [
            "a@b",
            "@b.org",
            "a@@b.org",
            "a b@c.org",
            "a@.org",
            "a@b..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_deserialize_through_parse() {
        let err = serde_json::from_str::<UserId>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("userId"));
    }
}
