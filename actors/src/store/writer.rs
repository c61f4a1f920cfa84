//! The writer thread: group commit.
//!
//! It blocks for the first queued batch, drains whatever else is queued (up to
//! `max_group`), applies all of them in one transaction with immediate
//! durability, commits once and then answers every sender. One fsync is shared
//! by every batch in the group, which is where the throughput comes from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medrelay_protocol::{Channel, Event};
use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::{Notify, mpsc, oneshot};

use super::tables::{self, Table};
use super::{Committed, DbSlot, Op, OutboxEntry, StoreConfig, WriteError, WriteRequest, WriterMsg};
use crate::hub::EventHub;

pub(super) fn spawn(
    db: DbSlot,
    rx: mpsc::Receiver<WriterMsg>,
    config: Arc<StoreConfig>,
    hub: EventHub,
    outbox_grew: Arc<Notify>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let done = {
                let slot = db.read().unwrap_or_else(|e| e.into_inner());
                match slot.as_ref() {
                    Some(database) => run(database, rx, &config, &hub, &outbox_grew),
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

/// Runs until shutdown; returns the sender to answer once the file is closed.
fn run(
    db: &Database,
    mut rx: mpsc::Receiver<WriterMsg>,
    config: &StoreConfig,
    hub: &EventHub,
    outbox_grew: &Notify,
) -> Option<oneshot::Sender<()>> {
    let commit = |group: Vec<WriteRequest>| commit_group(db, group, config, hub, outbox_grew);
    let mut group: Vec<WriteRequest> = Vec::new();
    let mut last_group = 0;
    while let Some(first) = rx.blocking_recv() {
        let mut shutdown = None;
        match first {
            WriterMsg::Write(req) => group.push(req),
            WriterMsg::Shutdown(done) => shutdown = Some(done),
        }
        drain(&mut rx, &mut group, &mut shutdown, config.max_group);
        // Writers answered by the previous commit are still coming back with
        // their next write. Without waiting for them, groups split into two
        // half-size cohorts that alternate, each paying a full fsync. So when
        // far fewer batches are queued than the last group held, wait a short,
        // bounded moment for the rest. Under light load the last group was
        // small and this never waits.
        if shutdown.is_none() && group.len() * 2 < last_group {
            let deadline = Instant::now() + GATHER_WAIT;
            while group.len() < last_group.min(config.max_group)
                && shutdown.is_none()
                && Instant::now() < deadline
            {
                std::thread::yield_now();
                drain(&mut rx, &mut group, &mut shutdown, config.max_group);
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
                let rest = group.split_off(group.len().min(config.max_group.max(1)));
                commit(std::mem::replace(&mut group, rest));
            }
            return Some(done);
        }
        commit(std::mem::take(&mut group));
    }
    None
}

/// The longest the writer waits for a group to fill up (see `run`).
const GATHER_WAIT: Duration = Duration::from_micros(200);

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

/// What the transaction decided for one request, before the commit.
type Outcome = Result<Committed, WriteError>;

fn commit_group(
    db: &Database,
    group: Vec<WriteRequest>,
    config: &StoreConfig,
    hub: &EventHub,
    outbox_grew: &Notify,
) {
    if group.is_empty() {
        return;
    }
    let started = Instant::now();
    let size = group.len();
    let mut published: Vec<(Channel, u64, Event)> = Vec::new();
    let mut outboxed = false;
    let result = apply_group(db, &group, config, &mut published, &mut outboxed);
    let elapsed = started.elapsed();
    metrics::histogram!("store_commit_batch_size").record(size as f64);
    metrics::histogram!("store_commit_seconds").record(elapsed.as_secs_f64());
    match result {
        Ok(outcomes) => {
            metrics::counter!("store_commits_total", "result" => "ok").increment(1);
            for (req, outcome) in group.into_iter().zip(outcomes) {
                let _ = req.reply.send(outcome);
            }
            hub.publish(published);
            if outboxed {
                outbox_grew.notify_one();
            }
        }
        Err(err) => {
            metrics::counter!("store_commits_total", "result" => "error").increment(1);
            tracing::error!(error = %err, batches = size, "store commit failed; every batch in the group is rejected");
            let message = err.to_string();
            for req in group {
                let _ = req.reply.send(Err(WriteError::Storage(message.clone())));
            }
        }
    }
}

fn apply_group(
    db: &Database,
    group: &[WriteRequest],
    config: &StoreConfig,
    published: &mut Vec<(Channel, u64, Event)>,
    outboxed: &mut bool,
) -> Result<Vec<Outcome>, redb::Error> {
    let txn = db.begin_write()?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut applier = Applier::open(&txn, config)?;
        for req in group {
            if let Some((table, key)) = applier.first_present(&req.batch.absent)? {
                outcomes.push(Err(WriteError::Exists {
                    table: table.name(),
                    key: key.to_owned(),
                }));
                continue;
            }
            if let Some((table, key)) = applier.first_missing(&req.batch.present)? {
                outcomes.push(Err(WriteError::Missing {
                    table: table.name(),
                    key: key.to_owned(),
                }));
                continue;
            }
            if let Some((table, key)) = applier.first_changed(&req.batch.equal)? {
                outcomes.push(Err(WriteError::Changed {
                    table: table.name(),
                    key: key.to_owned(),
                }));
                continue;
            }
            for op in &req.batch.ops {
                applier.apply(op)?;
            }
            let mut seqs = Vec::with_capacity(req.batch.events.len());
            for (channel, event) in &req.batch.events {
                let seq = applier.append_event(channel, event)?;
                seqs.push(seq);
                published.push((channel.clone(), seq, event.clone()));
            }
            for (channel, seq, event) in &req.batch.replicated {
                if applier.append_replicated(channel, *seq, event)? {
                    published.push((channel.clone(), *seq, event.clone()));
                }
            }
            outcomes.push(Ok(Committed { seqs }));
        }
        *outboxed = applier.outbox_grew;
    }
    txn.commit()?;
    Ok(outcomes)
}

/// The tables of one write transaction, opened once per group.
struct Applier<'txn> {
    records: Vec<redb::Table<'txn, &'static str, &'static [u8]>>,
    events: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    heads: redb::Table<'txn, &'static str, u64>,
    outbox: redb::Table<'txn, u64, &'static [u8]>,
    counters: redb::Table<'txn, &'static str, u64>,
    outbox_head: u64,
    outbox_grew: bool,
    config: &'txn StoreConfig,
}

impl<'txn> Applier<'txn> {
    fn open(txn: &'txn WriteTransaction, config: &'txn StoreConfig) -> Result<Self, redb::Error> {
        let records = Table::ALL
            .iter()
            .map(|t| txn.open_table(t.def()))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = txn.open_table(tables::COUNTERS)?;
        let outbox_head = counters
            .get(tables::OUTBOX_HEAD)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(Self {
            records,
            events: txn.open_table(tables::CHANNEL_EVENTS)?,
            heads: txn.open_table(tables::CHANNEL_HEADS)?,
            outbox: txn.open_table(tables::OUTBOX)?,
            counters,
            outbox_head,
            outbox_grew: false,
            config,
        })
    }

    fn table(&mut self, table: Table) -> &mut redb::Table<'txn, &'static str, &'static [u8]> {
        let index = Table::ALL
            .iter()
            .position(|t| *t == table)
            .expect("every Table is in Table::ALL");
        &mut self.records[index]
    }

    fn first_present<'a>(
        &mut self,
        absent: &'a [(Table, String)],
    ) -> Result<Option<(Table, &'a str)>, redb::Error> {
        for (table, key) in absent {
            if self.table(*table).get(key.as_str())?.is_some() {
                return Ok(Some((*table, key)));
            }
        }
        Ok(None)
    }

    fn first_missing<'a>(
        &mut self,
        present: &'a [(Table, String)],
    ) -> Result<Option<(Table, &'a str)>, redb::Error> {
        for (table, key) in present {
            if self.table(*table).get(key.as_str())?.is_none() {
                return Ok(Some((*table, key)));
            }
        }
        Ok(None)
    }

    fn first_changed<'a>(
        &mut self,
        equal: &'a [(Table, String, Vec<u8>)],
    ) -> Result<Option<(Table, &'a str)>, redb::Error> {
        for (table, key, value) in equal {
            let same = self
                .table(*table)
                .get(key.as_str())?
                .is_some_and(|v| v.value() == value.as_slice());
            if !same {
                return Ok(Some((*table, key)));
            }
        }
        Ok(None)
    }

    fn apply(&mut self, op: &Op) -> Result<(), redb::Error> {
        match op {
            Op::Put { table, key, value } => {
                self.table(*table).insert(key.as_str(), value.as_slice())?;
            }
            Op::Delete { table, key } => {
                self.table(*table).remove(key.as_str())?;
            }
            Op::AckOutbox { through } => {
                let acked = self
                    .counters
                    .get(tables::OUTBOX_ACKED)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                let through = (*through).min(self.outbox_head);
                if through > acked {
                    self.outbox.retain_in(acked + 1..=through, |_, _| false)?;
                    self.counters.insert(tables::OUTBOX_ACKED, through)?;
                }
            }
            Op::Counter { name, value } => {
                self.counters.insert(*name, *value)?;
            }
        }
        Ok(())
    }

    /// Keeps `event` at the `seq` another node gave it, if it is newer than
    /// what the channel holds; returns whether it was kept.
    fn append_replicated(
        &mut self,
        channel: &Channel,
        seq: u64,
        event: &Event,
    ) -> Result<bool, redb::Error> {
        let name = channel.name();
        let head = self
            .heads
            .get(name.as_str())?
            .map(|v| v.value())
            .unwrap_or(0);
        if seq <= head {
            return Ok(false);
        }
        self.keep_in_history(&name, seq, event)?;
        Ok(true)
    }

    /// Makes `seq` the channel's head and keeps the event in its history,
    /// dropping the one that falls out of the window.
    fn keep_in_history(&mut self, name: &str, seq: u64, event: &Event) -> Result<(), redb::Error> {
        self.heads.insert(name, seq)?;
        let json = serde_json::to_vec(event).expect("events serialise to JSON");
        self.events.insert((name, seq), json.as_slice())?;
        if seq > self.config.channel_history {
            self.events
                .remove((name, seq - self.config.channel_history))?;
        }
        Ok(())
    }

    /// Numbers the event in its channel, keeps it in the channel's history
    /// (dropping the one that falls out of the window) and appends it to the outbox.
    fn append_event(&mut self, channel: &Channel, event: &Event) -> Result<u64, redb::Error> {
        let name = channel.name();
        let seq = self
            .heads
            .get(name.as_str())?
            .map(|v| v.value())
            .unwrap_or(0)
            + 1;
        self.keep_in_history(&name, seq, event)?;

        if !medrelay_protocol::nats::is_published(channel) {
            return Ok(seq);
        }
        self.outbox_head += 1;
        self.outbox_grew = true;
        let entry = OutboxEntry {
            position: self.outbox_head,
            event_id: format!("{name}/{seq}"),
            channel: channel.clone(),
            seq,
            event: event.clone(),
        };
        let entry = serde_json::to_vec(&entry).expect("outbox entries serialise to JSON");
        self.outbox.insert(self.outbox_head, entry.as_slice())?;
        // With no consumer, keep a bounded window; a consumer acknowledges
        // what it has handled and `AckOutbox` deletes it.
        if !self.config.outbox_consumer && self.outbox_head > self.config.outbox_retain {
            self.outbox
                .remove(self.outbox_head - self.config.outbox_retain)?;
        }
        self.counters
            .insert(tables::OUTBOX_HEAD, self.outbox_head)?;
        Ok(seq)
    }
}
