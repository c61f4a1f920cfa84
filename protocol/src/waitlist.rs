//! A doctor's waitlist: patients who want a slot in a date range and times
//! of day, offered freed slots in the order they joined.

use jiff::Timestamp;
use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{PatientId, ProviderId};
use crate::schedule::TimeRange;

/// Join a doctor's waitlist (`POST /api/providers/{id}/waitlist`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinWaitlist {
    /// The patient (a patient's own when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub patient_id: Option<PatientId>,
    /// First date wanted (the doctor's zone).
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    /// Last date wanted, inclusive.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// Times of day wanted (`["09:00-12:00"]`, the doctor's zone); none:
    /// any time.
    #[serde(default)]
    pub times: Vec<TimeRange>,
}

/// A waitlist entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntryView {
    /// Its id.
    pub entry_id: String,
    /// The doctor.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// First date wanted.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    /// Last date wanted.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    /// Times of day wanted (none: any).
    pub times: Vec<TimeRange>,
    /// When the patient joined (the order offers follow).
    #[schemars(with = "String")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// `GET /api/providers/{id}/waitlist`: in the order offers follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistView {
    /// The entries the caller may see.
    pub entries: Vec<WaitlistEntryView>,
}
