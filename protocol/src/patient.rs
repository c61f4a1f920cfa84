//! Patients as the REST contract shows them (seed: healthcare-api section 2,
//! patient-management-readme).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Email, PatientId};
use crate::profile::{Address, ContactInfo, MedicalHistory, Phone};

/// The body of `POST /api/patients` and `PUT /api/patients/{id}`, in either
/// seed shape: healthcare-api (`name`, `dob`, `contactInfo`,
/// `medicalHistory`) or patient-management (`firstName`, `lastName`,
/// `dateOfBirth`, `address`, `phoneNumber`, `email`). On `PUT` only the
/// fields sent change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatientBody {
    /// Full name (1 to 200 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// Date of birth, `YYYY-MM-DD`, not in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "1980-01-01")]
    pub dob: Option<jiff::civil::Date>,
    /// Phone and e-mail.
    #[serde(default)]
    pub contact_info: Option<ContactInfo>,
    /// Allergies and chronic conditions (at most 100 of each, 200 characters each).
    #[serde(default)]
    pub medical_history: Option<MedicalHistory>,
    /// Given name (with `lastName`, instead of `name`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub first_name: Option<String>,
    /// Family name (with `firstName`, instead of `name`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub last_name: Option<String>,
    /// Date of birth (instead of `dob`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "1980-01-01")]
    pub date_of_birth: Option<jiff::civil::Date>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Phone number (instead of `contactInfo.phone`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "+4930123456", pattern = "^\\+[0-9]{7,15}$")]
    pub phone_number: Option<Phone>,
    /// E-mail address (instead of `contactInfo.email`).
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 254, pattern = "^[^@\\s]{1,64}@[^@\\s.]+(\\.[^@\\s.]+)+$")]
    pub email: Option<Email>,
}

/// What registering or changing a patient answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientWritten {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// `Registered` or `Updated`.
    #[schema(example = "Registered")]
    pub status: String,
}

/// A page of `GET /api/patients`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientList {
    /// The patients on this page, by id.
    pub patients: Vec<crate::profile::Patient>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The body of `POST /api/patients/{id}/invite` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    /// `email` or `sms`; by default e-mail when the patient has an address,
    /// else SMS.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(email|sms)$")]
    pub channel: Option<crate::notification::NotificationChannel>,
}

/// What `POST /api/patients/{id}/invite` answers (202): the invitation is
/// on its way.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteSent {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// How it was sent.
    #[schema(value_type = String)]
    pub channel: crate::notification::NotificationChannel,
    /// When the link stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// The notification carrying it (`GET /api/notifications/{id}`).
    pub notification_id: String,
}

/// One version of a patient's medical history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryVersionView {
    /// The version, from 1 (the history at registration).
    pub version: u32,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Who.
    #[schema(value_type = String)]
    pub by: crate::ids::UserId,
    /// The history as of this version.
    pub medical_history: crate::profile::MedicalHistory,
}

/// `GET /api/patients/{id}/history`: every version of the medical history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedicalHistoryVersions {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The versions, oldest first.
    pub versions: Vec<HistoryVersionView>,
}
