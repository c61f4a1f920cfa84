//! Key rotation, the background half: re-sealing every value sealed with a
//! key other than the vault's current one.
//!
//! `medrelay admin rotate-key` adds a key and makes it current
//! ([`crate::phi::add_key`]); from then on new values are sealed with it,
//! and [`pass`] re-seals the older ones in batches through the group-commit
//! writer, each value conditional on being unchanged since it was read. A
//! crash loses nothing: the next start simply finds fewer stale values.
//! Once a pass finds none, the old keys can leave the key file.
//!
//! Events kept in channel histories are not re-sealed: each channel keeps
//! only its last events, and one sealed under a retired key reads back with
//! a note in place of its text (see `store/phi.rs`).

use std::time::Duration;

use crate::billing::claims::{self, ClaimVersion, StoredClaim};
use crate::billing::invoices::{self, StoredInvoice};
use crate::billing::{self, BillRevision, StoredBill};
use crate::medical::{self, RecordVersion, StoredRecord};
use crate::notify::NotificationRecord;
use crate::patients::history::{self, HistoryVersion};
use crate::patients::{self, PatientError, StoredPatient};
use crate::phi::Vault;
use crate::store::{Record, Store, Table, WriteBatch, WriteError};

/// One pass over every sealed table: re-seals up to `batch` stale values
/// per write, pausing `pause` between writes. Returns how many stale values
/// it found (0 means none is left).
///
/// # Errors
/// [`PatientError`] on a read failure or a value that does not open.
pub async fn pass(
    store: &Store,
    vault: &Vault,
    batch: usize,
    pause: Duration,
) -> Result<usize, PatientError> {
    let current = vault.current();
    let patients = table::<StoredPatient>(
        store,
        batch,
        pause,
        |p| p.stale(current),
        |_, p| Ok(patients::reseal(vault, p)?),
    )
    .await?;
    let records = table::<StoredRecord>(
        store,
        batch,
        pause,
        |r| r.sealed.stale(current),
        |_, r| Ok(medical::seal(vault, &medical::open(vault, r)?)),
    )
    .await?;
    let versions = table::<RecordVersion>(
        store,
        batch,
        pause,
        |v| v.sealed.stale(current),
        |key, v| Ok(medical::reseal_version(vault, key, v)?),
    )
    .await?;
    let histories = table::<HistoryVersion>(
        store,
        batch,
        pause,
        |v| v.sealed.key_id().ok() != Some(current),
        |key, v| Ok(history::reseal(vault, key, v)?),
    )
    .await?;
    let notifications = table::<NotificationRecord>(
        store,
        batch,
        pause,
        |n| n.stale(current),
        |_, n| Ok(n.resealed(vault)?),
    )
    .await?;
    let bills = table::<StoredBill>(
        store,
        batch,
        pause,
        |b| b.services.key_id().ok() != Some(current),
        |_, b| Ok(billing::seal(vault, &billing::open(vault, b)?)),
    )
    .await?;
    let bill_revisions = table::<BillRevision>(
        store,
        batch,
        pause,
        |r| r.services.key_id().ok() != Some(current),
        |key, r| Ok(billing::reseal_revision(vault, key, r)?),
    )
    .await?;
    let claims = table::<StoredClaim>(
        store,
        batch,
        pause,
        |c| claims::stale(c, current),
        |key, c| Ok(claims::reseal(vault, Table::Claims, key, c)?),
    )
    .await?;
    let claim_versions = table::<ClaimVersion>(
        store,
        batch,
        pause,
        |v| claims::stale(&v.0, current),
        |key, v| {
            Ok(ClaimVersion(claims::reseal(
                vault,
                Table::ClaimVersions,
                key,
                v.0,
            )?))
        },
    )
    .await?;
    let invoices = table::<StoredInvoice>(
        store,
        batch,
        pause,
        |i| i.body.key_id().ok() != Some(current),
        |key, i| Ok(invoices::reseal(vault, key, i)?),
    )
    .await?;
    Ok(invoices
        + patients
        + records
        + versions
        + histories
        + notifications
        + bills
        + bill_revisions
        + claims
        + claim_versions)
}

/// Re-seals the stale values of one table.
async fn table<T: Record + Clone>(
    store: &Store,
    batch: usize,
    pause: Duration,
    stale: impl Fn(&T) -> bool,
    reseal: impl Fn(&str, T) -> Result<T, PatientError>,
) -> Result<usize, PatientError> {
    let mut after: Option<String> = None;
    let mut found = 0;
    loop {
        let page = store.scan::<T>(after.as_deref(), batch.max(1))?;
        let Some((last, _)) = page.last() else {
            return Ok(found);
        };
        after = Some(last.clone());
        let mut write = WriteBatch::new();
        for (key, value) in page.into_iter().filter(|(_, v)| stale(v)) {
            found += 1;
            write.require_equal(key.clone(), &value);
            write.put(key.clone(), &reseal(&key, value)?);
        }
        if write.is_empty() {
            continue;
        }
        match store.write(write).await {
            // Something changed under the page: the next pass sees it again.
            Ok(_) | Err(WriteError::Changed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}
