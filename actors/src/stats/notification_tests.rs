//! Notification figures: the store tallies a notification's change from
//! what it replaces, so writers holding stale copies (a send lane and a
//! provider callback, a patient's device) still leave the figures equal to
//! a recount; and a recount notes what each record counts in.

use futures_util::future::join_all;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_protocol::notification::{DeliveryStatus, NotificationCategory, NotificationChannel};

use super::notifications::{self as n, put};
use super::rebuild;
use crate::notify::{NotificationRecord, StatusEntry};
use crate::store::{Figures, Store, StoreConfig, Table, WriteBatch};
use crate::test_support::Rng;

fn notification(id: &str, channel: NotificationChannel, at: Timestamp) -> NotificationRecord {
    let record: NotificationRecord = serde_json::from_value(serde_json::json!({
        "notificationId": id, "channel": channel, "category": "appointment_reminder",
        "text": {"legacy": {"recipient": "r", "body": "b"}},
        "status": "queued", "history": [], "attempts": 0
    }))
    .unwrap_or_else(|e| panic!("a notification: {e}"));
    let mut record = record;
    record.history.push(StatusEntry {
        status: DeliveryStatus::Queued,
        at,
        provider_message_id: None,
        detail: None,
    });
    record
}

fn kept(store: &Store) -> std::collections::BTreeMap<String, Figures> {
    rebuild::kept(store).unwrap()
}

async fn write(store: &Store, record: &NotificationRecord) {
    let mut batch = WriteBatch::new();
    put(&mut batch, store.stats_zone(), record);
    store.write(batch).await.unwrap();
}

fn open(dir: &tempfile::TempDir, zone: &str) -> Store {
    let config = StoreConfig {
        stats_zone: TimeZone::get(zone).unwrap(),
        ..StoreConfig::default()
    };
    Store::open(
        &dir.path().join("t.redb"),
        config,
        crate::hub::EventHub::new(8),
    )
    .unwrap()
}

#[test]
fn a_notification_counts_by_its_outcome_on_the_day_it_was_made() {
    let zone = TimeZone::get("Europe/Berlin").unwrap();
    // 23:30 UTC on 30 November is 00:30 on 1 December in Berlin.
    let made: Timestamp = "2026-11-30T23:30:00Z".parse().unwrap();
    let mut r = notification("ntf_1", NotificationChannel::Sms, made);
    let row = |r: &NotificationRecord| {
        use super::Counted;
        r.rows(&zone).into_iter().next().unwrap()
    };
    assert_eq!(
        row(&r),
        (
            "n/2026-12-01/sms/appointment_reminder".into(),
            [(n::MADE, 1)].into()
        )
    );
    let later = made + jiff::SignedDuration::from_mins(5);
    r.push_status(DeliveryStatus::Failed, later, None, None);
    r.push_status(DeliveryStatus::Sent, later, None, None);
    r.push_status(DeliveryStatus::Delivered, later, None, None);
    assert_eq!(
        row(&r).1,
        [
            (n::MADE, 1),
            (n::SENT, 1),
            (n::DELIVERED, 1),
            (n::FAILED_ATTEMPTS, 1)
        ]
        .into()
    );
    let mut gone = notification("ntf_2", NotificationChannel::Email, made);
    gone.category = None;
    gone.push_status(DeliveryStatus::Expired, later, None, None);
    assert_eq!(
        row(&gone),
        (
            "n/2026-12-01/email/direct".into(),
            [(n::MADE, 1), (n::FAILED, 1), (n::EXPIRED, 1)].into()
        )
    );
    let mut seen = notification("ntf_3", NotificationChannel::InApp, made);
    seen.category = Some(NotificationCategory::Billing);
    seen.push_status(DeliveryStatus::Delivered, later, None, None);
    seen.acknowledged_at = Some(later);
    assert_eq!(
        row(&seen).1,
        [
            (n::MADE, 1),
            (n::SENT, 1),
            (n::DELIVERED, 1),
            (n::ACKNOWLEDGED, 1)
        ]
        .into()
    );
}

