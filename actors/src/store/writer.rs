//! The writer thread: group commit.
//!
//! It waits for the first queued batch, drains whatever else is queued (up to
//! `max_group`), applies all of them in one transaction and answers every
//! sender once the group is durable. One fsync is shared by every batch in
//! the group, which is where the throughput comes from.
//!
//! A group is made durable by the redo log ([`super::wal`]): redb commits it
//! without an fsync, the log gets the group's batches and is synced (a lone
//! write's record is written first and synced on [`super::syncer`]'s thread
//! during redb's apply: see `Writer::apply_overlapped`). Every
//! `checkpoint_bytes` of log or `checkpoint_interval`, a group commits to redb
//! durably instead, and the log is emptied.
//!
//! A group made only of [`WriteBatch::lazy`](super::WriteBatch::lazy) batches
//! is logged without a sync; the next sync (or the checkpoint `close()` makes)
//! covers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use medrelay_protocol::{Channel, Event};
use redb::{Database, Durability};
use tokio::sync::{Notify, mpsc, oneshot};

use super::apply::{Outcome, apply_group};
use super::syncer::Syncer;
use super::wal::Wal;
use super::{DbSlot, StoreConfig, WriteError, WriteRequest, WriterMsg};
use crate::fault::Fault;
use crate::hub::EventHub;

pub(super) fn spawn(
    db: DbSlot,
    rx: mpsc::Receiver<WriterMsg>,
    wal: (Wal, u64),
    config: Arc<StoreConfig>,
    hub: EventHub,
    outbox_grew: Arc<Notify>,
    log_bytes: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let syncer = Syncer::spawn(wal.0.sync_handle()?)?;
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let done = {
                let slot = db.read().unwrap_or_else(|e| e.into_inner());
                match slot.as_ref() {
                    Some(database) => {
                        let (wal, last_group) = wal;
                        let mut writer = Writer {
                            db: database,
                            wal,
                            syncer,
                            group: last_group,
                            last_checkpoint: Instant::now(),
                            failed: false,
                            config: &config,
                            hub: &hub,
                            outbox_grew: &outbox_grew,
                            log_bytes: &log_bytes,
                        };
                        writer.run(rx)
                    }
                    None => None,
                }
            };
            // Close the file before telling `close()` we are done, so the
            // data folder can be opened again the moment it returns.
            db.write().unwrap_or_else(|e| e.into_inner()).take();
            tracing::info!("store closed");
            if let Some(done) = done {
                let _ = done.send(());
            }
        })?;
    Ok(())
}

/// The writer thread's state.
struct Writer<'a> {
    db: &'a Database,
    wal: Wal,
    syncer: Syncer,
    /// The number of the last group committed.
    group: u64,
    last_checkpoint: Instant,
    /// Set when the redo log could not be written: redb may then hold
    /// changes that are not durable and were never acknowledged, so nothing
    /// more is committed (and no checkpoint made) until a restart.
    failed: bool,
    config: &'a StoreConfig,
    hub: &'a EventHub,
    outbox_grew: &'a Notify,
    /// The log's length, for [`super::Store::redo_log_bytes`].
    log_bytes: &'a AtomicU64,
}

