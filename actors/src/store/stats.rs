//! Summed figures kept beside the records (the `stats` table): rows of
//! small signed counters that a batch adds to with [`WriteBatch::tally`]
//! and reports read by key range, so that a report never reads the
//! records it sums.
//!
//! A row is a list of `(figure code, value)` pairs in code order, 10 bytes
//! each; a figure that sums to zero is left out and an empty row is
//! deleted. What a code means belongs to the caller (see `crate::stats`).
//! The writer sums a group's tallies per row and writes each row once, at
//! the end of the group: a burst of bookings for one doctor and day costs
//! one row write per group, not one per booking.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Op, Store, StoreError, WriteBatch};

/// row key → its figures.
pub(crate) const STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("stats");

/// One row's figures: code → value.
pub type Figures = BTreeMap<u16, i64>;

impl WriteBatch {
    /// Adds `figures` to the stats row `key` when the batch commits (a row
    /// that does not exist starts at zero).
    pub fn tally(&mut self, key: impl Into<String>, figures: Figures) -> &mut Self {
        if !figures.values().all(|v| *v == 0) {
            self.ops.push(Op::Tally {
                key: key.into(),
                figures,
            });
        }
        self
    }

    /// Deletes every stats row whose key starts with `prefix` (before any
    /// tally later in the batch): the first step of a recount.
    pub fn reset_stats(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.ops.push(Op::ResetStats {
            prefix: prefix.into(),
        });
        self
    }
}

impl Store {
    /// The clinic's zone, whose days the figures are counted by.
    pub fn stats_zone(&self) -> &jiff::tz::TimeZone {
        &self.config.stats_zone
    }

    /// Visits the stats rows with keys in `from..=to`, in key order, each
    /// as its `(code, value)` pairs in code order, with nothing allocated
    /// per row (a year's report visits tens of thousands).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable row.
    pub fn visit_stats(
        &self,
        from: &str,
        to: &str,
        mut visit: impl FnMut(&str, &[(u16, i64)]),
    ) -> Result<(), StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(STATS)?;
        let mut pairs = Vec::new();
        for item in table.range::<&str>(from..=to)? {
            let (k, v) = item?;
            let key = k.value();
            pairs.clear();
            if !decode_into(v.value(), &mut pairs) {
                return Err(StoreError::Corrupt {
                    table: "stats",
                    key: key.to_owned(),
                    reason: "unreadable stats row".into(),
                });
            }
            visit(key, &pairs);
        }
        Ok(())
    }
}

/// Adds `sign` × `figures` to `row`, figure by figure.
pub fn add_to(row: &mut Figures, figures: &Figures, sign: i64) {
    for (code, value) in figures {
        *row.entry(*code).or_default() += sign * value;
    }
}

/// A group's tallies, summed per row until the group ends.
#[derive(Default)]
pub(super) struct Pending(BTreeMap<String, Figures>);

impl Pending {
    pub(super) fn add(&mut self, key: &str, figures: &Figures) {
        add_to(self.0.entry(key.to_owned()).or_default(), figures, 1);
    }

    /// Adds every pending sum to its row.
    pub(super) fn flush(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(STATS)?;
        for (key, sums) in std::mem::take(&mut self.0) {
            let mut row = match table.get(key.as_str())? {
                // A row this release cannot read is summed again from zero;
                // `rebuild-stats` recounts it.
                Some(v) => decode(v.value()).unwrap_or_default(),
                None => Figures::new(),
            };
            for (code, value) in sums {
                *row.entry(code).or_default() += value;
            }
            row.retain(|_, v| *v != 0);
            if row.is_empty() {
                table.remove(key.as_str())?;
            } else {
                table.insert(key.as_str(), encode(&row).as_slice())?;
            }
        }
        Ok(())
    }
}

/// Deletes the rows under `prefix`.
pub(super) fn reset(txn: &WriteTransaction, prefix: &str) -> Result<(), redb::Error> {
    let mut table = txn.open_table(STATS)?;
    table.retain_in(prefix.., |key, _| !key.starts_with(prefix))?;
    Ok(())
}

pub(super) fn encode(figures: &Figures) -> Vec<u8> {
    let mut out = Vec::with_capacity(figures.len() * 10);
    for (code, value) in figures {
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

pub(super) fn decode(bytes: &[u8]) -> Option<Figures> {
    let mut pairs = Vec::new();
    decode_into(bytes, &mut pairs).then(|| pairs.into_iter().collect())
}

/// Appends a row's pairs to `out`; false when the bytes are not a row.
fn decode_into(bytes: &[u8], out: &mut Vec<(u16, i64)>) -> bool {
    if bytes.len() % 10 != 0 {
        return false;
    }
    for pair in bytes.chunks_exact(10) {
        let (code, value) = pair.split_at(2);
        let (Ok(code), Ok(value)) = (<[u8; 2]>::try_from(code), <[u8; 8]>::try_from(value)) else {
            return false;
        };
        out.push((u16::from_le_bytes(code), i64::from_le_bytes(value)));
    }
    true
}
