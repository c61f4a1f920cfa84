//! `[calendar]`: what the iCalendar feeds hold.

use serde::Deserialize;

/// `[calendar]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSettings {
    /// Appointments this many days back are still in a feed (ahead, the
    /// booking horizon bounds it).
    pub days_behind: u32,
    /// A cancelled appointment stays in the feeds, marked cancelled, this
    /// many days after its cancellation, so subscribed calendars drop it.
    pub cancelled_kept_days: u32,
    /// The most events one feed holds (past ones are dropped first).
    pub max_events: usize,
    /// Downloads of one feed per minute, and the burst allowed above it
    /// (calendars poll every few minutes to hours).
    pub downloads_per_minute: u32,
    /// See `downloads_per_minute`.
    pub download_burst: u32,
}
