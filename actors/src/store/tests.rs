use medrelay_protocol::{Channel, Event, UserId};
use serde::{Deserialize, Serialize};

use super::*;
use crate::hub::EventHub;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

impl Record for Note {
    const TABLE: Table = Table::Scratch;
    const VERSION: u16 = 2;

    fn upgrade(version: u16, json: serde_json::Value) -> Result<serde_json::Value, String> {
        match version {
            1 => Ok(serde_json::json!({ "text": json["body"] })),
            2 => Ok(json),
            v => Err(format!("unknown version {v}")),
        }
    }
}

fn open(config: StoreConfig) -> (tempfile::TempDir, Store, EventHub) {
    let dir = tempfile::tempdir().unwrap();
    let hub = EventHub::new(64);
    let store = Store::open(&dir.path().join("t.redb"), config, hub.clone()).unwrap();
    (dir, store, hub)
}

fn signed_in(n: u64) -> Event {
    Event::SignedIn {
        user_id: UserId::parse(&format!("u{n}")).unwrap(),
        at: jiff::Timestamp::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn writes_are_readable_after_ack() {
    let (_dir, store, _) = open(StoreConfig::default());
    let mut batch = WriteBatch::new();
    batch.put("a", &Note { text: "hi".into() });
    store.write(batch).await.unwrap();
    assert_eq!(
        store.get::<Note>("a").unwrap(),
        Some(Note { text: "hi".into() })
    );
}

#[tokio::test]
async fn old_schema_versions_are_upgraded_on_read() {
    let (_dir, store, _) = open(StoreConfig::default());
    let mut raw = 1u16.to_be_bytes().to_vec();
    raw.extend_from_slice(br#"{"body":"old"}"#);
    let mut batch = WriteBatch::new();
    batch.ops.push(Op::Put {
        table: Table::Scratch,
        key: "k".into(),
        value: raw,
    });
    store.write(batch).await.unwrap();
    assert_eq!(store.get::<Note>("k").unwrap().unwrap().text, "old");
}

#[tokio::test]
async fn a_failed_precondition_rejects_only_its_own_batch() {
    let (_dir, store, _) = open(StoreConfig::default());
    let mut first = WriteBatch::new();
    first
        .require_absent(Table::Scratch, "x")
        .put("x", &Note { text: "1".into() });
    store.write(first).await.unwrap();

    // Queue a conflicting batch and an independent one together.
    let mut conflicting = WriteBatch::new();
    conflicting.require_absent(Table::Scratch, "x").put(
        "y",
        &Note {
            text: "must not land".into(),
        },
    );
    let mut independent = WriteBatch::new();
    independent.put("z", &Note { text: "3".into() });
    let (a, b) = tokio::join!(store.write(conflicting), store.write(independent));
    assert!(matches!(a, Err(WriteError::Exists { .. })), "{a:?}");
    assert!(b.is_ok());
    assert_eq!(store.get::<Note>("y").unwrap(), None);
    assert!(store.get::<Note>("z").unwrap().is_some());
}

#[tokio::test]
async fn racing_unique_inserts_let_exactly_one_win() {
    let (_dir, store, _) = open(StoreConfig::default());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch = WriteBatch::new();
                batch.require_absent(Table::Scratch, "name").put(
                    "name",
                    &Note {
                        text: i.to_string(),
                    },
                );
                store.write(batch).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn channel_seqs_are_gap_free_under_concurrency_and_history_is_bounded() {
    let (_dir, store, hub) = open(StoreConfig {
        channel_history: 10,
        outbox_retain: 5,
        ..StoreConfig::default()
    });
    let mut rx = hub.subscribe(&Channel::Users);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch = WriteBatch::new();
                batch.event(Channel::Users, signed_in(i));
                store.write(batch).await.unwrap().seqs[0]
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    // Published in seq order.
    for expected in 1..=50 {
        assert_eq!(rx.recv().await.unwrap().seq, expected);
    }
    assert_eq!(store.channel_head(&Channel::Users).unwrap(), 50);
    let (kept, oldest) = store.channel_events(&Channel::Users, 0, 100).unwrap();
    assert_eq!(oldest, 41);
    assert_eq!(
        kept.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (41..=50).collect::<Vec<_>>()
    );
    let outbox = store.outbox_after(0, 100).unwrap();
    assert_eq!(outbox.len(), 5);
    assert_eq!(outbox[4].event_id, "users/50");
}

#[tokio::test]
async fn data_and_seqs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(
            "a",
            &Note {
                text: "kept".into(),
            },
        );
        batch.event(Channel::Users, signed_in(1));
        store.write(batch).await.unwrap();
        store.close().await;
        assert_eq!(
            store.write(WriteBatch::new()).await,
            Err(WriteError::Closed)
        );
    }
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    assert!(store.get::<Note>("a").unwrap().is_some());
    let mut batch = WriteBatch::new();
    batch.event(Channel::Users, signed_in(2));
    assert_eq!(store.write(batch).await.unwrap().seqs, vec![2]);
}

#[tokio::test]
async fn close_commits_what_was_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    let writes: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut batch = WriteBatch::new();
                batch.put(format!("k{i}"), &Note { text: "v".into() });
                store.write(batch).await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await;
    assert!(matches!(store.get::<Note>("k0"), Err(StoreError::Closed)));
    let mut acked = 0;
    for w in writes {
        if w.await.unwrap().is_ok() {
            acked += 1;
        }
    }
    // The file is released at once (a clone of the handle is still alive),
    // and every acknowledged write is in it.
    let reopened = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    assert_eq!(reopened.scan::<Note>(None, 1000).unwrap().len(), acked);
    drop(store);
}

#[tokio::test]
async fn a_consumer_keeps_the_outbox_until_it_acknowledges() {
    let (_dir, store, _hub) = open(StoreConfig {
        outbox_retain: 5,
        outbox_consumer: true,
        ..StoreConfig::default()
    });
    for i in 0..20 {
        let mut batch = WriteBatch::new();
        batch.event(Channel::Users, signed_in(i));
        // A user's own channel is private: numbered, but not in the outbox.
        batch.event(Channel::User(UserId::parse("u1").unwrap()), signed_in(i));
        store.write(batch).await.unwrap();
    }
    assert_eq!(store.outbox_positions().unwrap(), (20, 0));
    assert_eq!(store.outbox_after(0, 100).unwrap().len(), 20);

    let mut batch = WriteBatch::new();
    batch.ack_outbox(12);
    store.write(batch).await.unwrap();
    assert_eq!(store.outbox_positions().unwrap(), (20, 12));
    let left = store.outbox_after(0, 100).unwrap();
    assert_eq!(left.first().map(|e| e.position), Some(13));
    assert_eq!(left.len(), 8);
    // An older acknowledgement never moves the mark back.
    let mut batch = WriteBatch::new();
    batch.ack_outbox(3);
    store.write(batch).await.unwrap();
    assert_eq!(store.outbox_positions().unwrap(), (20, 12));
}

#[tokio::test]
async fn without_a_consumer_the_outbox_is_trimmed_to_its_window_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let consumer = StoreConfig {
        outbox_retain: 5,
        outbox_consumer: true,
        ..StoreConfig::default()
    };
    let store = Store::open(&path, consumer, EventHub::new(8)).unwrap();
    for i in 0..20 {
        let mut batch = WriteBatch::new();
        batch.event(Channel::Users, signed_in(i));
        store.write(batch).await.unwrap();
    }
    store.close().await;
    let alone = StoreConfig {
        outbox_retain: 5,
        ..StoreConfig::default()
    };
    let store = Store::open(&path, alone, EventHub::new(8)).unwrap();
    let kept = store.outbox_after(0, 100).unwrap();
    assert_eq!(
        kept.iter().map(|e| e.position).collect::<Vec<_>>(),
        (16..=20).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn replicated_events_keep_their_seq_skip_copies_and_stay_out_of_the_outbox() {
    let (_dir, store, hub) = open(StoreConfig::default());
    let board = Channel::Users;
    let mut rx = hub.subscribe(&board);
    let mut batch = WriteBatch::new();
    batch
        .replicated_event(board.clone(), 7, signed_in(7))
        .replicated_event(board.clone(), 8, signed_in(8))
        .replicated_event(board.clone(), 8, signed_in(8))
        .set_counter("cursor", 42);
    store.write(batch).await.unwrap();
    assert_eq!(store.channel_head(&board).unwrap(), 8);
    assert_eq!(store.counter("cursor").unwrap(), 42);
    let (events, oldest) = store.channel_events(&board, 0, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8]);
    assert_eq!(oldest, 7);
    assert_eq!(rx.recv().await.unwrap().seq, 7);
    assert_eq!(rx.recv().await.unwrap().seq, 8);
    assert!(rx.try_recv().is_err(), "the copy of 8 was published");
    assert_eq!(store.outbox_positions().unwrap(), (0, 0));
}

#[tokio::test]
async fn racing_compare_and_swaps_let_exactly_one_win() {
    let (_dir, store, _) = open(StoreConfig::default());
    let fresh = Note {
        text: "unused".into(),
    };
    let mut batch = WriteBatch::new();
    batch.put("flag", &fresh);
    store.write(batch).await.unwrap();
    // Every writer read "unused" and tries to flip it; the store lets one through.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let fresh = fresh.clone();
            tokio::spawn(async move {
                let mut batch = WriteBatch::new();
                batch.require_equal("flag", &fresh).put(
                    "flag",
                    &Note {
                        text: format!("used by {i}"),
                    },
                );
                store.write(batch).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(WriteError::Changed { table, key }) => {
                assert_eq!((table, key.as_str()), ("scratch", "flag"));
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert!(
        store
            .get::<Note>("flag")
            .unwrap()
            .unwrap()
            .text
            .starts_with("used by")
    );
    // A missing key is not equal to anything.
    let mut batch = WriteBatch::new();
    batch.require_equal("nothing", &fresh);
    assert!(matches!(
        store.write(batch).await,
        Err(WriteError::Changed { .. })
    ));
}

/// A batch that puts `key` and adds an event to the users channel.
fn noted(key: &str, n: u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch
        .require_absent(Table::Scratch, key)
        .put(key, &Note { text: key.into() })
        .event(Channel::Users, signed_in(n));
    batch
}

#[tokio::test]
async fn groups_left_in_the_redo_log_are_replayed_once_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    store.write(noted("a", 1)).await.unwrap();
    store.close().await;
    // What a kill between two checkpoints leaves: redb at its last durable
    // commit (holding "a", group numbers up to N) and the log of the groups
    // after it, the last one torn by the crash.
    let applied = {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let counters = txn.open_table(tables::COUNTERS).unwrap();
        counters.get(tables::WAL_APPLIED).unwrap().unwrap().value()
    };
    let log_path = wal::path_for(&path);
    let torn_at = {
        let (mut log, groups) = wal::Wal::open(&log_path).unwrap();
        assert!(
            groups.iter().all(|(group, _)| *group < applied),
            "a clean close leaves nothing to replay"
        );
        // A group redb already holds (a crash before the log was emptied).
        log.append(applied, [noted("a", 1)].iter(), None).unwrap();
        // A lone write is logged with every batch, one refused at the time
        // too (the second "b"): it is refused again on replay.
        let lone = [noted("b", 2), noted("b", 9)];
        log.append(applied + 1, lone.iter(), None).unwrap();
        log.append(applied + 2, [noted("c", 3)].iter(), None)
            .unwrap();
        log.append(applied + 3, [noted("d", 4)].iter(), None)
            .unwrap();
        log.sync().unwrap();
        log.len() - 3
    };
    // The crash tore the last record.
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap()
        .write_all_at(&[0xff; 3], torn_at)
        .unwrap();

    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    for key in ["a", "b", "c"] {
        assert!(store.get::<Note>(key).unwrap().is_some(), "{key}");
    }
    assert_eq!(store.get::<Note>("d").unwrap(), None, "the torn group");
    let (events, _) = store.channel_events(&Channel::Users, 0, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(store.redo_log_bytes(), 0, "replayed, then checkpointed");
    // Writing on continues the numbering.
    let seqs = store.write(noted("e", 5)).await.unwrap().seqs;
    assert_eq!(seqs, [4]);
    store.close().await;
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    assert!(store.get::<Note>("e").unwrap().is_some());
}

#[tokio::test]
async fn between_checkpoints_writes_go_to_the_log_and_a_checkpoint_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let config = StoreConfig {
        checkpoint_bytes: 2_000,
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..StoreConfig::default()
    };
    let store = Store::open(&path, config, EventHub::new(8)).unwrap();
    store.write(noted("a", 1)).await.unwrap();
    assert!(store.redo_log_bytes() > 0, "logged");
    let mut seen_empty = false;
    for i in 0..30 {
        store.write(noted(&format!("k{i}"), i)).await.unwrap();
        assert!(
            store.redo_log_bytes() < 4_000,
            "checkpoints keep the log small"
        );
        seen_empty |= store.redo_log_bytes() == 0;
    }
    assert!(seen_empty, "a checkpoint emptied the log");
    // The file is written over, not regrown, round after round.
    let size = std::fs::metadata(wal::path_for(&path)).unwrap().len();
    for i in 0..30 {
        store.write(noted(&format!("m{i}"), i)).await.unwrap();
    }
    assert_eq!(std::fs::metadata(wal::path_for(&path)).unwrap().len(), size);
    store.close().await;
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    assert!(store.get::<Note>("m29").unwrap().is_some());
    assert_eq!(store.redo_log_bytes(), 0);
}

#[tokio::test]
async fn kept_notification_text_is_sealed_in_the_log_and_the_history() {
    let vault = Arc::new(crate::phi::Vault::ephemeral());
    let config = StoreConfig {
        vault: Some(vault.clone()),
        checkpoint_bytes: u64::MAX,
        ..StoreConfig::default()
    };
    let (dir, store, hub) = open(config.clone());
    let channel = Channel::Patient(medrelay_protocol::PatientId::parse("pat_1").unwrap());
    let mut live = hub.subscribe(&channel);
    let event = Event::Notification {
        notification_id: "ntf_1".into(),
        category: medrelay_protocol::notification::NotificationCategory::AppointmentReminder,
        appointment_id: None,
        title: "Your visit, Zebulon".into(),
        body: "Hello Zebulon Quarrington".into(),
        at: jiff::Timestamp::UNIX_EPOCH,
    };
    let mut batch = WriteBatch::new();
    batch.event(channel.clone(), event.clone());
    store.write(batch).await.unwrap();
    assert_eq!(
        live.recv().await.unwrap().event,
        event,
        "live: as committed"
    );
    let (kept, _) = store.channel_events(&channel, 0, 10).unwrap();
    assert_eq!(kept[0].event, event, "read back: opened");

    // What a kill leaves (the group only in the redo log) is replayed, and
    // opens; neither file holds the text.
    let crashed = tempfile::tempdir().unwrap();
    for name in ["t.redb", "t.redb.wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        for secret in ["Zebulon", "Quarrington"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {name}"
            );
        }
        std::fs::write(crashed.path().join(name), bytes).unwrap();
    }
    let replayed = Store::open(&crashed.path().join("t.redb"), config, EventHub::new(8)).unwrap();
    let (kept, _) = replayed.channel_events(&channel, 0, 10).unwrap();
    assert_eq!(kept[0].event, event);
    replayed.close().await;

    // Without the key, the text is not shown, and the replay goes on.
    let other = StoreConfig {
        vault: Some(Arc::new(crate::phi::Vault::ephemeral())),
        ..StoreConfig::default()
    };
    store.close().await;
    let reopened = Store::open(&dir.path().join("t.redb"), other, EventHub::new(8)).unwrap();
    let (kept, _) = reopened.channel_events(&channel, 0, 10).unwrap();
    let Event::Notification { body, .. } = &kept[0].event else {
        panic!("{:?}", kept[0].event)
    };
    assert!(!body.contains("Zebulon"), "{body}");
    reopened.close().await;

    // Events kept in the clear by an earlier release are sealed once, at
    // the first start with a vault, and the redo log is scrubbed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let older = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    let mut batch = WriteBatch::new();
    batch.event(channel.clone(), event.clone());
    older.write(batch).await.unwrap();
    older.close().await;
    let sealing = StoreConfig {
        vault: Some(vault.clone()),
        ..StoreConfig::default()
    };
    let store = Store::open(&path, sealing.clone(), EventHub::new(8)).unwrap();
    assert_eq!(
        store.channel_events(&channel, 0, 10).unwrap().0[0].event,
        event
    );
    store.close().await;
    let log = std::fs::read(dir.path().join("t.redb.wal")).unwrap();
    assert!(!log.windows(7).any(|w| w == b"Zebulon"), "scrubbed");
    let keyless = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    assert_ne!(
        keyless.channel_events(&channel, 0, 10).unwrap().0[0].event,
        event,
        "sealed"
    );
    keyless.close().await;
    let store = Store::open(&path, sealing, EventHub::new(8)).unwrap();
    assert_eq!(
        store.channel_events(&channel, 0, 10).unwrap().0[0].event,
        event,
        "once"
    );
}
