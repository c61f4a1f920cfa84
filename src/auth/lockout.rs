//! Failed-login counting: after `max` failures for one username within a
//! window, that username is locked for a while. Kept in memory (a restart
//! forgets it).
//!
//! # Bounds
//! Keys are validated usernames ([`Username`]: at most 32 ASCII bytes), and
//! the table holds at most `capacity` of them. When it is full, a new name
//! evicts another: an expired lock first, else the name whose last failure
//! is the oldest, and a name locked right now only when nothing but locks is
//! left. So a flood of made-up names costs a fixed amount of memory and does
//! not switch lock-out off: a name being guessed fails again and again and
//! stays among the newest, and its lock outlives the flood.
//!
//! Finding the entry to evict is a scan of the table. It runs only for a
//! failed login of a name not yet tracked while the table is full, and every
//! failed login has already paid for an argon2 verification, which costs
//! far more than the scan.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use medrelay_protocol::Username;

/// One tracked username.
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    /// When it last failed, in failures counted by the table (a strict
    /// order, where two `Instant`s may be equal).
    last: u64,
}

impl Entry {
    /// Eviction order, smallest first: expired locks, then names counting
    /// failures, then live locks; within each, the oldest last failure.
    fn eviction_rank(&self, now: Instant) -> (u8, u64) {
        let class = match self.locked_until {
            Some(until) if until <= now => 0,
            None => 1,
            Some(_) => 2,
        };
        (class, self.last)
    }
}

struct Table {
    entries: HashMap<Username, Entry>,
    /// Failures counted so far: the clock of `Entry::last`.
    ticks: u64,
}

/// Per-username failure counter.
pub struct LoginLockout {
    table: Mutex<Table>,
    max: u32,
    window: Duration,
    lockout: Duration,
    capacity: usize,
}

impl LoginLockout {
    /// Locks a username for `lockout` after `max` failures within `window`,
    /// tracking at most `capacity` usernames.
    pub fn new(max: u32, window: Duration, lockout: Duration, capacity: usize) -> Self {
        Self {
            table: Mutex::new(Table {
                entries: HashMap::new(),
                ticks: 0,
            }),
            max: max.max(1),
            window,
            lockout,
            capacity: capacity.max(1),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while `username` is locked.
    ///
    /// # Errors
    /// How long until the lock ends.
    pub fn check(&self, username: &Username) -> Result<(), Duration> {
        let now = Instant::now();
        match self
            .table()
            .entries
            .get(username)
            .and_then(|e| e.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock's length if this one triggered it.
    pub fn failed(&self, username: &Username) -> Option<Duration> {
        let now = Instant::now();
        let mut table = self.table();
        table.ticks += 1;
        let last = table.ticks;
        if !table.entries.contains_key(username) && table.entries.len() >= self.capacity {
            let victim = table
                .entries
                .iter()
                .min_by_key(|(_, e)| e.eviction_rank(now))
                .map(|(name, _)| name.clone());
            if let Some(victim) = victim {
                table.entries.remove(&victim);
            }
        }
        let entry = table.entries.entry(username.clone()).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: None,
            last,
        });
        entry.last = last;
        self.count(entry, now)
    }

    /// Counts one failure in `entry`; the lock's length if it locks.
    fn count(&self, entry: &mut Entry, now: Instant) -> Option<Duration> {
        if entry.locked_until.is_some_and(|until| until <= now) {
            entry.locked_until = None;
            entry.failures = 0;
            entry.window_start = now;
        }
        if now.duration_since(entry.window_start) >= self.window {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        if entry.failures < self.max {
            return None;
        }
        entry.failures = 0;
        entry.window_start = now;
        entry.locked_until = Some(now + self.lockout);
        Some(self.lockout)
    }

    /// Forgets a username's failures after a successful login.
    pub fn succeeded(&self, username: &Username) {
        self.table().entries.remove(username);
    }

    /// How many usernames are tracked (for metrics and tests).
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn locks_after_max_failures_and_success_resets() {
        let l = LoginLockout::new(3, Duration::from_secs(60), Duration::from_secs(30), 100);
        let (a, b) = (name("alice"), name("bob"));
        assert!(l.check(&a).is_ok());
        assert_eq!(l.failed(&a), None);
        assert_eq!(l.failed(&a), None);
        assert_eq!(l.failed(&a), Some(Duration::from_secs(30)));
        let wait = l.check(&a).unwrap_err();
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(25));
        assert!(l.check(&b).is_ok());
        l.failed(&b);
        l.succeeded(&b);
        l.failed(&b);
        l.failed(&b);
        assert!(l.check(&b).is_ok());
        // Keys are the normalised names.
        assert!(l.check(&name("ALICE")).is_err());
    }

    #[test]
    fn a_full_table_forgets_the_oldest_name_and_keeps_locking() {
        let l = LoginLockout::new(3, Duration::from_secs(60), Duration::from_secs(30), 16);
        for i in 0..1_000 {
            assert_eq!(l.failed(&name(&format!("flood{i}"))), None);
        }
        assert_eq!(l.len(), 16);
        // A real name, guessed between waves of made-up ones that each
        // nearly fill the table, is still locked on its third failure.
        let frank = name("frank");
        let mut wave = 0;
        let mut locked = None;
        for _ in 0..3 {
            locked = l.failed(&frank);
            for _ in 0..15 {
                l.failed(&name(&format!("wave{wave}")));
                wave += 1;
            }
        }
        assert_eq!(locked, Some(Duration::from_secs(30)));
        assert!(l.check(&frank).is_err());
        // A lock outlives any flood of names that are not locked.
        for i in 0..10_000 {
            l.failed(&name(&format!("more{i}")));
        }
        assert_eq!(l.len(), 16);
        assert!(l.check(&frank).is_err());
    }

    #[test]
    fn locks_go_last_and_the_oldest_lock_first() {
        let l = LoginLockout::new(1, Duration::from_secs(60), Duration::from_secs(30), 2);
        let (a, b, c) = (name("alice"), name("bob"), name("carol"));
        assert!(l.failed(&a).is_some());
        assert!(l.failed(&b).is_some());
        assert!(l.failed(&c).is_some());
        assert!(l.check(&a).is_ok(), "the oldest lock made room");
        assert!(l.check(&b).is_err() && l.check(&c).is_err());
    }

    #[test]
    fn an_expired_lock_is_forgotten_before_a_counting_name() {
        let l = LoginLockout::new(2, Duration::from_secs(60), Duration::ZERO, 2);
        let (a, b, c) = (name("alice"), name("bob"), name("carol"));
        l.failed(&b);
        l.failed(&a);
        assert!(l.failed(&a).is_some(), "locked, and at once expired");
        l.failed(&c);
        // Bob, counting since before Alice's lock, is kept.
        assert_eq!(l.failed(&b), Some(Duration::ZERO));
    }
}
