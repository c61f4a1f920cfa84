//! `/api/notifications` (seed section 5), notification preferences and push
//! devices, and Twilio's delivery callbacks.
//!
//! # Layout
//! - `send`: sending now (e-mail, SMS, push).
//! - `reports`: delivery reports and statistics.
//! - `preferences`: a user's notification preferences.
//! - `devices`: push devices.
//! - `twilio`: Twilio's status callbacks.

mod devices;
mod preferences;
mod reports;
mod send;
mod twilio;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The notification routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(send::router())
        .merge(reports::router())
        .merge(preferences::router())
        .merge(devices::router())
        .merge(twilio::router())
}
