//! Applying a group of batches inside one write transaction: preconditions,
//! changes, event numbering and the outbox. Deterministic given the state
//! before it, which is what lets the redo log replay a group exactly.

use medrelay_protocol::{Channel, Event};
use redb::{ReadableTable, WriteTransaction};

use super::audit;
use super::counted;
use super::stats;
use super::tables::{self, Table};
use super::{Committed, Op, OutboxEntry, StoreConfig, WriteBatch, WriteError};

/// What the transaction decided for one batch, before the commit.
pub(super) type Outcome = Result<Committed, WriteError>;

/// Applies `batches` in order inside `txn`, records `group` as the last
/// group applied, and returns each batch's outcome. Committed events are
/// added to `published`; `outboxed` tells whether the outbox grew.
pub(super) fn apply_group<'b>(
    txn: &WriteTransaction,
    batches: impl Iterator<Item = &'b WriteBatch>,
    group: u64,
    config: &StoreConfig,
    published: &mut Vec<(Channel, u64, Event)>,
    outboxed: &mut bool,
) -> Result<Vec<Outcome>, redb::Error> {
    let mut outcomes = Vec::new();
    let mut applier = Applier::open(txn, config);
    for batch in batches {
        outcomes.push(applier.batch(batch, published)?);
    }
    applier.tallies.flush(txn)?;
    applier.counters()?.insert(tables::WAL_APPLIED, group)?;
    *outboxed = applier.outbox_grew;
    Ok(outcomes)
}

/// The tables of one write transaction, each opened on first use: a group
/// touches a few of the store's tables, and opening all of them costs a
/// lone write as much as a fifth of its fsync.
struct Applier<'txn> {
    txn: &'txn WriteTransaction,
    records: [Option<redb::Table<'txn, &'static str, &'static [u8]>>; Table::ALL.len()],
    events: Option<redb::Table<'txn, (&'static str, u64), &'static [u8]>>,
    heads: Option<redb::Table<'txn, &'static str, u64>>,
    outbox: Option<redb::Table<'txn, u64, &'static [u8]>>,
    counters: Option<redb::Table<'txn, &'static str, u64>>,
    audit: Option<redb::Table<'txn, u64, &'static [u8]>>,
    audit_index: Option<redb::Table<'txn, (&'static str, u64), ()>>,
    counted: Option<redb::Table<'txn, &'static str, &'static [u8]>>,
    /// The audit log's last entry, once read.
    audit_head: audit::Head,
    /// The outbox's newest position, once read.
    outbox_head: Option<u64>,
    outbox_grew: bool,
    /// Stats tallies, summed per row and written once at the group's end.
    tallies: stats::Pending,
    config: &'txn StoreConfig,
}

/// The table in `slot`, opened on first use.
fn opened<'s, 'txn, K: redb::Key + 'static, V: redb::Value + 'static>(
    slot: &'s mut Option<redb::Table<'txn, K, V>>,
    txn: &'txn WriteTransaction,
    def: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut redb::Table<'txn, K, V>, redb::Error> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def)?);
    }
    Ok(slot.as_mut().expect("opened just above"))
}

impl<'txn> Applier<'txn> {
    fn open(txn: &'txn WriteTransaction, config: &'txn StoreConfig) -> Self {
        Self {
            txn,
            records: std::array::from_fn(|_| None),
            events: None,
            heads: None,
            outbox: None,
            counters: None,
            audit: None,
            audit_index: None,
            counted: None,
            audit_head: None,
            outbox_head: None,
            outbox_grew: false,
            tallies: stats::Pending::default(),
            config,
        }
    }

