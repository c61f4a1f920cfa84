//! `[analytics]`: the clinic's reports.

use anyhow::bail;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// `[analytics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSettings {
    /// The clinic's IANA zone: the figures are counted by its days. A
    /// change is recounted from the records at the next start.
    pub time_zone: String,
    /// The longest range one report covers, in days.
    pub max_days: u32,
}

impl AnalyticsSettings {
    /// The clinic's zone (validated at load).
    pub fn zone(&self) -> TimeZone {
        TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if TimeZone::get(&self.time_zone).is_err() {
            bail!("invalid configuration: analytics.time_zone is not an IANA time zone");
        }
        if !(1..=3_660).contains(&self.max_days) {
            bail!("invalid configuration: analytics.max_days must be 1 to 3660");
        }
        Ok(())
    }
}
