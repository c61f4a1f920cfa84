//! The durable store: one redb file, written only through a group-commit writer.
//!
//! Actors hand a [`WriteBatch`] to [`Store::write`]. A single writer thread
//! drains every batch queued at that moment, applies them all in one write
//! transaction, commits once (one fsync) and only then answers each sender, so
//! a caller that got `Ok` knows its write is on disk. A failed commit fails every
//! batch in it; nothing half-applied is ever visible.
//!
//! A batch may carry preconditions ([`WriteBatch::require_absent`],
//! [`WriteBatch::require_present`], [`WriteBatch::require_equal`]), checked
//! inside the transaction after the batches before it, so two racing sign-ups
//! for one username cannot both succeed; a batch whose precondition fails is
//! rejected alone and the rest of the group commits.
//!
//! Events a batch declares are numbered per channel (gap-free, in commit order),
//! kept in the channel history and the outbox, and handed to the [`EventHub`].
//!
//! Reads open their own MVCC read transaction and never wait for the writer.

mod apply;
mod aside;
mod audit;
mod batch;
mod config;
mod counted;
mod phi;
mod record;
mod snapshot;
mod stats;
mod syncer;
pub mod tables;
mod wal;
mod writeback;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use medrelay_protocol::{Channel, Event};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};
use tokio::sync::{mpsc, oneshot};

use crate::hub::EventHub;
pub use aside::SetAside;
pub use audit::AuditCheck;
pub(crate) use batch::Op;
pub use batch::WriteBatch;
pub use config::StoreConfig;
pub use counted::Rows;
pub use record::Record;
pub use snapshot::{Entry, Records, Snapshot};
pub use stats::{Figures, add_to};
pub use tables::Table;

/// Applies the logged groups that redb's last durable commit lacks (those
/// after `applied`), in order, inside the opening transaction; returns the
/// number of the last group now in the store.
fn replay(
    txn: &redb::WriteTransaction,
    logged: Vec<wal::Group>,
    applied: u64,
    config: &StoreConfig,
) -> Result<u64, StoreError> {
    let mut last = applied;
    let mut replayed = 0usize;
    let vault = config.vault.as_deref();
    for (group, mut batches) in logged {
        if group <= applied {
            continue;
        }
        // The log keeps events sealed; applying them seals them afresh.
        for batch in &mut batches {
            let events = batch.events.iter_mut().map(|(_, e)| e);
            events
                .chain(batch.replicated.iter_mut().map(|(_, _, e)| e))
                .for_each(|e| phi::open(vault, e));
        }
        let outcomes = apply::apply_group(
            txn,
            batches.iter(),
            group,
            config,
            &mut Vec::new(),
            &mut false,
        )?;
        // A lone write is logged before its outcome is known (its sync runs
        // while redb applies it), so a batch refused then is refused again
        // here. A larger group logs only the batches that took effect.
        let refused = outcomes.iter().filter(|o| o.is_err()).count();
        if refused > 0 && batches.len() > writer::OVERLAP_BATCHES {
            tracing::error!(group, refused, "redo log: batches refused on replay");
        }
        replayed += batches.len();
        last = group;
    }
    if replayed > 0 {
        tracing::info!(
            batches = replayed,
            last_group = last,
            "redo log replayed after an unclean stop"
        );
    }
    Ok(last)
}

