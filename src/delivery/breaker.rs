//! A circuit breaker per provider: after enough consecutive failures the
//! provider is left alone for a while, so a dead SMTP server costs one
//! check per message instead of a connect timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Closed, open until a time, or half-open with one probe out.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// When the probe went out; a probe whose outcome never came (its task
    /// failed before calling the provider) expires after the open period.
    probing: Option<Instant>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::default(),
        }
    }

    /// Whether a send may go ahead now. After the open period one probe is
    /// let through; its outcome closes or re-opens the circuit.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match s.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if s.probing.is_some_and(|at| now < at + self.open_for) => false,
            Some(_) => {
                s.probing = Some(now);
                true
            }
        }
    }

    /// A send succeeded.
    pub fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.open_until.is_some() {
            tracing::info!("provider answered again; circuit closed");
        }
        *s = State::default();
    }

    /// A send failed transiently.
    pub fn failure(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.failures += 1;
        if s.probing.is_some() || (s.open_until.is_none() && s.failures >= self.threshold) {
            tracing::warn!(
                failures = s.failures,
                open_secs = self.open_for.as_secs(),
                "circuit opened"
            );
            s.open_until = Some(Instant::now() + self.open_for);
            s.probing = None;
        }
    }

    /// Whether the circuit is open (for readiness and metrics).
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open_until
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let b = Breaker::new(2, Duration::from_millis(20));
        assert!(b.allow());
        b.failure();
        assert!(b.allow());
        b.failure();
        assert!(b.is_open());
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow(), "one probe after the open period");
        assert!(!b.allow(), "only one");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow(), "a probe that never reported expires");
        b.failure();
        assert!(!b.allow(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        b.success();
        assert!(!b.is_open());
        assert!(b.allow());
    }
}
