//! The application layer: each operation of a domain as one function taking
//! the caller's [`Principal`](crate::auth::Principal) and a request, and
//! returning its reply or an [`AppError`]. REST
//! handlers, WebSocket commands and NATS commands are adapters that parse,
//! call these and render; none of them imports another surface.
//!
//! # Layout
//! - [`account`]: sign-up, login, token refresh, logout, `me`.
//! - [`analytics`]: the clinic's reports, summed from the kept figures.
//! - [`billing`]: bills (with their revisions) and billing accounts.
//! - [`calendar`]: private iCalendar feeds of appointments.
//! - [`commands`]: the schedule commands of the WebSocket and NATS.
//! - [`delivery_report`]: a notification's delivery report, delivery
//!   statistics.
//! - [`idempotency`]: `Idempotency-Key`s on requests that move money.
//! - [`notification`]: sending now, preferences, push devices.
//! - [`patient`]: a patient's record.
//! - [`provider`]: doctors' profiles and hours, the directory, slots,
//!   display tokens.
//! - [`schedule`]: booking, moving, cancelling and reading appointments, and
//!   doctors' boards.

pub mod account;
pub mod analytics;
pub mod audit;
pub mod billing;
pub mod calendar;
pub mod commands;
pub mod delivery_report;
pub mod holds;
pub mod idempotency;
pub mod notification;
pub mod patient;
pub mod provider;
pub mod records;
pub mod schedule;

use medrelay_protocol::PatientId;

use crate::error::AppError;

/// The page size asked for (`default` when absent), or 422 naming `limit`
/// when it is not 1 to `max`.
pub(crate) fn page_size(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, AppError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(AppError::invalid("limit", format!("must be 1 to {max}")));
    }
    Ok(limit)
}

/// Trimmed text of 1 to `max` characters, without control characters, or
/// 422 naming `field`.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {max} characters, without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A patient id from a path, or 422 naming `patientId`.
pub(crate) fn parse_patient_id(raw: &str) -> Result<PatientId, AppError> {
    PatientId::parse(raw).map_err(|e| AppError::invalid("patientId", e))
}
