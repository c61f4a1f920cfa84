//! Analytics figures, kept as sums per (doctor or author, clinic day) in
//! the same transaction as the change that moves them (see `store::stats`):
//! [`appointments`] per doctor, [`records`] per author of medical records,
//! [`billing`] for the whole clinic, [`notifications`] per channel and
//! category.
//!
//! Each figure is a function of one record as it stands: a change tallies
//! the record's figures after it minus its figures before it. The sums are
//! therefore exactly what a recount of the records gives ([`rebuild`]
//! recounts them), and a change that does not move a figure writes nothing.
//!
//! Days are the clinic's (`analytics.time_zone`, kept with the store as
//! [`Store::stats_zone`](crate::store::Store::stats_zone)). A store counted
//! in another zone or by other rules ([`appointments::RULES`]) is recounted
//! at start.

pub mod appointments;
pub mod billing;
#[cfg(test)]
mod billing_tests;
#[cfg(test)]
mod notification_tests;
pub mod notifications;
pub mod rebuild;
pub mod records;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::tz::TimeZone;

pub use crate::store::Figures;
use crate::store::{WriteBatch, add_to};

/// A record (or what the figures read of one) that counts in the figures.
pub trait Counted {
    /// The rows it adds to, by the clinic's days in `zone`, and what it adds.
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)>;
}

/// The first and last row keys of `kind`'s rows (`a`, `r`, `b`) on the
/// clinic days `from` to `to`, for [`Store::visit_stats`](crate::store::Store::visit_stats).
pub fn day_range(kind: &str, from: jiff::civil::Date, to: jiff::civil::Date) -> (String, String) {
    (format!("{kind}/{from}/"), format!("{kind}/{to}/\u{10ffff}"))
}

/// Tallies in `batch` what a change from `before` (`None`: new) to `after`
/// did to the figures.
pub fn tally<T: Counted>(batch: &mut WriteBatch, zone: &TimeZone, before: Option<&T>, after: &T) {
    let mut rows: BTreeMap<String, Figures> = BTreeMap::new();
    let before = before.map(|b| b.rows(zone)).unwrap_or_default();
    for (sign, side) in [(1, after.rows(zone)), (-1, before)] {
        for (key, figures) in side {
            add_to(rows.entry(key).or_default(), &figures, sign);
        }
    }
    for (key, figures) in rows {
        batch.tally(key, figures);
    }
}

/// The whole clinic's headline figures of the clinic day `now` falls on:
/// today's rows of every doctor and author, summed.
///
/// # Errors
/// A storage error.
pub fn headline(
    store: &crate::store::Store,
    now: jiff::Timestamp,
) -> Result<medrelay_protocol::analytics::Headline, crate::store::StoreError> {
    let day = now.to_zoned(store.stats_zone().clone()).date();
    let mut h = medrelay_protocol::analytics::Headline {
        day,
        booked: 0,
        completed: 0,
        cancelled: 0,
        late_cancellations: 0,
        no_shows: 0,
        records_written: 0,
    };
    let add = |n: &mut u64, v: i64| *n = n.saturating_add(u64::try_from(v).unwrap_or(0));
    let (first, last) = day_range("a", day, day);
    store.visit_stats(&first, &last, |_, figures| {
        for (code, value) in figures {
            match *code {
                appointments::BOOKED => add(&mut h.booked, *value),
                appointments::COMPLETED => add(&mut h.completed, *value),
                appointments::CANCELLED => add(&mut h.cancelled, *value),
                appointments::LATE_CANCELLED => add(&mut h.late_cancellations, *value),
                appointments::NO_SHOWS => add(&mut h.no_shows, *value),
                _ => {}
            }
        }
    })?;
    let (first, last) = day_range("r", day, day);
    store.visit_stats(&first, &last, |_, figures| {
        for (code, value) in figures {
            if matches!(
                *code,
                records::CREATED | records::UPDATED | records::DELETED
            ) {
                add(&mut h.records_written, *value);
            }
        }
    })?;
    Ok(h)
}
