//! The one error of the application layer, shared by REST, WebSocket and
//! NATS: each variant has a stable [`ErrorCode`]; each surface renders it in
//! its own module (`http::error` adds the HTTP status and headers).

use std::time::Duration;

use medrelay_protocol::{ErrorBody, ErrorCode};

tokio::task_local! {
    /// The current request's id, set by the HTTP request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Everything an operation can fail with, on every surface. Each variant has
/// one wire code ([`AppError::code`]); HTTP adds a status (`http::error`),
/// the WebSocket and NATS send [`AppError::body`] in their error replies.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    /// 410: it existed and was deleted.
    #[error("{0}")]
    Gone(String),
    /// 409: the record exists already (a duplicate patient).
    #[error("{message}")]
    Duplicate {
        /// What is duplicated.
        message: String,
        /// The existing record's id.
        existing_id: String,
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
    /// A domain rule said no; the code comes from the rule (`slot_taken`,
    /// `outside_availability`, ...), and HTTP maps it to 409 or 422.
    #[error("{message}")]
    Domain {
        /// The wire code.
        code: ErrorCode,
        /// Why.
        message: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// 502: another node answered this request with an error (a board
    /// replica asking the owner node); its body is passed on as it came.
    #[error("{}", .0.message)]
    Remote(ErrorBody),
    /// 503: not ready (starting or stopping).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an outage; logged with its cause, answered generically.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// 422 naming `field`.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        AppError::InvalidField {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }

    /// 500 from any error.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::BadRequest { .. } => ErrorCode::BadRequest,
            AppError::InvalidField { .. } => ErrorCode::InvalidField,
            AppError::Unauthorized(_) => ErrorCode::Unauthorized,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            AppError::Conflict { .. } | AppError::Duplicate { .. } => ErrorCode::Conflict,
            AppError::Gone(_) => ErrorCode::Gone,
            AppError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::LockedOut(_) => ErrorCode::LockedOut,
            AppError::TokenReused => ErrorCode::TokenReused,
            AppError::Domain { code, .. } => *code,
            AppError::Remote(body) => body.code,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The error object every surface sends. An internal error is logged
    /// here with its cause, once, under the request id the caller is given.
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        match self {
            AppError::Remote(remote) => body = remote.clone(),
            AppError::BadRequest { field, .. }
            | AppError::Conflict { field, .. }
            | AppError::Domain { field, .. } => {
                body.field = field.clone();
            }
            AppError::InvalidField { field, .. } => body.field = Some(field.clone()),
            AppError::Duplicate { existing_id, .. } => body.existing_id = Some(existing_id.clone()),
            AppError::Internal(cause) => {
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

impl From<medrelay_actors::store::StoreError> for AppError {
    fn from(e: medrelay_actors::store::StoreError) -> Self {
        AppError::internal(e)
    }
}

impl From<medrelay_actors::schedule::ScheduleError> for AppError {
    fn from(e: medrelay_actors::schedule::ScheduleError) -> Self {
        use medrelay_actors::schedule::ScheduleError as E;
        let domain = |code, message: String| AppError::Domain {
            code,
            message,
            field: None,
        };
        match e {
            E::NotFound(m) => AppError::NotFound(m),
            E::OutsideAvailability(m) => domain(ErrorCode::OutsideAvailability, m),
            E::TooSoon(m) => domain(ErrorCode::TooSoon, m),
            E::TooFar(m) => domain(ErrorCode::TooFar, m),
            E::SlotTaken => domain(ErrorCode::SlotTaken, E::SlotTaken.to_string()),
            E::SlotHeld => domain(ErrorCode::SlotHeld, E::SlotHeld.to_string()),
            e @ E::HoldLimit(_) => AppError::Conflict {
                message: e.to_string(),
                field: Some("patientId".into()),
            },
            E::PatientConflict => {
                domain(ErrorCode::PatientConflict, E::PatientConflict.to_string())
            }
            E::InvalidTransition(m) => domain(ErrorCode::InvalidTransition, m),
            E::Invalid { field, message } => AppError::InvalidField { field, message },
            e @ E::HasFutureAppointments(_) => AppError::Conflict {
                message: e.to_string(),
                field: Some("cancelAppointments".into()),
            },
            E::ProviderExists => AppError::Conflict {
                message: "providerId is already taken".into(),
                field: Some("providerId".into()),
            },
            E::Storage(fault) => AppError::internal(fault),
            E::Internal => AppError::internal(anyhow::anyhow!("schedule actor failed")),
        }
    }
}

impl From<medrelay_actors::session::SessionError> for AppError {
    fn from(e: medrelay_actors::session::SessionError) -> Self {
        use medrelay_actors::session::SessionError as E;
        match e {
            e @ E::AheadOfChannel { .. } => AppError::invalid("seq", e),
            E::Storage(fault) => AppError::internal(fault),
            E::Internal => AppError::internal(anyhow::anyhow!("patient session failed")),
        }
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        AppError::Unavailable(format!("actor unavailable: {e}"))
    }
}

impl From<crate::delivery::NotifyError> for AppError {
    fn from(e: crate::delivery::NotifyError) -> Self {
        AppError::internal(e)
    }
}

impl From<medrelay_actors::accounts::AccountError> for AppError {
    fn from(e: medrelay_actors::accounts::AccountError) -> Self {
        use medrelay_actors::accounts::AccountError as E;
        match e {
            E::TokenReused => AppError::TokenReused,
            E::UnknownUser | E::InvalidToken | E::Revoked => {
                AppError::Unauthorized("invalid or revoked refresh token".into())
            }
            E::Storage(fault) => AppError::internal(fault),
            E::Internal => AppError::internal(anyhow::anyhow!("account actor failed")),
        }
    }
}
