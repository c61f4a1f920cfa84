//! `/api/notifications` (seed section 5), notification preferences and push
//! devices, and Twilio's delivery callbacks.
//!
//! # Layout
//! - [`send`]: sending now (e-mail, SMS, push).
//! - [`reports`]: delivery reports and statistics.
//! - [`preferences`]: a user's notification preferences.
//! - [`devices`]: push devices.
//! - [`twilio`]: Twilio's status callbacks.

mod devices;
mod preferences;
mod reports;
mod send;
mod twilio;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::error::AppError;
use crate::state::AppState;

pub use reports::mask;

/// The notification routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(send::router())
        .merge(reports::router())
        .merge(preferences::router())
        .merge(devices::router())
        .merge(twilio::router())
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(AppError::invalid(field, "must not hold control characters"));
    }
    Ok(value.to_owned())
}

fn device_token(field: &str, token: &str) -> Result<String, AppError> {
    if token.is_empty()
        || token.len() > 4096
        || !token.bytes().all(|b| b.is_ascii_graphic())
        || token.contains('/')
    {
        return Err(AppError::invalid(
            field,
            "must be a device token: 1 to 4096 printable characters without spaces or '/'",
        ));
    }
    Ok(token.to_owned())
}
