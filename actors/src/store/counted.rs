//! Records whose figures the writer tallies from what it replaces.
//!
//! Most records have one writer at a time (a doctor's actor, a bill under
//! compare-and-swap), which tallies its change itself: figures after minus
//! figures before ([`WriteBatch::tally`]). A notification is written by its
//! send lane, by provider callbacks and by the patient's devices, with no
//! common owner: what one of them read as "before" may already be stale.
//! For such records the batch says only which rows the record counts in now
//! ([`WriteBatch::put_counted`]); the writer keeps the rows each record last
//! counted in (the `counted` table) and, inside the write transaction,
//! tallies the new rows minus the kept ones. The figures are then exactly a
//! recount of what is stored, however the writers interleave, and a redo
//! log replay gives the same sums (the kept rows are part of the state).

use redb::TableDefinition;

use super::stats::{self, Figures, Pending};
use super::tables::Table;
use super::{Op, Record, WriteBatch};

/// `<table>/<key>` → the rows that record counts in, as last written.
pub(crate) const COUNTED: TableDefinition<&str, &[u8]> = TableDefinition::new("counted");

/// The rows a record counts in, each with what it adds there.
pub type Rows = Vec<(String, Figures)>;

impl WriteBatch {
    /// Writes a record under `key` that counts in `rows` from now on: the
    /// writer tallies `rows` minus the rows the stored record counted in.
    pub fn put_counted<T: Record>(
        &mut self,
        key: impl Into<String>,
        value: &T,
        rows: Rows,
    ) -> &mut Self {
        let key = key.into();
        self.put(key.clone(), value);
        self.ops.push(Op::Count {
            table: T::TABLE,
            key,
            rows,
            tally: true,
        });
        self
    }

    /// Deletes a counted record: its rows are taken off the figures.
    pub fn delete_counted(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        let key = key.into();
        self.delete(table, key.clone());
        self.ops.push(Op::Count {
            table,
            key,
            rows: Vec::new(),
            tally: true,
        });
        self
    }

    /// Notes the rows a record counts in without tallying them: a recount,
    /// after [`WriteBatch::reset_counted`], tallies its own sums.
    pub fn note_counted(&mut self, table: Table, key: impl Into<String>, rows: Rows) -> &mut Self {
        self.ops.push(Op::Count {
            table,
            key: key.into(),
            rows,
            tally: false,
        });
        self
    }

    /// Forgets the rows every counted record was noted in.
    pub fn reset_counted(&mut self) -> &mut Self {
        self.ops.push(Op::ResetCounted);
        self
    }
}

/// The kept-rows key of a record.
fn kept_key(table: Table, key: &str) -> String {
    format!("{}/{key}", table.name())
}

/// Applies an [`Op::Count`] inside the write transaction: keeps the new
/// rows and (when `tally`) tallies them minus those kept for the record
/// before. One B-tree write: the old rows come back from the insert.
pub(super) fn apply(
    kept: &mut redb::Table<'_, &'static str, &'static [u8]>,
    tallies: &mut Pending,
    (table, key, rows, tally): (Table, &str, &Rows, bool),
) -> Result<(), redb::Error> {
    let kept_key = kept_key(table, key);
    // Rows this release cannot read count as none; `rebuild-stats`
    // recounts them.
    let before = if rows.is_empty() {
        kept.remove(kept_key.as_str())?
            .and_then(|v| decode(v.value()))
    } else {
        kept.insert(kept_key.as_str(), encode(rows).as_slice())?
            .and_then(|v| decode(v.value()))
    }
    .unwrap_or_default();
    // Most writes (a send under way, a text sealed afresh) move no figure.
    if !tally || before == *rows {
        return Ok(());
    }
    for (row, figures) in &before {
        tallies.add(row, &figures.iter().map(|(c, v)| (*c, -v)).collect());
    }
    for (row, figures) in rows {
        tallies.add(row, figures);
    }
    Ok(())
}

/// Rows as bytes: for each, the key's length (u32) and bytes, then the
/// figures' length and bytes (as a stats row).
pub(super) fn encode(rows: &Rows) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, figures) in rows {
        let figures = stats::encode(figures);
        for part in [key.as_bytes(), figures.as_slice()] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

pub(super) fn decode(mut bytes: &[u8]) -> Option<Rows> {
    let mut rows = Vec::new();
    while !bytes.is_empty() {
        let key = String::from_utf8(take(&mut bytes)?.to_vec()).ok()?;
        rows.push((key, stats::decode(take(&mut bytes)?)?));
    }
    Some(rows)
}

/// The next length-prefixed part of `bytes`.
fn take<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_at_checked(4)?;
    let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (part, rest) = rest.split_at_checked(len)?;
    *bytes = rest;
    Some(part)
}