impl Writer<'_> {
    /// Runs until shutdown; returns the sender to answer once the file is closed.
    fn run(&mut self, mut rx: mpsc::Receiver<WriterMsg>) -> Option<oneshot::Sender<()>> {
        let max_group = self.config.max_group.max(1);
        let mut group: Vec<WriteRequest> = Vec::new();
        let mut last_group = 0;
        while let Some(first) = rx.blocking_recv() {
            let mut shutdown = None;
            match first {
                WriterMsg::Write(req) => group.push(req),
                WriterMsg::Shutdown(done) => shutdown = Some(done),
            }
            drain(&mut rx, &mut group, &mut shutdown, max_group);
            // Writers answered by the previous commit are still coming back
            // with their next write. Without waiting for them, groups split
            // into two half-size cohorts that alternate, each paying a full
            // fsync. So when far fewer batches are queued than the last group
            // held, wait a short, bounded moment for the rest. A lone writer
            // (last group of one) never waits.
            if shutdown.is_none() && group.len() * 2 < last_group {
                let started = Instant::now();
                while group.len() < last_group.min(max_group)
                    && shutdown.is_none()
                    && started.elapsed() < GATHER_WAIT
                {
                    // Yield while the stragglers are likely close; then nap,
                    // leaving the core to the threads making those writes.
                    if started.elapsed() < GATHER_SPIN {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(GATHER_NAP);
                    }
                    drain(&mut rx, &mut group, &mut shutdown, max_group);
                }
            }
            last_group = group.len();
            if let Some(done) = shutdown {
                // Take no new work, but commit everything that was already queued.
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        WriterMsg::Write(req) => group.push(req),
                        WriterMsg::Shutdown(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                while !group.is_empty() {
                    let rest = group.split_off(group.len().min(max_group));
                    self.commit(std::mem::replace(&mut group, rest));
                }
                if !self.failed {
                    // A last checkpoint, so the next start replays nothing.
                    self.checkpoint_now();
                }
                return Some(done);
            }
            self.commit(std::mem::take(&mut group));
        }
        None
    }

    /// Commits `group` and answers every batch in it.
    fn commit(&mut self, group: Vec<WriteRequest>) {
        if self.failed {
            for req in group {
                let _ = req
                    .reply
                    .send(Err(WriteError::Storage(Fault::msg(LOG_FAILED))));
            }
            return;
        }
        let started = Instant::now();
        let size = group.len();
        let checkpoint = self.wal.len() >= self.config.checkpoint_bytes
            || self.last_checkpoint.elapsed() >= self.config.checkpoint_interval;
        let needs_sync = group.iter().any(|req| !req.batch.lazy);
        let mut published: Vec<(Channel, u64, Event)> = Vec::new();
        let mut outboxed = false;
        // The group's number; it is taken only if the group commits, so
        // logged groups stay numbered one by one (see `Wal::next_round`).
        let seq = self.group + 1;
        let result = if checkpoint {
            match self.apply(&group, seq, true, &mut published, &mut outboxed) {
                Ok(outcomes) => {
                    self.checkpointed(started);
                    Ok(outcomes)
                }
                Err(err) => Err(not_committed(err, size)),
            }
        } else if overlaps(&group, needs_sync) {
            self.apply_overlapped(&group, seq, &mut published, &mut outboxed)
        } else {
            self.apply_logged(&group, seq, needs_sync, &mut published, &mut outboxed)
        };
        metrics::histogram!("store_commit_batch_size").record(size as f64);
        metrics::histogram!("store_commit_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(outcomes) => {
                self.group = seq;
                self.log_bytes.store(self.wal.len(), Ordering::Relaxed);
                metrics::counter!("store_commits_total", "result" => "ok").increment(1);
                for (req, outcome) in group.into_iter().zip(outcomes) {
                    let _ = req.reply.send(outcome);
                }
                self.hub.publish(published);
                if outboxed {
                    self.outbox_grew.notify_one();
                }
            }
            Err(message) => {
                metrics::counter!("store_commits_total", "result" => "error").increment(1);
                for req in group {
                    let _ = req.reply.send(Err(WriteError::Storage(message.clone())));
                }
            }
        }
    }

    /// Applies the group in one transaction, durable when `checkpoint`.
    fn apply(
        &self,
        group: &[WriteRequest],
        seq: u64,
        checkpoint: bool,
        published: &mut Vec<(Channel, u64, Event)>,
        outboxed: &mut bool,
    ) -> Result<Vec<Outcome>, redb::Error> {
        let mut txn = self.db.begin_write()?;
        if !checkpoint {
            txn.set_durability(Durability::None)?;
        }
        let batches = group.iter().map(|req| &req.batch);
        let outcomes = apply_group(&txn, batches, seq, self.config, published, outboxed)?;
        txn.commit()?;
        Ok(outcomes)
    }

    /// Applies the group to redb without a sync, then logs the batches that
    /// took effect and syncs the log when asked.
    fn apply_logged(
        &mut self,
        group: &[WriteRequest],
        seq: u64,
        sync: bool,
        published: &mut Vec<(Channel, u64, Event)>,
        outboxed: &mut bool,
    ) -> Result<Vec<Outcome>, Fault> {
        let outcomes = self
            .apply(group, seq, false, published, outboxed)
            .map_err(|err| not_committed(err, group.len()))?;
        let applied = group
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(req, _)| &req.batch);
        let logged = self
            .wal
            .append(seq, applied, self.config.vault.as_deref())
            .and_then(|()| if sync { self.wal.sync() } else { Ok(()) });
        match logged {
            Ok(()) => Ok(outcomes),
            Err(e) => Err(self.log_lost(e)),
        }
    }

    /// A lone write (a booking's dozen tables): its record is written
    /// first, with every batch (one refused now is refused again on
    /// replay, by the same checks on the same state), and synced on the
    /// sync thread while redb applies it. A small write would wait longer
    /// for the two thread hops than it saves; a large group (measured:
    /// bookings at full speed, 50 to a group) lost a tenth of its rate.
    fn apply_overlapped(
        &mut self,
        group: &[WriteRequest],
        seq: u64,
        published: &mut Vec<(Channel, u64, Event)>,
        outboxed: &mut bool,
    ) -> Result<Vec<Outcome>, Fault> {
        let from = self.wal.len();
        let batches = group.iter().map(|req| &req.batch);
        let started = self
            .wal
            .append(seq, batches, self.config.vault.as_deref())
            .and_then(|()| self.syncer.start());
        let syncing = match started {
            Ok(syncing) => syncing,
            Err(e) => {
                tracing::error!(error = %e, "the store's redo log could not be written; the group is refused");
                return Err(self.take_back(from, Fault::context(NOT_LOGGED, e)));
            }
        };
        let applied = self.apply(group, seq, false, published, outboxed);
        match (applied, syncing.wait()) {
            (Ok(outcomes), Ok(())) => Ok(outcomes),
            (Ok(_), Err(e)) => Err(self.log_lost(e)),
            (Err(err), _) => {
                let cause = not_committed(err, group.len());
                Err(self.take_back(from, cause))
            }
        }
    }

    /// After redb holds a group (not durably) whose log could not be
    /// written or synced: nobody is answered with success, and nothing more
    /// is written until a restart.
    fn log_lost(&mut self, e: std::io::Error) -> Fault {
        tracing::error!(error = %e, "the store's redo log could not be written; the store takes no more writes until a restart");
        self.failed = true;
        Fault::context(LOG_FAILED, e)
    }

    /// A group written to the log but not committed: its record is taken
    /// back out (whatever became of its sync), and the group is refused
    /// with `cause`. If the record cannot be taken
    /// back, the group may come back at the next start: the answer says so,
    /// and nothing more is written until a restart.
    fn take_back(&mut self, from: u64, cause: Fault) -> Fault {
        match self.wal.unwrite(from) {
            Ok(()) => cause,
            Err(e) => {
                tracing::error!(error = %e, "a group that did not commit could not be taken out of the redo log; the store takes no more writes until a restart");
                self.failed = true;
                Fault::context(OUTCOME_UNKNOWN, e)
            }
        }
    }

    /// An empty durable commit: everything before it is in redb's file.
    fn checkpoint_now(&mut self) {
        let seq = self.group + 1;
        let started = Instant::now();
        match self.apply(&[], seq, true, &mut Vec::new(), &mut false) {
            Ok(_) => {
                self.group = seq;
                self.checkpointed(started);
            }
            Err(e) => {
                tracing::error!(error = %e, "the closing checkpoint failed; the next start replays the redo log")
            }
        }
    }

    /// After a durable commit begun at `started`: the log holds nothing
    /// redb lacks.
    fn checkpointed(&mut self, started: Instant) {
        let took = started.elapsed();
        tracing::info!(
            log_bytes = self.wal.len(),
            ms = took.as_secs_f64() * 1e3,
            "store checkpoint"
        );
        metrics::histogram!("store_checkpoint_seconds").record(took.as_secs_f64());
        self.last_checkpoint = Instant::now();
        metrics::counter!("store_checkpoints_total").increment(1);
        self.wal.reset();
        self.log_bytes.store(0, Ordering::Relaxed);
    }
}

