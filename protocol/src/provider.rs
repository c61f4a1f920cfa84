//! Doctors' profiles and hours (seed section 6): the bodies of
//! `/api/providers` and `/api/doctors`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{ProviderId, UserId};
use crate::profile::ContactInfo;
use crate::schedule::{DateException, DayAvailability};

/// The body of `POST /api/providers`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProvider {
    /// Generated when absent.
    #[schema(value_type = Option<String>, example = "prov001", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub provider_id: Option<ProviderId>,
    /// 1 to 200 characters.
    #[schema(
        example = "Dr. Jane Doe",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    pub name: String,
    /// 1 to 200 characters (default `General practice`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub specialization: Option<String>,
    /// Phone and e-mail.
    #[serde(default)]
    pub contact_info: Option<ContactInfo>,
    /// Weekly hours: `[{"day":"Monday","slots":["09:00-12:00"]}]`.
    #[serde(default)]
    pub availability: Vec<DayAvailability>,
    /// Dates with other hours (`slots: []` for a day off).
    #[serde(default)]
    pub exceptions: Vec<DateException>,
    /// IANA time zone of the hours, e.g. `Europe/Berlin`.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
    /// Slot length in minutes (multiple of 5, default 30).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 240, multiple_of = 5)]
    pub slot_minutes: Option<u16>,
    /// A doctor account without a profile to attach this profile to.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
}

/// What creating or updating a provider answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// The provider.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// `Created`, `Updated` or `Deleted`.
    pub status: &'static str,
}

/// A provider's profile and hours.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    /// The provider.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// Full name.
    pub name: String,
    /// Specialization.
    pub specialization: String,
    /// Phone and e-mail.
    pub contact_info: ContactInfo,
    /// Weekly hours.
    pub availability: Vec<DayAvailability>,
    /// Dates with other hours.
    pub exceptions: Vec<DateException>,
    /// IANA time zone of the hours.
    pub time_zone: String,
    /// Slot length in minutes.
    pub slot_minutes: u16,
    /// The doctor's account, when one is linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
}

/// The body of `PUT /api/providers/{providerId}`: absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchProvider {
    /// New full name.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// New specialization.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub specialization: Option<String>,
    /// New phone and e-mail.
    pub contact_info: Option<ContactInfo>,
    /// New weekly hours.
    pub availability: Option<Vec<DayAvailability>>,
    /// New dates with other hours.
    pub exceptions: Option<Vec<DateException>>,
    /// New IANA time zone of the hours.
    pub time_zone: Option<String>,
    /// New slot length in minutes (multiple of 5, 5 to 240).
    #[schema(minimum = 5, maximum = 240, multiple_of = 5)]
    pub slot_minutes: Option<u16>,
}

/// What deleting a provider answers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Always `Deleted`.
    pub status: &'static str,
    /// The provider.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// How many appointments ahead were cancelled.
    pub cancelled_appointments: usize,
}

/// The body of `POST /api/providers/{providerId}/display-tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisplayTokenRequest {
    /// Validity in hours (1 to 8760, default 720).
    #[serde(default)]
    pub ttl_hours: Option<u32>,
}

/// A display token for a doctor's board.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisplayToken {
    /// Use as a bearer token on `/ws` (or in an `auth` frame).
    pub token: String,
    /// The board it opens.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// When it stops working.
    #[schema(value_type = String)]
    pub expires_at: jiff::Timestamp,
}

/// A doctor as the directory lists them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Doctor {
    /// The provider.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// Full name.
    pub name: String,
    /// Specialization.
    pub specialization: String,
    /// Phone and e-mail.
    pub contact_info: ContactInfo,
    /// IANA time zone of the hours.
    pub time_zone: String,
    /// The doctor's account, when one is linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
}

/// One page of the directory.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorList {
    /// The doctors, by id.
    pub doctors: Vec<Doctor>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}
