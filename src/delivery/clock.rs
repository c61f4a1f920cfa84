//! The notification clock: wall time, plus an offset only tests move.
//!
//! Reminders fire by this clock, so a test can jump ahead 24 hours and see
//! the reminder fire at once instead of waiting for it.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

/// Wall time with an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
    moved: Notify,
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Moves the clock forward to `to`; never back (test builds expose
    /// this over HTTP).
    pub fn advance_to(&self, to: Timestamp) {
        let step = to.duration_since(self.now());
        if step.is_positive() {
            let ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
            self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        }
        self.moved.notify_waiters();
    }

    /// Resolves when the clock is moved.
    pub async fn moved(&self) {
        self.moved.notified().await;
    }
}