    fn table(
        &mut self,
        table: Table,
    ) -> Result<&mut redb::Table<'txn, &'static str, &'static [u8]>, redb::Error> {
        opened(&mut self.records[table.index()], self.txn, table.def())
    }

    fn events(
        &mut self,
    ) -> Result<&mut redb::Table<'txn, (&'static str, u64), &'static [u8]>, redb::Error> {
        opened(&mut self.events, self.txn, tables::CHANNEL_EVENTS)
    }

    fn heads(&mut self) -> Result<&mut redb::Table<'txn, &'static str, u64>, redb::Error> {
        opened(&mut self.heads, self.txn, tables::CHANNEL_HEADS)
    }

    fn outbox(&mut self) -> Result<&mut redb::Table<'txn, u64, &'static [u8]>, redb::Error> {
        opened(&mut self.outbox, self.txn, tables::OUTBOX)
    }

    fn counters(&mut self) -> Result<&mut redb::Table<'txn, &'static str, u64>, redb::Error> {
        opened(&mut self.counters, self.txn, tables::COUNTERS)
    }

    fn outbox_head(&mut self) -> Result<u64, redb::Error> {
        if let Some(head) = self.outbox_head {
            return Ok(head);
        }
        let head = self
            .counters()?
            .get(tables::OUTBOX_HEAD)?
            .map(|v| v.value())
            .unwrap_or(0);
        self.outbox_head = Some(head);
        Ok(head)
    }

    /// Checks one batch's preconditions and, if they hold, applies it.
    fn batch(
        &mut self,
        batch: &WriteBatch,
        published: &mut Vec<(Channel, u64, Event)>,
    ) -> Result<Outcome, redb::Error> {
        if let Some((table, key)) = self.first_present(&batch.absent)? {
            return Ok(Err(WriteError::Exists {
                table: table.name(),
                key: key.to_owned(),
            }));
        }
        if let Some((table, key)) = self.first_missing(&batch.present)? {
            return Ok(Err(WriteError::Missing {
                table: table.name(),
                key: key.to_owned(),
            }));
        }
        if let Some((table, key)) = self.first_changed(&batch.equal)? {
            return Ok(Err(WriteError::Changed {
                table: table.name(),
                key: key.to_owned(),
            }));
        }
        for op in &batch.ops {
            self.apply(op)?;
        }
        let mut seqs = Vec::with_capacity(batch.events.len());
        for (channel, event) in &batch.events {
            let seq = self.append_event(channel, event)?;
            seqs.push(seq);
            published.push((channel.clone(), seq, event.clone()));
        }
        for (channel, seq, event) in &batch.replicated {
            if self.append_replicated(channel, *seq, event)? {
                published.push((channel.clone(), *seq, event.clone()));
            }
        }
        Ok(Ok(Committed { seqs }))
    }

    fn first_present<'a>(
        &mut self,
        absent: &'a [(Table, String)],
    ) -> Result<Option<(Table, &'a str)>, redb::Error> {
        for (table, key) in absent {
            if self.table(*table)?.get(key.as_str())?.is_some() {
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
            if self.table(*table)?.get(key.as_str())?.is_none() {
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
                .table(*table)?
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
                self.table(*table)?.insert(key.as_str(), value.as_slice())?;
            }
            Op::Delete { table, key } => {
                self.table(*table)?.remove(key.as_str())?;
            }
            Op::AckOutbox { through } => {
                let acked = self
                    .counters()?
                    .get(tables::OUTBOX_ACKED)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                let through = (*through).min(self.outbox_head()?);
                if through > acked {
                    self.outbox()?
                        .retain_in(acked + 1..=through, |_, _| false)?;
                    self.counters()?.insert(tables::OUTBOX_ACKED, through)?;
                }
            }
            Op::Counter { name, value } => {
                self.counters()?.insert(name.as_str(), *value)?;
            }
            Op::Audit { patients, entry } => {
                let log = opened(&mut self.audit, self.txn, tables::AUDIT_LOG)?;
                let seq = audit::append(log, &mut self.audit_head, entry)?;
                let index = opened(&mut self.audit_index, self.txn, tables::AUDIT_BY_PATIENT)?;
                for patient in patients {
                    index.insert((patient.as_str(), seq), ())?;
                }
            }
            Op::Tally { key, figures } => self.tallies.add(key, figures),
            Op::ResetStats { prefix } => {
                // Tallies before the reset in this group are reset with it.
                self.tallies.flush(self.txn)?;
                stats::reset(self.txn, prefix)?;
            }
            Op::Count {
                table,
                key,
                rows,
                tally,
            } => {
                let kept = opened(&mut self.counted, self.txn, counted::COUNTED)?;
                counted::apply(kept, &mut self.tallies, (*table, key, rows, *tally))?;
            }
            Op::ResetCounted => {
                opened(&mut self.counted, self.txn, counted::COUNTED)?.retain(|_, _| false)?;
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
            .heads()?
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
        self.heads()?.insert(name, seq)?;
        let kept = super::phi::seal(self.config.vault.as_deref(), event);
        let json = serde_json::to_vec(&*kept).expect("events serialise to JSON");
        let history = self.config.channel_history;
        let events = self.events()?;
        events.insert((name, seq), json.as_slice())?;
        if seq > history {
            events.remove((name, seq - history))?;
        }
        Ok(())
    }

    /// Numbers the event in its channel, keeps it in the channel's history
    /// (dropping the one that falls out of the window) and appends it to the outbox.
    fn append_event(&mut self, channel: &Channel, event: &Event) -> Result<u64, redb::Error> {
        let name = channel.name();
        let seq = self
            .heads()?
            .get(name.as_str())?
            .map(|v| v.value())
            .unwrap_or(0)
            + 1;
        self.keep_in_history(&name, seq, event)?;

        if !medrelay_protocol::nats::is_published(channel) {
            return Ok(seq);
        }
        let position = self.outbox_head()? + 1;
        self.outbox_head = Some(position);
        self.outbox_grew = true;
        let entry = OutboxEntry {
            position,
            event_id: format!("{name}/{seq}"),
            channel: channel.clone(),
            seq,
            event: event.clone(),
        };
        let entry = serde_json::to_vec(&entry).expect("outbox entries serialise to JSON");
        let (consumer, retain) = (self.config.outbox_consumer, self.config.outbox_retain);
        let outbox = self.outbox()?;
        outbox.insert(position, entry.as_slice())?;
        // With no consumer, keep a bounded window; a consumer acknowledges
        // what it has handled and `AckOutbox` deletes it.
        if !consumer && position > retain {
            outbox.remove(position - retain)?;
        }
        self.counters()?.insert(tables::OUTBOX_HEAD, position)?;
        Ok(seq)
    }
}
