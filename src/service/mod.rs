//! The application layer: each operation of a domain as one function taking
//! the caller's [`Principal`](crate::auth::Principal) and a request, and
//! returning its reply or an [`AppError`]. REST
//! handlers, WebSocket commands and NATS commands are adapters that parse,
//! call these and render; none of them imports another surface.
//!
//! # Layout
//! - [`account`]: sign-up, login, token refresh, logout, `me`.
//! - [`delivery_report`]: a notification's delivery report, delivery
//!   statistics.
//! - [`notification`]: sending now, preferences, push devices.
//! - [`patient`]: a patient's record.
//! - [`provider`]: doctors' profiles and hours, the directory, slots,
//!   display tokens.
//! - [`schedule`]: booking, moving, cancelling and reading appointments, and
//!   doctors' boards.

pub mod account;
pub mod audit;
pub mod delivery_report;
pub mod notification;
pub mod patient;
pub mod provider;
pub mod records;
pub mod schedule;

use medrelay_protocol::PatientId;

use crate::error::AppError;

/// A patient id from a path, or 422 naming `patientId`.
pub(crate) fn parse_patient_id(raw: &str) -> Result<PatientId, AppError> {
    PatientId::parse(raw).map_err(|e| AppError::invalid("patientId", e))
}
