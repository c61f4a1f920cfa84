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
    /// The most events one feed holds (the earliest are kept).
    pub max_events: usize,
}
