//! Recounting every figure from the records: after a restore, when the
//! clinic's zone changed, or for a figure a release added.

use std::collections::{BTreeMap, HashMap};

use medrelay_protocol::Money;

use super::billing::{BillState, ClaimState};
use super::{Counted, Figures, appointments};
use crate::billing::StoredBill;
use crate::billing::claims::StoredClaim;
use crate::billing::payments::PaymentRecord;
use crate::medical::RecordVersion;
use crate::notify::NotificationRecord;
use crate::schedule::AppointmentRecord;
use crate::store::{Entry, Store, StoreError, Table, WriteBatch, WriteError, add_to};

/// The counter naming the zone and rules the figures were counted by.
const ZONE: &str = "stats_zone";

/// Self-tallied records noted per batch by a recount.
/// (Two in tests, so that they cross pages.)
const NOTE_BATCH: usize = if cfg!(test) { 2 } else { 10_000 };

/// Why a recount failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Reading the records.
    #[error(transparent)]
    Read(#[from] StoreError),
    /// Writing the figures.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What the figures are, recounted from the records now stored.
///
/// # Errors
/// A storage error.
pub fn recount(store: &Store) -> Result<BTreeMap<String, Figures>, StoreError> {
    let zone = store.stats_zone();
    let mut rows: BTreeMap<String, Figures> = BTreeMap::new();
    let mut add = |(key, figures): (String, Figures)| {
        add_to(rows.entry(key).or_default(), &figures, 1);
    };
    let snapshot = store.snapshot()?;
    snapshot.for_each_between(Table::Appointments, "", "\u{10ffff}", |entry| {
        entry
            .decode::<AppointmentRecord>()?
            .rows(zone)
            .into_iter()
            .for_each(&mut add);
        Ok(())
    })?;
    snapshot.for_each_between(Table::RecordVersions, "", "\u{10ffff}", |entry| {
        add(entry.decode::<RecordVersion>()?.figures(zone));
        Ok(())
    })?;
    // What each claim still expects of the insurer, by claim.
    let mut insurer_due: HashMap<String, Money> = HashMap::new();
    snapshot.for_each_between(Table::Claims, "", "\u{10ffff}", |entry| {
        let claim = entry.decode::<StoredClaim>()?;
        ClaimState::from(&claim)
            .rows(zone)
            .into_iter()
            .for_each(&mut add);
        insurer_due.insert(claim.claim_id.to_string(), claim.insurer_due());
        Ok(())
    })?;
    snapshot.for_each_between(Table::Bills, "", "\u{10ffff}", |entry| {
        let bill = entry.decode::<StoredBill>()?;
        let due = bill
            .claim_id
            .as_ref()
            .and_then(|c| insurer_due.get(c.as_str()).copied())
            .unwrap_or(Money::ZERO);
        BillState::stored(&bill, due)
            .rows(zone)
            .into_iter()
            .for_each(&mut add);
        Ok(())
    })?;
    snapshot.for_each_between(Table::Payments, "", "\u{10ffff}", |entry| {
        entry
            .decode::<PaymentRecord>()?
            .rows(zone)
            .into_iter()
            .for_each(&mut add);
        Ok(())
    })?;
    // Notifications: the records the store tallies itself (see
    // `WriteBatch::put_counted`).
    snapshot.for_each_between(Table::Notifications, "", "\u{10ffff}", |entry| {
        if let Some(record) = notification(&entry) {
            record.rows(zone).into_iter().for_each(&mut add);
        }
        Ok(())
    })?;
    rows.retain(|_, row| {
        row.retain(|_, v| *v != 0);
        !row.is_empty()
    });
    Ok(rows)
}

/// A notification the recount can read. One it cannot is left out of the
/// figures with a warning rather than keep the server from starting (its
/// figures come back when it is next written).
fn notification(entry: &Entry<'_>) -> Option<NotificationRecord> {
    entry
        .decode::<NotificationRecord>()
        .inspect_err(|e| {
            tracing::warn!(notification = entry.key, error = %e, "a notification the recount cannot read is left out of the figures");
        })
        .ok()
}

/// Every kept figure, by row.
///
/// # Errors
/// A storage error.
pub fn kept(store: &Store) -> Result<BTreeMap<String, Figures>, StoreError> {
    let mut rows = BTreeMap::new();
    store.visit_stats("", "\u{10ffff}", |key, figures| {
        rows.insert(key.to_owned(), figures.iter().copied().collect());
    })?;
    Ok(rows)
}

/// Replaces every kept figure with a recount (the sums in one batch, then
/// what each self-tallied record counts in) and notes the zone it was
/// counted in. Returns the rows it wrote. Run it with
/// nothing else writing (at start, or offline): a change committed between
/// the recount and its write would be lost from the figures.
///
/// # Errors
/// A storage error.
pub async fn rebuild(store: &Store) -> Result<BTreeMap<String, Figures>, RebuildError> {
    let rows = recount(store)?;
    let mut batch = WriteBatch::new();
    // Until the last batch notes the zone, a start recounts again.
    batch.reset_stats("").reset_counted().set_counter(ZONE, 0);
    for (key, figures) in &rows {
        batch.tally(key.clone(), figures.clone());
    }
    store.write(batch).await?;
    // What each self-tallied record counts in, a page per batch (read
    // again rather than held: a store may keep millions); the zone is
    // noted last, so a recount cut short is done again at start.
    let zone = store.stats_zone();
    let mut from = String::new();
    loop {
        let mut batch = WriteBatch::new();
        let last =
            store
                .snapshot()?
                .for_each_from(Table::Notifications, &from, NOTE_BATCH, |entry| {
                    if let Some(record) = notification(&entry) {
                        batch.note_counted(Table::Notifications, entry.key, record.rows(zone));
                    }
                    Ok(())
                })?;
        store.write(batch).await?;
        match last {
            // The least key after `key`.
            Some(key) => from = format!("{key}\0"),
            None => break,
        }
    }
    let mut batch = WriteBatch::new();
    batch.set_counter(ZONE, zone_tag(store));
    store.write(batch).await?;
    Ok(rows)
}

/// Recounts when the figures were counted in another zone than the store's
/// or by other rules (or never: a store from before the figures existed).
/// Returns whether it did.
///
/// # Errors
/// A storage error.
pub async fn rebuild_if_stale(store: &Store) -> Result<bool, RebuildError> {
    if store.counter(ZONE)? == zone_tag(store) {
        return Ok(false);
    }
    let rows = rebuild(store).await?.len();
    tracing::info!(
        rows,
        zone = store.stats_zone().iana_name().unwrap_or("UTC"),
        "analytics figures recounted (new store, older release, or another clinic zone)"
    );
    Ok(true)
}

/// A stable non-zero number for the zone and the counting rules (FNV-1a
/// of the zone's name and [`appointments::RULES`]).
fn zone_tag(store: &Store) -> u64 {
    let name = store.stats_zone().iana_name().unwrap_or("UTC");
    let hash = name
        .bytes()
        .chain(appointments::RULES.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash | 1
}
