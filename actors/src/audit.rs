//! Audit entries: who did what to which patient's data, how and why.
//!
//! The fields follow FHIR's AuditEvent: `action` (C, R, U, D, E), `recorded`,
//! `outcome`, the `agent` (user, role, token, client address, user agent),
//! the `entity` (resource type and id, patient), the `source` (surface and
//! request id) and the `purpose` (a break-the-glass reason). An entry never
//! holds patient data itself: ids, and the kinds of a search's criteria,
//! never their values.
//!
//! Entries go into a [`WriteBatch`] with [`record`]: a write's entry commits
//! in the write's own transaction; a read's entry is written (durably)
//! before the read is answered. The store chains them
//! ([`crate::store::Store::verify_audit`]).

use jiff::Timestamp;
use medrelay_protocol::{PatientId, Role, UserId};
use serde::{Deserialize, Serialize};

use crate::store::WriteBatch;

/// FHIR AuditEvent action codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Create.
    C,
    /// Read.
    R,
    /// Update.
    U,
    /// Delete.
    D,
    /// Execute: a search or an export.
    E,
}

impl Action {
    /// `C`, `R`, `U`, `D` or `E`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::C => "C",
            Action::R => "R",
            Action::U => "U",
            Action::D => "D",
            Action::E => "E",
        }
    }
}

/// How the attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused: the caller may not do it.
    Denied,
    /// Allowed, but it failed (nothing there, or a conflict).
    Failed,
}

impl Outcome {
    /// `success`, `denied` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// Who asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Its role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The access token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// What was touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// `Patient`, `MedicalRecord`, `AuditEvent`.
    pub resource_type: String,
    /// The resource, when one is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The patients whose data it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<PatientId>,
    /// Without values: the kinds of a search's criteria, or which fields
    /// a change touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Through which surface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// `rest`, `websocket` or `nats`.
    pub channel: String,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Why, when the caller said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purpose {
    /// The reason given, sealed (it is free text and may describe the
    /// patient's condition); see [`reason_place`].
    pub reason: crate::phi::Sealed,
    /// Whether it opened data outside the caller's ordinary access
    /// ("break the glass").
    pub emergency: bool,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// C, R, U, D or E.
    pub action: Action,
    /// When.
    pub recorded: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
    /// Who.
    pub agent: Agent,
    /// What.
    pub entity: Entity,
    /// How.
    pub source: Source,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
}

/// Where an entry's reason is sealed: the audit log, the request id (or
/// `none`), the field `reason`.
pub fn reason_place(request_id: Option<&str>) -> crate::phi::Place<'_> {
    crate::phi::Place {
        table: "audit_log",
        id: request_id.unwrap_or("none"),
        field: "reason",
    }
}

/// Adds `entry` to `batch`, indexed under each of its patients.
pub fn record(batch: &mut WriteBatch, entry: &AuditEntry) {
    let patients = entry
        .entity
        .patients
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let json = serde_json::to_vec(entry).expect("audit entries serialise to JSON");
    batch.audit(patients, json);
}