#[tokio::test]
async fn writers_with_stale_copies_leave_the_figures_equal_to_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "America/New_York");
    let now = Timestamp::now();
    let mut rng = Rng(0xB0A7_5EED);
    let channels = [
        NotificationChannel::Email,
        NotificationChannel::Sms,
        NotificationChannel::Push,
        NotificationChannel::InApp,
    ];
    let mut ids = Vec::new();
    for i in 0..40usize {
        let id = format!("ntf_{i:03}");
        let at = now - jiff::SignedDuration::from_hours(i64::try_from(rng.below(72)).unwrap());
        write(&store, &notification(&id, channels[i % 4], at)).await;
        ids.push(id);
    }
    let statuses = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Undeliverable,
        DeliveryStatus::Expired,
    ];
    for round in 0..300 {
        // Several writers read the same record, change it their own way and
        // write it back at once: only one version stays, and the figures
        // must follow that one.
        let id = &ids[rng.below(ids.len())];
        let read = store.get::<NotificationRecord>(id).unwrap().unwrap();
        let writes = (0..1 + rng.below(3)).map(|_| {
            let mut copy = read.clone();
            copy.push_status(statuses[rng.below(5)], now, None, None);
            if rng.below(4) == 0 {
                copy.acknowledged_at = Some(now);
            }
            let store = store.clone();
            async move { write(&store, &copy).await }
        });
        join_all(writes.collect::<Vec<_>>()).await;
        if rng.below(40) == 0 {
            let mut batch = WriteBatch::new();
            batch.delete_counted(Table::Notifications, id.as_str());
            store.write(batch).await.unwrap();
            write(&store, &read).await;
        }
        if round % 50 == 49 {
            assert_eq!(
                kept(&store),
                rebuild::recount(&store).unwrap(),
                "round {round}"
            );
        }
    }
    let live = kept(&store);
    assert!(live.keys().any(|k| k.starts_with("n/")), "{live:?}");
    assert_eq!(live, rebuild::recount(&store).unwrap());

    // A recount notes what each record counts in: writes after it still
    // tally from there. A restart keeps both.
    assert_eq!(rebuild::rebuild(&store).await.unwrap(), live);
    let mut one = store.get::<NotificationRecord>(&ids[0]).unwrap().unwrap();
    one.push_status(DeliveryStatus::Delivered, now, None, None);
    write(&store, &one).await;
    let after = kept(&store);
    assert_eq!(after, rebuild::recount(&store).unwrap());
    store.close().await;
    let store = open(&dir, "America/New_York");
    assert_eq!(kept(&store), after);
    write(&store, &one).await;
    assert_eq!(kept(&store), after, "the same record again changes nothing");
    store.close().await;
}

#[tokio::test]
async fn a_notification_the_recount_cannot_read_is_left_out_and_the_rest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "UTC");
    let now = Timestamp::now();
    for i in 0..3 {
        write(
            &store,
            &notification(&format!("ntf_{i}"), NotificationChannel::Email, now),
        )
        .await;
    }
    let mut batch = WriteBatch::new();
    batch.ops.push(crate::store::Op::Put {
        table: Table::Notifications,
        key: "ntf_9".into(),
        value: b"\0\x02not json".to_vec(),
    });
    store.write(batch).await.unwrap();
    // The notes are written two to a page in tests: several pages.
    let figures = rebuild::rebuild(&store).await.unwrap();
    let made: i64 = figures.values().filter_map(|f| f.get(&n::MADE)).sum();
    assert_eq!(made, 3);
    assert_eq!(kept(&store), figures);
    // The readable ones were noted: a change to one moves only its own row.
    let mut one = store.get::<NotificationRecord>("ntf_1").unwrap().unwrap();
    one.push_status(DeliveryStatus::Sent, now, None, None);
    write(&store, &one).await;
    assert_eq!(kept(&store), rebuild::recount(&store).unwrap());
    store.close().await;
}
