//! The delivery figures of one channel and category on one clinic day,
//! under `n/<yyyy-mm-dd>/<channel>/<category>`: the notifications made that
//! day (`direct` for sends with no category), by what became of them.
//!
//! Notification records have several writers (send lanes, provider
//! callbacks, patients' devices), so they are written with
//! [`WriteBatch::put_counted`](crate::store::WriteBatch::put_counted)
//! through [`put`]: the store tallies their change from what it replaces.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use medrelay_protocol::notification::DeliveryStatus;

use super::{Counted, Figures};
use crate::notify::NotificationRecord;
use crate::store::{Rows, WriteBatch};

/// Notifications made.
pub const MADE: u16 = 0;
/// Handed to the provider (or a live socket, or the outbox folder).
pub const SENT: u16 = 1;
/// Known to have arrived.
pub const DELIVERED: u16 = 2;
/// Will not arrive: undeliverable, or expired before it could be sent.
pub const FAILED: u16 = 3;
/// Of those, reminders that fell due while the server was down.
pub const EXPIRED: u16 = 4;
/// Sends that failed and were tried again (the `failed` entries of its
/// history; one that gave up ends `undeliverable`, in [`FAILED`]).
pub const FAILED_ATTEMPTS: u16 = 5;
/// In-app notifications a patient's device acknowledged.
pub const ACKNOWLEDGED: u16 = 6;

/// The row key of `channel`'s notifications about `category` on clinic day `day`.
pub fn key(day: Date, channel: &str, category: &str) -> String {
    format!("n/{day}/{channel}/{category}")
}

/// A notification counts on the clinic day it was made.
impl Counted for NotificationRecord {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        let Some(made) = self.history.first() else {
            return Vec::new();
        };
        let reached = |s: DeliveryStatus| self.history.iter().any(|e| e.status == s);
        let delivered = reached(DeliveryStatus::Delivered);
        let failed = matches!(
            self.status,
            DeliveryStatus::Undeliverable | DeliveryStatus::Expired
        );
        let attempts = self
            .history
            .iter()
            .filter(|e| e.status == DeliveryStatus::Failed)
            .count();
        let figures: Figures = [
            (MADE, 1),
            (SENT, i64::from(reached(DeliveryStatus::Sent) || delivered)),
            (DELIVERED, i64::from(delivered)),
            (FAILED, i64::from(failed)),
            (EXPIRED, i64::from(self.status == DeliveryStatus::Expired)),
            (FAILED_ATTEMPTS, i64::try_from(attempts).unwrap_or(i64::MAX)),
            (ACKNOWLEDGED, i64::from(self.acknowledged_at.is_some())),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
        let day = made.at.to_zoned(zone.clone()).date();
        let category = self.category.map_or("direct", |c| c.as_str());
        vec![(key(day, self.channel.as_str(), category), figures)]
    }
}

/// Writes a notification record in `batch`, counted in the figures of the
/// clinic zone `zone` (the store's).
pub fn put(batch: &mut WriteBatch, zone: &TimeZone, record: &NotificationRecord) {
    let rows: Rows = record.rows(zone);
    batch.put_counted(record.notification_id.as_str(), record, rows);
}
