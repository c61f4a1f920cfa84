//! [`WriteBatch`]: the changes, preconditions and events that commit
//! together or not at all.

use medrelay_protocol::{Channel, Event};

use super::record::{self, Record};
use super::tables::Table;

#[derive(Debug)]
pub(crate) enum Op {
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: String,
    },
    /// Outbox entries up to `through` were consumed: remember it, drop them.
    AckOutbox {
        through: u64,
    },
    /// Sets a named counter.
    Counter {
        name: String,
        value: u64,
    },
    /// Appends an entry to the audit log, chained at apply time.
    Audit {
        patients: Vec<String>,
        entry: Vec<u8>,
    },
    /// Adds to a stats row's figures (see `stats.rs`).
    Tally {
        key: String,
        figures: super::stats::Figures,
    },
    /// Deletes the stats rows under a key prefix.
    ResetStats {
        prefix: String,
    },
    /// The stats rows a record now counts in (`rows`, empty once it is
    /// gone): the writer tallies them minus the rows it counted in before,
    /// which it keeps beside the stats (see `stats.rs`); `tally: false` only
    /// notes them (a recount, which tallies its sums itself).
    Count {
        table: Table,
        key: String,
        rows: Vec<(String, super::stats::Figures)>,
        tally: bool,
    },
    /// Forgets every record's noted rows: the first step of a recount.
    ResetCounted,
}

/// Changes that commit together or not at all.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub(crate) absent: Vec<(Table, String)>,
    pub(crate) present: Vec<(Table, String)>,
    pub(crate) equal: Vec<(Table, String, Vec<u8>)>,
    pub(crate) ops: Vec<Op>,
    pub(crate) events: Vec<(Channel, Event)>,
    pub(crate) replicated: Vec<(Channel, u64, Event)>,
    /// Whether the batch may commit without an fsync of its own.
    pub(crate) lazy: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rejects the whole batch with [`WriteError::Exists`](super::WriteError::Exists) if `key` is present
    /// in `table` when the batch is applied.
    pub fn require_absent(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        self.absent.push((table, key.into()));
        self
    }

    /// Rejects the whole batch with [`WriteError::Missing`](super::WriteError::Missing) if `key` is absent
    /// from `table` when the batch is applied.
    pub fn require_present(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        self.present.push((table, key.into()));
        self
    }

    /// Rejects the whole batch with [`WriteError::Changed`](super::WriteError::Changed) unless `key`
    /// holds exactly `value` when the batch is applied: a compare-and-swap,
    /// for a flag that two writers must not both flip (a refresh token's
    /// `used`).
    pub fn require_equal<T: Record>(&mut self, key: impl Into<String>, value: &T) -> &mut Self {
        self.equal
            .push((T::TABLE, key.into(), record::encode(value)));
        self
    }

    /// Writes a record under `key` in its table.
    pub fn put<T: Record>(&mut self, key: impl Into<String>, value: &T) -> &mut Self {
        self.ops.push(Op::Put {
            table: T::TABLE,
            key: key.into(),
            value: record::encode(value),
        });
        self
    }

    /// Deletes `key` from `table` (a no-op when absent).
    pub fn delete(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::Delete {
            table,
            key: key.into(),
        });
        self
    }

    /// Records an event on `channel`, numbered at commit time.
    pub fn event(&mut self, channel: Channel, event: Event) -> &mut Self {
        self.events.push((channel, event));
        self
    }

    /// Records an event that another node numbered: it keeps its `seq`, is
    /// kept in the channel history and handed to subscribers, but is not put
    /// in this node's outbox. An event at or below the channel's head is
    /// already here and is skipped.
    pub fn replicated_event(&mut self, channel: Channel, seq: u64, event: Event) -> &mut Self {
        self.replicated.push((channel, seq, event));
        self
    }

    /// Marks outbox entries up to `through` as consumed and deletes them.
    pub fn ack_outbox(&mut self, through: u64) -> &mut Self {
        self.ops.push(Op::AckOutbox { through });
        self
    }

    /// Sets the named counter (read back with [`Store::counter`](super::Store::counter)).
    pub fn set_counter(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.ops.push(Op::Counter {
            name: name.to_owned(),
            value,
        });
        self
    }

    /// Appends `entry` to the tamper-evident audit log when the batch
    /// commits: numbered and chained (SHA-256 over the previous entry's
    /// hash) by the writer, and indexed under each of `patients`. See
    /// [`Store::audit_log`](super::Store::audit_log).
    pub fn audit(&mut self, patients: Vec<String>, entry: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Audit { patients, entry });
        self
    }

    /// Lets the batch commit without an fsync of its own: it is answered at
    /// once and becomes durable with the next durable commit (at the latest
    /// when the store closes); a crash before then loses it. Only for
    /// bookkeeping that is safe to do again, such as the outbox publisher's
    /// record of what JetStream holds (a republished event is dropped by
    /// JetStream's duplicate window and by the start-up reconciliation).
    pub fn lazy(&mut self) -> &mut Self {
        self.lazy = true;
        self
    }

    /// Appends another batch's preconditions, changes and events.
    pub fn absorb(&mut self, other: WriteBatch) -> &mut Self {
        self.absent.extend(other.absent);
        self.present.extend(other.present);
        self.equal.extend(other.equal);
        self.ops.extend(other.ops);
        self.events.extend(other.events);
        self.replicated.extend(other.replicated);
        self.lazy &= other.lazy;
        self
    }

    /// The position (among the batch's events, as in [`Committed::seqs`](super::Committed::seqs)) of
    /// the last event on a channel that `on` accepts.
    pub fn last_event_where(&self, on: impl Fn(&Channel) -> bool) -> Option<usize> {
        self.events.iter().rposition(|(channel, _)| on(channel))
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.events.is_empty() && self.replicated.is_empty()
    }
}
