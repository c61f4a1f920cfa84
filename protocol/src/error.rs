//! Error codes shared by every surface (REST bodies, WebSocket replies).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A machine-readable error code. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a wrong type, a missing field.
    BadRequest,
    /// A field's value is not acceptable (the error names the field).
    InvalidField,
    /// No valid credentials were presented, or they expired.
    Unauthorized,
    /// The caller is known but may not do this.
    Forbidden,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
    /// The thing already exists (e.g. a taken username).
    Conflict,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// Too many requests; retry after the time given.
    RateLimited,
    /// Too many failed logins for this account; retry later.
    LockedOut,
    /// A refresh token was presented twice; its whole family is now revoked.
    TokenReused,
    /// The server failed; the message carries a request id for the logs.
    Internal,
    /// The server is starting or stopping.
    Unavailable,
    /// A subscription fell too far behind; subscribe again for a snapshot.
    ResyncRequired,
    /// The slot is not inside the doctor's hours or not on a slot boundary.
    OutsideAvailability,
    /// The slot is in the past or sooner than the minimum notice.
    TooSoon,
    /// The slot is beyond the booking horizon.
    TooFar,
    /// The slot is already booked.
    SlotTaken,
    /// The slot is held for another patient for a few minutes.
    SlotHeld,
    /// The patient already has an overlapping appointment (with any doctor).
    PatientConflict,
    /// The status change is not allowed from the current status.
    InvalidTransition,
    /// It existed and was deleted.
    Gone,
    /// A bill's `totalAmount` is not the sum of its services.
    TotalMismatch,
    /// An `Idempotency-Key` was used before with a different request.
    IdempotencyMismatch,
}

impl ErrorCode {
    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LockedOut => "locked_out",
            ErrorCode::TokenReused => "token_reused",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::ResyncRequired => "resync_required",
            ErrorCode::OutsideAvailability => "outside_availability",
            ErrorCode::TooSoon => "too_soon",
            ErrorCode::TooFar => "too_far",
            ErrorCode::SlotTaken => "slot_taken",
            ErrorCode::SlotHeld => "slot_held",
            ErrorCode::PatientConflict => "patient_conflict",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::Gone => "gone",
            ErrorCode::TotalMismatch => "total_mismatch",
            ErrorCode::IdempotencyMismatch => "idempotency_mismatch",
        }
    }
}

/// The error object of every failed reply:
/// `{"code":"...","message":"...","field":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for programs (`slot_taken`, `invalid_field`, ...).
    #[schema(value_type = String, example = "invalid_field")]
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field's path (`contactInfo.email`), when one is at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id to quote when reporting an internal error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The id of the existing record a conflict is about (a duplicate
    /// patient's `patientId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

impl ErrorBody {
    /// An error with a code and a message and nothing else.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            request_id: None,
            existing_id: None,
        }
    }

    /// Names the field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::TokenReused,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }

    #[test]
    fn body_omits_absent_fields() {
        let body = ErrorBody::new(ErrorCode::NotFound, "no such patient");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"not_found","message":"no such patient"}"#
        );
    }
}
