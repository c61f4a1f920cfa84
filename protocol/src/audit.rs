//! The audit trail as the REST API shows it (`GET /api/audit`,
//! `GET /api/patients/{id}/access-log`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::Role;
use crate::ids::UserId;

/// One audit entry: its number and its FHIR AuditEvent fields (`action`,
/// `recorded`, `outcome`, `agent`, `entity`, `source`, `purpose`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Its place in the log.
    pub seq: u64,
    /// The entry.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
}

/// A page of `GET /api/audit`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Entries, oldest first.
    pub entries: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// One access to a patient's data, as the patient sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogEntry {
    /// Its place in the audit log.
    pub seq: u64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub recorded: jiff::Timestamp,
    /// `C`, `R`, `U`, `D` or `E`.
    pub action: String,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    /// Who.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// Their role.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// What: `Patient`, `MedicalRecord`.
    pub resource_type: String,
    /// Which one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The reason given, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether it was an emergency access ("break the glass").
    pub emergency: bool,
}

/// A page of a patient's access log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLog {
    /// Accesses, oldest first.
    pub entries: Vec<AccessLogEntry>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}
