//! Rows that cannot be read back, set aside: a queue that a reader works
//! through in key order (reminders, notices) would otherwise stop at such a
//! row for good, and everything behind it with it. The row's bytes are kept
//! whole in `set_aside` for an operator (or a later release) to read.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Record, Store, StoreError, Table, WriteBatch};

/// A row moved out of its table because it could not be read (table
/// `set_aside`, keyed `<table>/<key>/<ms set aside, 13 digits>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAside {
    /// The table it was in.
    pub table: String,
    /// Its key there.
    pub key: String,
    /// Why it could not be read.
    pub reason: String,
    /// Its stored bytes, in hexadecimal (sealed fields stay sealed).
    pub bytes: String,
    /// When it was set aside.
    pub at: Timestamp,
}

impl Record for SetAside {
    const TABLE: Table = Table::SetAside;
    const VERSION: u16 = 1;
}

impl Store {
    /// The batch that moves the row under `key` of `T`'s table to
    /// `set_aside`, on condition that it still holds the same bytes; `None`
    /// when it is gone or reads as a `T` now (rewritten since).
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn set_aside<T: Record>(
        &self,
        key: &str,
        reason: &str,
    ) -> Result<Option<WriteBatch>, StoreError> {
        let table = T::TABLE;
        let txn = self.read_txn()?;
        let rows = txn.open_table(table.def())?;
        let Some(value) = rows.get(key)? else {
            return Ok(None);
        };
        let raw = value.value().to_vec();
        if super::record::decode::<T>(key, &raw).is_ok() {
            return Ok(None);
        }
        let bytes = raw.iter().map(|b| format!("{b:02x}")).collect();
        // Its time last, so that a row set aside later under the same key
        // keeps the earlier one.
        let at = Timestamp::now();
        let aside_key = format!("{}/{key}/{:013}", table.name(), at.as_millisecond());
        let mut batch = WriteBatch::new();
        // Only these bytes, and never over an earlier row set aside.
        batch.equal.push((table, key.to_owned(), raw));
        batch.require_absent(Table::SetAside, aside_key.clone());
        batch.delete(table, key);
        batch.put(
            aside_key,
            &SetAside {
                table: table.name().to_owned(),
                key: key.to_owned(),
                reason: reason.to_owned(),
                bytes,
                at,
            },
        );
        Ok(Some(batch))
    }
}