/// Failures reading or opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, a lock held by another process, ...).
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    /// A stored value could not be read back.
    #[error("corrupt value in table {table}, key {key:?}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The file was written by a newer release with an incompatible layout.
    #[error("store schema version {found} is newer than this release understands ({supported})")]
    NewerSchema {
        /// The version in the file.
        found: u64,
        /// The version this release writes.
        supported: u64,
    },
    /// The writer thread could not be started.
    #[error("could not start the store writer: {0}")]
    Thread(#[from] std::io::Error),
    /// The redo log beside the store file could not be read or written.
    #[error("the store's redo log failed: {0}")]
    Log(std::io::Error),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A write through the writer failed.
    #[error("write failed: {0}")]
    Write(#[from] WriteError),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why a write batch was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A precondition failed: the key already exists.
    #[error("{table} {key:?} already exists")]
    Exists {
        /// The table name.
        table: &'static str,
        /// The key.
        key: String,
    },
    /// A precondition failed: the value is not the one the batch expected.
    #[error("{table} {key:?} changed")]
    Changed {
        /// The table name.
        table: &'static str,
        /// The key.
        key: String,
    },
    /// A precondition failed: the key is gone.
    #[error("{table} {key:?} does not exist")]
    Missing {
        /// The table name.
        table: &'static str,
        /// The key.
        key: String,
    },
    /// The transaction holding this batch failed; nothing of it was applied.
    #[error("storage error")]
    Storage(#[source] crate::fault::Fault),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// The current layout of the file; bumped when tables change incompatibly.
const SCHEMA_VERSION: u64 = 1;

/// What a committed batch produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The `seq` each of the batch's events got, in the order they were added.
    pub seqs: Vec<u64>,
}

pub(crate) struct WriteRequest {
    batch: WriteBatch,
    reply: oneshot::Sender<Result<Committed, WriteError>>,
}

pub(crate) enum WriterMsg {
    Write(WriteRequest),
    Shutdown(oneshot::Sender<()>),
}

/// A stored event with its position in its channel.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its seq.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// The open database. [`Store::close`] empties the slot, which releases the
/// file lock at once, however many `Store` clones are still around.
pub(crate) type DbSlot = Arc<RwLock<Option<Database>>>;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DbSlot,
    tx: mpsc::Sender<WriterMsg>,
    config: Arc<StoreConfig>,
    outbox_grew: Arc<Notify>,
    log_bytes: Arc<AtomicU64>,
}

impl Store {
    /// Opens (or creates) the database at `path` and starts its writer thread.
    /// Committed events are handed to `hub`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened (for example because another
    /// process holds it), was written by a newer release, or the writer thread
    /// cannot start.
    pub fn open(path: &Path, config: StoreConfig, hub: EventHub) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(path)?;
        let (mut wal, logged) = wal::Wal::open(&wal::path_for(path)).map_err(StoreError::Log)?;
        let txn = db.begin_write()?;
        let last_group;
        {
            for table in Table::ALL {
                txn.open_table(table.def())?;
            }
            txn.open_table(tables::CHANNEL_EVENTS)?;
            txn.open_table(tables::CHANNEL_HEADS)?;
            txn.open_table(tables::OUTBOX)?;
            txn.open_table(tables::AUDIT_LOG)?;
            txn.open_table(tables::AUDIT_BY_PATIENT)?;
            txn.open_table(stats::STATS)?;
            txn.open_table(counted::COUNTED)?;
            let mut counters = txn.open_table(tables::COUNTERS)?;
            let found = counters
                .get(tables::SCHEMA_VERSION)?
                .map(|v| v.value())
                .unwrap_or(SCHEMA_VERSION);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            counters.insert(tables::SCHEMA_VERSION, SCHEMA_VERSION)?;
            let applied = counters
                .get(tables::WAL_APPLIED)?
                .map(|v| v.value())
                .unwrap_or(0);
            drop(counters);
            last_group = replay(&txn, logged, applied, &config)?;
            let mut outbox = txn.open_table(tables::OUTBOX)?;
            let counters = txn.open_table(tables::COUNTERS)?;
            // Without a consumer only a window is kept; trim what a consumer
            // that is no longer configured left behind.
            let head = counters
                .get(tables::OUTBOX_HEAD)?
                .map(|v| v.value())
                .unwrap_or(0);
            if !config.outbox_consumer && head > config.outbox_retain {
                outbox.retain_in(..=head - config.outbox_retain, |_, _| false)?;
            }
        }
        let first_sealing = match config.vault.as_deref() {
            Some(vault) => phi::seal_kept(&txn, vault)?,
            None => None,
        };
        txn.commit()?;
        // Everything the log held is now in redb's file.
        wal.reset();
        if let Some(count) = first_sealing {
            // The log may still hold events and records from before sealing.
            wal.scrub().map_err(StoreError::Log)?;
            tracing::info!(
                events = count,
                "sealed the kept in-app notifications written in the clear"
            );
        }
        let next_group = wal.next_round(last_group);
        let db: DbSlot = Arc::new(RwLock::new(Some(db)));
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let config = Arc::new(config);
        let outbox_grew = Arc::new(Notify::new());
        let log_bytes = Arc::new(AtomicU64::new(0));
        writer::spawn(
            db.clone(),
            rx,
            (wal, next_group),
            config.clone(),
            hub,
            outbox_grew.clone(),
            log_bytes.clone(),
        )?;
        writeback::spawn(path, config.writeback_interval, db.clone())?;
        Ok(Store {
            db,
            tx,
            config,
            outbox_grew,
            log_bytes,
        })
    }

    /// Bytes in the redo log since the last checkpoint: what a restart
    /// after a crash would replay.
    pub fn redo_log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    /// Queues `batch` and waits until it is durable (or rejected).
    ///
    /// # Errors
    /// [`WriteError::Exists`] when a precondition failed, [`WriteError::Storage`]
    /// when the commit failed, [`WriteError::Closed`] after [`Store::close`].
    pub async fn write(&self, batch: WriteBatch) -> Result<Committed, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriterMsg::Write(WriteRequest { batch, reply }))
            .await
            .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// Commits everything already queued, stops the writer and closes the
    /// file. Later writes fail with [`WriteError::Closed`], later reads with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(WriterMsg::Shutdown(done)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        let slot = self.db.read().unwrap_or_else(|e| e.into_inner());
        let db = slot.as_ref().ok_or(StoreError::Closed)?;
        Ok(db.begin_read()?)
    }

    /// A consistent view for several reads.
    ///
    /// # Errors
    /// [`StoreError`] when the store is closed or cannot be read.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            txn: self.read_txn()?,
        })
    }

    /// Reads one record.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn get<T: Record>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(T::TABLE.def())?;
        match table.get(key)? {
            Some(v) => Ok(Some(record::decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Reads up to `limit` records of a table in key order, starting after `after`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn scan<T: Record>(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let from = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        self.read_range((from, std::ops::Bound::Unbounded), limit, |_| true)
    }

    /// Reads up to `limit` records of a table in key order, from `from` on
    /// (inclusive).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn scan_from<T: Record>(
        &self,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.read_range(from.., limit, |_| true)
    }

    /// Reads up to `limit` records of a table in key order whose keys sort
    /// before `below`: a range bounded by what is asked for, so its cost does
    /// not grow with the table.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn scan_below<T: Record>(
        &self,
        below: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.read_range(..below, limit, |_| true)
    }

    /// Reads up to `limit` records whose keys start with `prefix`, in key order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn scan_prefix<T: Record>(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.read_range(prefix.., limit, |key| key.starts_with(prefix))
    }

    /// Reads the records of `range` in key order while `keep` accepts their
    /// keys, at most `limit`; decodes only those it returns.
    fn read_range<'a, T: Record>(
        &self,
        range: impl std::ops::RangeBounds<&'a str>,
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(T::TABLE.def())?;
        let mut out = Vec::new();
        for item in table.range::<&str>(range)?.take(limit) {
            let (k, v) = item?;
            let key = k.value();
            if !keep(key) {
                break;
            }
            out.push((key.to_owned(), record::decode(key, v.value())?));
        }
        Ok(out)
    }

    /// The seq of `channel`'s newest event (0 when it has none).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn channel_head(&self, channel: &Channel) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        let heads = txn.open_table(tables::CHANNEL_HEADS)?;
        Ok(heads
            .get(channel.name().as_str())?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// The kept events of `channel` with `seq > after`, oldest first, at most
    /// `limit`; and the seq of the oldest event still kept (0 when none is).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable event.
    pub fn channel_events(
        &self,
        channel: &Channel,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, u64), StoreError> {
        let txn = self.read_txn()?;
        let events = txn.open_table(tables::CHANNEL_EVENTS)?;
        let name = channel.name();
        let name = name.as_str();
        let oldest = events
            .range((name, 0)..=(name, u64::MAX))?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().1)
            .unwrap_or(0);
        let mut out = Vec::new();
        for item in events
            .range((name, after.saturating_add(1))..=(name, u64::MAX))?
            .take(limit)
        {
            let (k, v) = item?;
            let seq = k.value().1;
            let mut event = serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                table: "channel_events",
                key: format!("{name}#{seq}"),
                reason: e.to_string(),
            })?;
            phi::open(self.config.vault.as_deref(), &mut event);
            out.push(StoredEvent { seq, event });
        }
        Ok((out, oldest))
    }

    /// Outbox entries with position `> after`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable entry.
    pub fn outbox_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.read_txn()?;
        let outbox = txn.open_table(tables::OUTBOX)?;
        let mut out = Vec::new();
        for item in outbox.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = item?;
            let entry = serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                table: "outbox",
                key: k.value().to_string(),
                reason: e.to_string(),
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// How many events each channel keeps for replay.
    pub fn channel_history(&self) -> u64 {
        self.config.channel_history
    }

    /// A named counter (0 when never set).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        let counters = txn.open_table(tables::COUNTERS)?;
        Ok(counters.get(name)?.map(|v| v.value()).unwrap_or(0))
    }

    /// The newest outbox position written and the newest acknowledged by
    /// [`WriteBatch::ack_outbox`].
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn outbox_positions(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.read_txn()?;
        let counters = txn.open_table(tables::COUNTERS)?;
        let read = |name| -> Result<u64, StoreError> {
            Ok(counters.get(name)?.map(|v| v.value()).unwrap_or(0))
        };
        Ok((read(tables::OUTBOX_HEAD)?, read(tables::OUTBOX_ACKED)?))
    }

    /// Resolves once the outbox has grown since the last call returned (or
    /// at once if it grew before anyone waited). Meant for one consumer.
    pub async fn outbox_grew(&self) {
        self.outbox_grew.notified().await;
    }
}

/// One outbox entry: an event and where it belongs. Consumers (NATS publisher,
/// reminders, deliveries) read these in `position` order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Position in the outbox (global, gap-free).
    pub position: u64,
    /// Globally unique event id (`<channel>/<seq>`), stable across republishes.
    pub event_id: String,
    /// The channel.
    pub channel: Channel,
    /// The event's seq in its channel.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

#[cfg(test)]
mod tests;
