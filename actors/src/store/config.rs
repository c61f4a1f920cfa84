//! The store's tunables.

use std::sync::Arc;
use std::time::Duration;

/// Tunables of the store, from the `[store]` config section.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many write batches may wait for the writer before `write` waits too.
    pub queue_capacity: usize,
    /// The most batches one transaction takes.
    pub max_group: usize,
    /// How many events each channel keeps for `subscribe { since }` replay.
    pub channel_history: u64,
    /// How many outbox entries are kept while no consumer reads the outbox.
    pub outbox_retain: u64,
    /// Whether a consumer (the NATS publisher) acknowledges outbox entries.
    /// Then entries are kept until acknowledged, however many there are;
    /// otherwise only the newest `outbox_retain` are.
    pub outbox_consumer: bool,
    /// Redo log size that triggers a checkpoint (a durable redb commit).
    pub checkpoint_bytes: u64,
    /// Longest time between checkpoints while writes come in.
    pub checkpoint_interval: Duration,
    /// Memory redb may use for pages, read and changed. At most half of it
    /// holds pages changed since the last checkpoint; the rest go to the file
    /// as they are evicted, where [`StoreConfig::writeback_interval`] sends
    /// them on to the device.
    pub cache_bytes: usize,
    /// How often a background thread syncs the store file between
    /// checkpoints (see `writeback.rs`); zero turns it off.
    pub writeback_interval: Duration,
    /// Seals the patient text of the events the store keeps (see `phi.rs`);
    /// `None` keeps them as they are (tests of the store alone).
    pub vault: Option<Arc<crate::phi::Vault>>,
    /// The clinic's zone, whose days the analytics figures are counted by
    /// (see `crate::stats`).
    pub stats_zone: jiff::tz::TimeZone,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 16_384,
            max_group: 4_096,
            channel_history: 1_000,
            outbox_retain: 100_000,
            outbox_consumer: false,
            checkpoint_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(60),
            cache_bytes: 32 << 20,
            writeback_interval: Duration::from_millis(200),
            vault: None,
            stats_zone: jiff::tz::TimeZone::UTC,
        }
    }
}
