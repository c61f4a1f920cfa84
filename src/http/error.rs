//! How the HTTP API renders an [`AppError`]: its status, its headers, and
//! the body `{"error":{"code":"...","message":"...","field":"..."}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::{ErrorBody, ErrorCode};

use crate::error::AppError;

/// The HTTP status of `error`.
pub fn status(error: &AppError) -> StatusCode {
    match error {
        AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        AppError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Unauthorized(_) | AppError::TokenReused => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Gone(_) => StatusCode::GONE,
        AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        AppError::Conflict { .. } | AppError::Duplicate { .. } => StatusCode::CONFLICT,
        AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        AppError::RateLimited(_) | AppError::LockedOut(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Domain { code, .. } => domain_status(*code),
        AppError::Remote(_) => StatusCode::BAD_GATEWAY,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A domain rule's status: 409 when the request clashes with the state
/// (someone else's booking, the appointment's status), 422 when its values
/// break a rule (hours, notice, horizon).
fn domain_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::SlotTaken
        | ErrorCode::SlotHeld
        | ErrorCode::PatientConflict
        | ErrorCode::InvalidTransition => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A body shaped `{"error": {...}}`.
pub fn error_response(status: StatusCode, body: ErrorBody) -> Response {
    (status, axum::Json(serde_json::json!({ "error": body }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = error_response(status(&self), self.body());
        let headers = response.headers_mut();
        match &self {
            AppError::RateLimited(wait) | AppError::LockedOut(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            AppError::Unauthorized(_) | AppError::TokenReused => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
