//! Request rate limits per client IP and per user (GCRA, via `governor`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use medrelay_protocol::UserId;

use crate::config::{CalendarSettings, RateLimitSettings};

/// The limiters; [`RateLimits::retain_recent`] keeps their memory bounded.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<UserId>,
    /// Calendar feed downloads, by the feed's key: a calendar holds no
    /// account, and a leaked URL must not spend its owner's own quota.
    per_feed: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// A quota of `per_sec` with a burst of `burst` (both at least 1).
pub fn quota(per_sec: u32, burst: u32) -> Quota {
    let one = NonZeroU32::MIN;
    Quota::per_second(NonZeroU32::new(per_sec).unwrap_or(one))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

impl RateLimits {
    /// Limiters for the configured quotas.
    pub fn new(settings: &RateLimitSettings, feeds: &CalendarSettings) -> Self {
        let one = NonZeroU32::MIN;
        let feed_quota =
            Quota::per_minute(NonZeroU32::new(feeds.downloads_per_minute).unwrap_or(one))
                .allow_burst(NonZeroU32::new(feeds.download_burst).unwrap_or(one));
        Self {
            per_ip: RateLimiter::keyed(quota(settings.per_ip_per_sec, settings.per_ip_burst)),
            per_user: RateLimiter::keyed(quota(settings.per_user_per_sec, settings.per_user_burst)),
            per_feed: RateLimiter::keyed(feed_quota),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `ip` is over its quota.
    ///
    /// # Errors
    /// How long until the next request would be allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when `user` is over its quota.
    ///
    /// # Errors
    /// How long until the next request would be allowed.
    pub fn check_user(&self, user: &UserId) -> Result<(), Duration> {
        self.per_user
            .check_key(user)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when the calendar feed `key` is over its quota.
    ///
    /// # Errors
    /// How long until the next download would be allowed.
    pub fn check_feed(&self, key: &str) -> Result<(), Duration> {
        self.per_feed
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose quota is fully replenished.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_user.retain_recent();
        self.per_feed.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_user.shrink_to_fit();
        self.per_feed.shrink_to_fit();
    }
}
