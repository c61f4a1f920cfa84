//! [`Snapshot`]: several reads from one consistent view of the store.

use std::marker::PhantomData;

use redb::{ReadOnlyTable, ReadTransaction};

use serde::de::DeserializeOwned;

use super::record::{decode, decode_view};
use super::{Record, StoreError, Table};

/// One read transaction: every read through it sees the same committed
/// state, and a read that visits many records opens it once.
pub struct Snapshot {
    pub(super) txn: ReadTransaction,
}

/// One table of a [`Snapshot`], opened once for many lookups.
pub struct Records<T> {
    table: ReadOnlyTable<&'static str, &'static [u8]>,
    kind: PhantomData<T>,
}

/// A record met in a range, decoded only when asked.
pub struct Entry<'a> {
    /// Its key.
    pub key: &'a str,
    bytes: &'a [u8],
}

impl Entry<'_> {
    /// The record.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it cannot be read as a `T`.
    pub fn decode<T: Record>(&self) -> Result<T, StoreError> {
        decode(self.key, self.bytes)
    }
}

impl<T: Record> Records<T> {
    /// Reads one record.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get_view::<T>(key)
    }

    /// Reads one record as `V`, a view of some of its fields; the others
    /// are skipped without being built.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure or an unreadable value.
    pub fn get_view<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, StoreError> {
        match self.table.get(key)? {
            Some(v) => Ok(Some(decode_view::<T, V>(key, v.value())?)),
            None => Ok(None),
        }
    }
}

impl Snapshot {
    /// The table of `T`, for lookups.
    ///
    /// # Errors
    /// [`StoreError`] when the table cannot be opened.
    pub fn records<T: Record>(&self) -> Result<Records<T>, StoreError> {
        Ok(Records {
            table: self.txn.open_table(T::TABLE.def())?,
            kind: PhantomData,
        })
    }

    /// Visits the entries of `table` with keys in `[from, to)`, in key
    /// order, decoding none unless `visit` asks.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure, or what `visit` returns.
    pub fn for_each_between(
        &self,
        table: Table,
        from: &str,
        to: &str,
        mut visit: impl FnMut(Entry<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let table = self.txn.open_table(table.def())?;
        for item in table.range::<&str>(from..to)? {
            let (k, v) = item?;
            visit(Entry {
                key: k.value(),
                bytes: v.value(),
            })?;
        }
        Ok(())
    }

    /// Visits at most `limit` entries of `table` with keys from `from` on,
    /// in key order, decoding none unless `visit` asks; returns the last
    /// key visited (`None`: none was left). The next page starts after it.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure, or what `visit` returns.
    pub fn for_each_from(
        &self,
        table: Table,
        from: &str,
        limit: usize,
        mut visit: impl FnMut(Entry<'_>) -> Result<(), StoreError>,
    ) -> Result<Option<String>, StoreError> {
        let table = self.txn.open_table(table.def())?;
        let mut last = None;
        for item in table.range::<&str>(from..)?.take(limit) {
            let (k, v) = item?;
            visit(Entry {
                key: k.value(),
                bytes: v.value(),
            })?;
            last = Some(k.value().to_owned());
        }
        Ok(last)
    }
}
