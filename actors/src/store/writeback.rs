//! Background writeback: sends the store file's changed pages to the device
//! between checkpoints, off the writer's path.
//!
//! Between checkpoints redb commits without a sync. Changed pages beyond half
//! of its cache (`store.cache_mib`) go to the file, where the kernel would
//! keep them for up to half a minute; the checkpoint's own sync then wrote
//! all of them at once while holding the writer (measured here: about 170 ms
//! of stalled bookings for a 64 MiB log). This thread syncs the file every
//! `interval` instead, so the device takes those pages a few at a time and
//! the checkpoint finds little left to write.
//!
//! Syncing early is safe: pages written since the last durable commit are
//! ones that commit's header does not name (redb copies on write and frees
//! nothing until a durable commit), and the kernel may write them back at
//! any moment anyway. Nothing here makes a write durable or answers anyone.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use super::DbSlot;

/// Starts the thread; it ends once the store is closed (its slot emptied).
pub(super) fn spawn(path: &Path, interval: Duration, db: DbSlot) -> std::io::Result<()> {
    if interval.is_zero() {
        return Ok(());
    }
    let file = File::open(path)?;
    std::thread::Builder::new()
        .name("store-writeback".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                if db.read().unwrap_or_else(|e| e.into_inner()).is_none() {
                    return;
                }
                let started = Instant::now();
                if let Err(e) = file.sync_data() {
                    // Only the next checkpoint gets slower; it syncs anyway.
                    tracing::warn!(error = %e, "background writeback of the store file failed");
                }
                metrics::histogram!("store_writeback_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
        })?;
    Ok(())
}
