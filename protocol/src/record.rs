//! Medical records as the REST contract shows them (seed: healthcare-api
//! section 4).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{PatientId, RecordId, UserId};

/// The body of `POST /api/records` (`patientId`, `date` and `diagnosis`
/// required) and `PUT /api/records/{id}` (only the fields sent change; the
/// patient does not).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordBody {
    /// The id to use (`POST`; generated when absent).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub record_id: Option<RecordId>,
    /// The patient.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub patient_id: Option<PatientId>,
    /// The encounter date, `YYYY-MM-DD`, not in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2026-11-30")]
    pub date: Option<jiff::civil::Date>,
    /// The diagnosis (1 to 2,000 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub diagnosis: Option<String>,
    /// The treatment (at most 4,000 characters).
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub treatment: Option<String>,
    /// Prescriptions (at most 50, each 1 to 200 characters).
    #[serde(default)]
    pub prescriptions: Option<Vec<String>>,
}

/// What writing a record answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordWritten {
    /// The record.
    #[schema(value_type = String)]
    pub record_id: RecordId,
    /// `Created`, `Updated` or `Deleted`.
    pub status: String,
}

/// A medical record (seed shape, plus who wrote it and its version).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    /// Its id.
    #[schema(value_type = String)]
    pub record_id: RecordId,
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The encounter date.
    #[schema(value_type = String, format = Date)]
    pub date: jiff::civil::Date,
    /// The diagnosis.
    pub diagnosis: String,
    /// The treatment.
    pub treatment: String,
    /// The prescriptions.
    pub prescriptions: Vec<String>,
    /// The doctor's account that wrote it.
    #[schema(value_type = String)]
    pub author: UserId,
    /// Its version, from 1.
    pub version: u32,
}

/// A page of `GET /api/records`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordList {
    /// The records, by id.
    pub records: Vec<RecordView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One version in a record's history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// The version, from 1.
    pub version: u32,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Who.
    #[schema(value_type = String)]
    pub by: UserId,
    /// `created`, `updated` or `deleted`.
    pub change: String,
    /// The fields it changed.
    pub changed: Vec<String>,
}

/// `GET /api/records/{id}/history`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordHistory {
    /// The record.
    #[schema(value_type = String)]
    pub record_id: RecordId,
    /// Its versions, oldest first.
    pub versions: Vec<VersionView>,
}