/// A group redb refused: every batch in it is rejected.
fn not_committed(err: redb::Error, batches: usize) -> Fault {
    tracing::error!(error = %err, batches, "store commit failed; every batch in the group is rejected");
    Fault::new(err)
}

/// Whether a group's log sync runs while redb applies it (see
/// `Writer::apply_overlapped`): a synced lone write with enough to apply.
fn overlaps(group: &[WriteRequest], sync: bool) -> bool {
    sync && group.len() <= OVERLAP_BATCHES
        && group
            .iter()
            .map(|req| req.batch.ops.len() + req.batch.events.len())
            .sum::<usize>()
            >= OVERLAP_WORK
}

/// What every write is answered with once the redo log has failed.
const LOG_FAILED: &str = "the store's redo log could not be written; restart the server";

/// A lone write whose record could not be written: nothing of it applied.
const NOT_LOGGED: &str =
    "the store's redo log could not be written; nothing of this write was applied";

/// A write that did not commit and may yet come back at the next start.
const OUTCOME_UNKNOWN: &str =
    "the write did not commit but may be applied at the next start; restart the server, then check";

/// The changes and events a group must hold for its log sync to run while
/// redb applies it (see `overlaps`): a booking has about 20, a
/// lone record write 1 or 2.
const OVERLAP_WORK: usize = 8;
/// The most batches a group may hold for that (replay checks that a group
/// of more refuses none of its batches).
pub(super) const OVERLAP_BATCHES: usize = 2;

/// The longest the writer waits for a group to fill up (see `Writer::run`).
const GATHER_WAIT: Duration = Duration::from_micros(200);

/// How long of that wait the writer yields between looks; after it, it
/// naps `GATHER_NAP` between looks, leaving the core to the threads making
/// those writes (on a 2-core machine a writer yielding for the whole wait
/// took much of a core from them).
const GATHER_SPIN: Duration = Duration::from_micros(60);
const GATHER_NAP: Duration = Duration::from_micros(20);

/// Moves every queued message into `group` (up to `max_group` batches).
fn drain(
    rx: &mut mpsc::Receiver<WriterMsg>,
    group: &mut Vec<WriteRequest>,
    shutdown: &mut Option<oneshot::Sender<()>>,
    max_group: usize,
) {
    while shutdown.is_none() && group.len() < max_group {
        match rx.try_recv() {
            Ok(WriterMsg::Write(req)) => group.push(req),
            Ok(WriterMsg::Shutdown(done)) => *shutdown = Some(done),
            Err(_) => break,
        }
    }
}
