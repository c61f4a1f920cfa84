//! The one error type of the HTTP API; every failure leaves as
//! `{"error":{"code":"...","message":"...","field":"..."}}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_protocol::{ErrorBody, ErrorCode};

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Everything a handler can fail with; each variant names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request (bad JSON, wrong type, missing field).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The field at fault, if one is.
        field: Option<String>,
    },
    /// 422: a field's value is not acceptable.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// 401: no valid credentials (sent with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: known caller, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or route).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// 413: body larger than the limit.
    #[error("request body is larger than the server accepts")]
    PayloadTooLarge,
    /// 415: body is not JSON.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 429: rate limited (sent with `Retry-After`).
    #[error("too many requests")]
    RateLimited(Duration),
    /// 429: this username is locked after failed logins (with `Retry-After`).
    #[error("too many failed logins; try again later")]
    LockedOut(Duration),
    /// 401: a refresh token was reused; its session is revoked.
    #[error("refresh token was already used; the session is revoked")]
    TokenReused,
    /// A domain rule said no; the status and code come from the rule
    /// (409 `slot_taken`, 422 `outside_availability`, ...).
    #[error("{message}")]
    Domain {
        /// The HTTP status.
        status: StatusCode,
        /// The wire code.
        code: ErrorCode,
        /// Why.
        message: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// 503: not ready (starting or stopping).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an outage; logged with its cause, answered generically.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// 422 naming `field`.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::InvalidField {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }

    /// 500 from any error.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The status code and wire error code.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ApiError::InvalidField { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidField)
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, ErrorCode::Conflict),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            ApiError::LockedOut(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::LockedOut),
            ApiError::TokenReused => (StatusCode::UNAUTHORIZED, ErrorCode::TokenReused),
            ApiError::Domain { status, code, .. } => (*status, *code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }

    /// The JSON error object for this error (also used by the WebSocket).
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let mut body = ErrorBody::new(code, self.to_string());
        match self {
            ApiError::BadRequest { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::Domain { field, .. } => {
                body.field = field.clone();
            }
            ApiError::InvalidField { field, .. } => body.field = Some(field.clone()),
            ApiError::Internal(cause) => {
                let id =
                    current_request_id().unwrap_or_else(|| medrelay_actors::ids::new_id("req"));
                tracing::error!(request_id = %id, error = ?cause, "internal error");
                body.message = format!("internal error; quote request id {id} when reporting it");
                body.request_id = Some(id);
            }
            _ => {}
        }
        body
    }
}

/// A body shaped `{"error": {...}}`.
pub fn error_response(status: StatusCode, body: ErrorBody) -> Response {
    (status, axum::Json(serde_json::json!({ "error": body }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let mut response = error_response(status, self.body());
        let headers = response.headers_mut();
        match &self {
            ApiError::RateLimited(wait) | ApiError::LockedOut(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::Unauthorized(_) | ApiError::TokenReused => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<medrelay_actors::store::StoreError> for ApiError {
    fn from(e: medrelay_actors::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<medrelay_actors::schedule::ScheduleError> for ApiError {
    fn from(e: medrelay_actors::schedule::ScheduleError) -> Self {
        use medrelay_actors::schedule::ScheduleError as E;
        let domain = |status, code, message: String| ApiError::Domain {
            status,
            code,
            message,
            field: None,
        };
        match e {
            E::NotFound(m) => ApiError::NotFound(m),
            E::OutsideAvailability(m) => domain(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::OutsideAvailability,
                m,
            ),
            E::TooSoon(m) => domain(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::TooSoon, m),
            E::TooFar(m) => domain(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::TooFar, m),
            E::SlotTaken => domain(
                StatusCode::CONFLICT,
                ErrorCode::SlotTaken,
                E::SlotTaken.to_string(),
            ),
            E::PatientConflict => domain(
                StatusCode::CONFLICT,
                ErrorCode::PatientConflict,
                E::PatientConflict.to_string(),
            ),
            E::InvalidTransition(m) => {
                domain(StatusCode::CONFLICT, ErrorCode::InvalidTransition, m)
            }
            E::Invalid { field, message } => ApiError::InvalidField { field, message },
            e @ E::HasFutureAppointments(_) => ApiError::Conflict {
                message: e.to_string(),
                field: Some("cancelAppointments".into()),
            },
            E::ProviderExists => ApiError::Conflict {
                message: "providerId is already taken".into(),
                field: Some("providerId".into()),
            },
            E::Storage(m) => ApiError::internal(anyhow::anyhow!(m)),
            E::Internal => ApiError::internal(anyhow::anyhow!("schedule actor failed")),
        }
    }
}

impl From<medrelay_actors::session::SessionError> for ApiError {
    fn from(e: medrelay_actors::session::SessionError) -> Self {
        use medrelay_actors::session::SessionError as E;
        match e {
            e @ E::AheadOfChannel { .. } => ApiError::invalid("seq", e),
            E::Storage(m) => ApiError::internal(anyhow::anyhow!(m)),
            E::Internal => ApiError::internal(anyhow::anyhow!("patient session failed")),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Unavailable(format!("actor unavailable: {e}"))
    }
}
