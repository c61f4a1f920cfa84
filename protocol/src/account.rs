//! Accounts: sign-up, login, token refresh, logout and `me` (seed:
//! user-management). The request and reply bodies of `/api/auth/*`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{Email, PatientId, ProviderId, Role, UserId, Username};
use crate::profile::{ContactInfo, MedicalHistory};

/// The body of `POST /api/auth/signup`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    /// 3 to 32 letters, digits, `.`, `-`, `_`; case-insensitive.
    #[schema(value_type = String, example = "jdoe", pattern = "^[A-Za-z0-9._-]{3,32}$")]
    pub username: Username,
    /// At most 254 characters (`Email::parse`).
    #[schema(value_type = String, example = "johndoe@example.com", max_length = 254,
        pattern = "^[^@\\s]{1,64}@[^@\\s.]+(\\.[^@\\s.]+)+$")]
    pub email: Email,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// `patient` (default, open sign-up), `doctor` or `admin` (an admin's token needed).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "patient", pattern = "^(patient|doctor|admin)$")]
    pub role: Option<Role>,
    /// Full name (patients and doctors); defaults to the username.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// Date of birth, `YYYY-MM-DD` (patients), not in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "1980-01-01")]
    pub dob: Option<jiff::civil::Date>,
    /// Phone and e-mail (patients and doctors).
    #[serde(default)]
    pub contact_info: Option<ContactInfo>,
    /// Allergies and chronic conditions (patients).
    #[serde(default)]
    pub medical_history: Option<MedicalHistory>,
    /// Doctors: specialization.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub specialization: Option<String>,
    /// Doctors: IANA time zone of their availability (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Doctors: the provider id to use (generated when absent).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub provider_id: Option<ProviderId>,
    /// Patients registered at the desk: the invitation they received. The
    /// account is linked to that patient record instead of making one; the
    /// record's own name and details are kept (so `name`, `dob`,
    /// `contactInfo` and `medicalHistory` are not sent with it).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub invite_token: Option<String>,
}

/// What sign-up answers (201).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    /// The new account.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Its role.
    #[schema(value_type = String)]
    pub role: Role,
    /// The patient profile made with it (patients).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub patient_id: Option<PatientId>,
    /// The provider profile made with it (doctors).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<ProviderId>,
    /// Always `Registered`.
    pub status: &'static str,
}

/// The body of `POST /api/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// As at sign-up (3 to 32 letters, digits, `.`, `-`, `_`); anything else
    /// is refused with 422 before any password is checked.
    #[schema(pattern = "^[A-Za-z0-9._-]{3,32}$")]
    pub username: String,
    /// The password.
    pub password: String,
}

/// A token pair: what login and refresh answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Access token (JWT) for `Authorization: Bearer`.
    pub token: String,
    /// Exchange at `/api/auth/refresh` for a new pair, once.
    pub refresh_token: String,
    /// Always `Authenticated`.
    pub status: &'static str,
    /// Seconds until `token` expires.
    pub expires_in: i64,
    /// The account signed in.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Its role (also in the token).
    #[schema(value_type = String)]
    pub role: Role,
}

/// The body of `POST /api/auth/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token to exchange (once).
    pub refresh_token: String,
}

/// The body of `POST /api/auth/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The access token to end (its whole session ends with it).
    pub token: String,
}

/// What logout answers.
#[derive(Serialize, ToSchema)]
pub struct LogoutResponse {
    /// Always `Logged out`.
    pub status: &'static str,
}

/// The caller's own account (`GET /api/auth/me`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    /// The account.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Its login name (lower-cased).
    #[schema(value_type = String)]
    pub username: Username,
    /// Its e-mail address.
    #[schema(value_type = String)]
    pub email: Email,
    /// Its role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Its patient profile (patients).
    #[schema(value_type = Option<String>)]
    pub patient_id: Option<PatientId>,
    /// Its provider profile (doctors).
    #[schema(value_type = Option<String>)]
    pub provider_id: Option<ProviderId>,
}
