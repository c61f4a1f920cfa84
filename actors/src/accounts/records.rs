//! The account records: users, the username index, patient and provider
//! profiles, refresh tokens and revocations.

use jiff::Timestamp;
use medrelay_protocol::profile::ContactInfo;
use medrelay_protocol::schedule::{DateException, DayAvailability};
use medrelay_protocol::{Email, PatientId, ProviderId, Role, UserId, Username};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Table};

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// Its id.
    pub user_id: UserId,
    /// Its login name (lower-cased).
    pub username: Username,
    /// Its e-mail address.
    pub email: Email,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Its role.
    pub role: Role,
    /// The patient profile, for patients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
    /// The provider profile, for doctors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Record for UserRecord {
    const TABLE: Table = Table::Users;
    const VERSION: u16 = 1;
}

/// Username index entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsernameEntry {
    /// The user holding the name.
    pub user_id: UserId,
}

impl Record for UsernameEntry {
    const TABLE: Table = Table::Usernames;
    const VERSION: u16 = 1;
}

/// A provider (doctor) profile (seed `DOCTOR_TBL` / `/api/providers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRecord {
    /// Its id.
    pub provider_id: ProviderId,
    /// The doctor account it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Display name.
    pub name: String,
    /// Specialization.
    #[serde(default)]
    pub specialization: String,
    /// Contact details.
    #[serde(default)]
    pub contact_info: ContactInfo,
    /// IANA time zone of the provider's availability.
    pub time_zone: String,
    /// Length of one slot, in minutes.
    #[serde(default = "default_slot_minutes")]
    pub slot_minutes: u16,
    /// Weekly working hours.
    #[serde(default)]
    pub availability: Vec<DayAvailability>,
    /// Dates whose hours differ from the weekly pattern.
    #[serde(default)]
    pub exceptions: Vec<DateException>,
    /// When it was created.
    pub created_at: Timestamp,
}

pub(super) fn default_slot_minutes() -> u16 {
    30
}

impl Record for ProviderRecord {
    const TABLE: Table = Table::Providers;
    const VERSION: u16 = 1;
}

/// A refresh token that was issued (keyed by its `jti`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRecord {
    /// Its owner.
    pub user_id: UserId,
    /// The session it belongs to.
    pub family: String,
    /// Unix seconds after which it is worthless (and may be pruned).
    pub expires_at: i64,
    /// Whether it was already exchanged.
    pub used: bool,
}

impl Record for RefreshRecord {
    const TABLE: Table = Table::RefreshTokens;
    const VERSION: u16 = 1;
}

/// A revoked access token or session, kept until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// Unix seconds after which the revoked thing would be invalid anyway.
    pub expires_at: i64,
}

/// The stored form of a revoked token or session, keyed by its id.
macro_rules! revocation_record {
    ($name:ident, $table:expr) => {
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub(super) struct $name(pub(super) Revocation);
        impl Record for $name {
            const TABLE: Table = $table;
            const VERSION: u16 = 1;
        }
    };
}
revocation_record!(RevokedToken, Table::RevokedTokens);
revocation_record!(RevokedFamily, Table::RevokedFamilies);
