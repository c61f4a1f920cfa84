//! The medical-record figures of one author's clinic day, under
//! `r/<yyyy-mm-dd>/<user>`: the versions they wrote that day (see
//! `medical::RecordVersion::figures`, which says which figure a version moves).

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::Figures;
use crate::store::WriteBatch;

/// Records written (their first version).
pub const CREATED: u16 = 0;
/// Changes to records.
pub const UPDATED: u16 = 1;
/// Records deleted (their tombstones).
pub const DELETED: u16 = 2;

/// The row key of `author`'s figures on clinic day `day`.
pub fn key(day: Date, author: &str) -> String {
    format!("r/{day}/{author}")
}

/// The row and figures of one version: `figure` (one of the codes above),
/// written `at` by `author`.
pub fn figures(at: Timestamp, author: &str, figure: u16, zone: &TimeZone) -> (String, Figures) {
    let day = at.to_zoned(zone.clone()).date();
    (key(day, author), [(figure, 1)].into())
}

/// Tallies in `batch` a version written (`sign` 1) or erased (`sign` -1).
pub fn tally(batch: &mut WriteBatch, (key, figures): (String, Figures), sign: i64) {
    batch.tally(
        key,
        figures.into_iter().map(|(c, v)| (c, v * sign)).collect(),
    );
}
