//! Failed-login counting: after `max` failures for one username within a
//! window, that username is locked for a while. Kept in memory (a restart
//! forgets it) and bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most usernames tracked at once; beyond it, stale entries are dropped first.
const MAX_TRACKED: usize = 100_000;

struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Per-username failure counter.
pub struct LoginLockout {
    entries: Mutex<HashMap<String, Entry>>,
    max: u32,
    window: Duration,
    lockout: Duration,
}

impl LoginLockout {
    /// Locks a username for `lockout` after `max` failures within `window`.
    pub fn new(max: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            entries: Mutex::default(),
            max,
            window,
            lockout,
        }
    }

    /// `Err(wait)` while `username` is locked.
    ///
    /// # Errors
    /// How long until the lock ends.
    pub fn check(&self, username: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(username).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock's length if this one triggered it.
    pub fn failed(&self, username: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_TRACKED && !entries.contains_key(username) {
            // Keep only entries that still matter: an open window or an active lock.
            let window = self.window;
            entries.retain(|_, e| {
                now.duration_since(e.window_start) < window
                    || e.locked_until.is_some_and(|u| u > now)
            });
            if entries.len() >= MAX_TRACKED {
                return None;
            }
        }
        let entry = entries.entry(username.to_owned()).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(entry.window_start) >= self.window {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        if entry.failures >= self.max {
            entry.failures = 0;
            entry.window_start = now;
            entry.locked_until = Some(now + self.lockout);
            return Some(self.lockout);
        }
        None
    }

    /// Forgets a username's failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_success_resets() {
        let l = LoginLockout::new(3, Duration::from_secs(60), Duration::from_secs(30));
        assert!(l.check("a").is_ok());
        assert_eq!(l.failed("a"), None);
        assert_eq!(l.failed("a"), None);
        assert_eq!(l.failed("a"), Some(Duration::from_secs(30)));
        let wait = l.check("a").unwrap_err();
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(25));
        assert!(l.check("b").is_ok());
        l.failed("b");
        l.succeeded("b");
        l.failed("b");
        l.failed("b");
        assert!(l.check("b").is_ok());
    }
}
