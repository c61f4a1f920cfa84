//! The audit log at the store level: append-only, numbered and chained.
//!
//! Entry `n` is stored as `hash(n) ‖ json(n)` where
//! `hash(n) = SHA-256(hash(n-1) ‖ n as 8 little-endian bytes ‖ json(n))` and
//! `hash(0)` is 32 zero bytes. The writer computes the hash when it applies
//! the batch, so the chain follows commit order, and replaying the redo log
//! rebuilds it exactly. Changing, removing or reordering any entry breaks
//! every link after it; [`Store::verify_audit`] finds the first.

use redb::{ReadableTable, ReadableTableMetadata};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, tables};

const HASH: usize = 32;

fn link(prev: &[u8], seq: u64, entry: &[u8]) -> [u8; HASH] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(seq.to_le_bytes());
    hasher.update(entry);
    hasher.finalize().into()
}

/// The number and hash of the last entry, as one transaction knows them.
pub(super) type Head = Option<(u64, [u8; HASH])>;

/// Appends `entry` after the last one; returns its number. `head` caches
/// the last entry within one transaction (read from the log when `None`).
pub(super) fn append(
    log: &mut redb::Table<'_, u64, &'static [u8]>,
    head: &mut Head,
    entry: &[u8],
) -> Result<u64, redb::Error> {
    let (last, prev) = match *head {
        Some(known) => known,
        None => match log.last()? {
            Some((seq, value)) => {
                let prev: [u8; HASH] = value
                    .value()
                    .get(..HASH)
                    .and_then(|p| p.try_into().ok())
                    .unwrap_or([0; HASH]);
                (seq.value(), prev)
            }
            None => (0, [0; HASH]),
        },
    };
    let seq = last + 1;
    let hash = link(&prev, seq, entry);
    let mut value = Vec::with_capacity(HASH + entry.len());
    value.extend_from_slice(&hash);
    value.extend_from_slice(entry);
    log.insert(seq, value.as_slice())?;
    *head = Some((seq, hash));
    Ok(seq)
}

/// What [`Store::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every link holds.
    Intact {
        /// How many entries the log holds.
        entries: u64,
    },
    /// The first entry whose link does not hold (changed, or a neighbour
    /// removed or changed).
    Broken {
        /// Its number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

impl Store {
    /// Up to `limit` audit entries (number and JSON) after `after`, oldest
    /// first.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.read_txn()?;
        let log = txn.open_table(tables::AUDIT_LOG)?;
        let mut out = Vec::new();
        for item in log.range(after.saturating_add(1)..)?.take(limit) {
            let (seq, value) = item?;
            let entry = value.value().get(HASH..).unwrap_or_default().to_vec();
            out.push((seq.value(), entry));
        }
        Ok(out)
    }

    /// Up to `limit` numbers of `patient`'s audit entries after `after`,
    /// oldest first.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn audit_of_patient(
        &self,
        patient: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let txn = self.read_txn()?;
        let index = txn.open_table(tables::AUDIT_BY_PATIENT)?;
        let from = (patient, after.saturating_add(1));
        let to = (patient, u64::MAX);
        let mut out = Vec::new();
        for item in index.range(from..=to)?.take(limit) {
            out.push(item?.0.value().1);
        }
        Ok(out)
    }

    /// One audit entry's JSON.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read_txn()?;
        let log = txn.open_table(tables::AUDIT_LOG)?;
        Ok(log
            .get(seq)?
            .map(|v| v.value().get(HASH..).unwrap_or_default().to_vec()))
    }

    /// Walks the whole audit log and checks every link of the chain.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let txn = self.read_txn()?;
        let log = txn.open_table(tables::AUDIT_LOG)?;
        let mut prev = [0u8; HASH];
        for (expected, item) in (1..).zip(log.iter()?) {
            let (seq, value) = item?;
            let (seq, value) = (seq.value(), value.value());
            let broken = |reason: &str| AuditCheck::Broken {
                seq,
                reason: reason.to_owned(),
            };
            if seq != expected {
                return Ok(broken(&format!("entry {expected} is missing")));
            }
            let Some((hash, entry)) = value.split_at_checked(HASH) else {
                return Ok(broken("shorter than its hash"));
            };
            if hash != link(&prev, seq, entry) {
                return Ok(broken(
                    "its hash does not match its content and the entry before it",
                ));
            }
            prev.copy_from_slice(hash);
        }
        Ok(AuditCheck::Intact {
            entries: log.len()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteBatch;
    use crate::test_support::store_and_system;

    #[tokio::test]
    async fn the_chain_finds_a_changed_entry() {
        let (_dir, store, _system) = store_and_system();
        for i in 0..5 {
            let mut batch = WriteBatch::new();
            let patients = if i % 2 == 0 {
                vec!["pat_even".into()]
            } else {
                Vec::new()
            };
            batch.audit(patients, format!("{{\"n\":{i}}}").into_bytes());
            store.write(batch).await.unwrap();
        }
        assert_eq!(
            store.verify_audit().unwrap(),
            AuditCheck::Intact { entries: 5 }
        );
        assert_eq!(
            store.audit_of_patient("pat_even", 0, 10).unwrap(),
            [1, 3, 5]
        );
        assert_eq!(store.audit_of_patient("pat_even", 1, 10).unwrap(), [3, 5]);
        assert_eq!(store.audit_entry(2).unwrap().unwrap(), br#"{"n":1}"#);
        let page = store.audit_log(3, 10).unwrap();
        assert_eq!(page.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [4, 5]);

        // One byte of entry 3 changed behind the writer's back.
        {
            let slot = store.db.read().unwrap();
            let db = slot.as_ref().unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut log = txn.open_table(tables::AUDIT_LOG).unwrap();
                let mut value = log.get(3).unwrap().unwrap().value().to_vec();
                let last = value.len() - 2;
                value[last] ^= 1;
                log.insert(3, value.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        match store.verify_audit().unwrap() {
            AuditCheck::Broken { seq, .. } => assert_eq!(seq, 3),
            intact => panic!("the change went unnoticed: {intact:?}"),
        }
    }
}
