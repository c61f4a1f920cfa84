use super::*;
use crate::hub::EventHub;
use crate::store::StoreConfig;

#[test]
fn platforms_keep_their_stored_names() {
    for (platform, name) in [
        (Platform::Android, "android"),
        (Platform::Ios, "ios"),
        (Platform::Web, "web"),
    ] {
        assert_eq!(Platform::parse(name), Some(platform));
        assert_eq!(
            serde_json::to_string(&platform).unwrap(),
            format!("\"{name}\"")
        );
    }
    assert_eq!(Platform::parse("windows"), None);
}

#[test]
fn keys_sort_by_due_time() {
    let a = AppointmentId::parse("apt_b").unwrap();
    let early = reminder_key(Timestamp::from_second(999).unwrap(), &a, "r120");
    let late = reminder_key(Timestamp::from_second(1_000).unwrap(), &a, "r120");
    assert!(early < late);
    assert_eq!(due_of(&late), Some(Timestamp::from_second(1_000).unwrap()));
}

#[test]
fn the_due_bound_takes_exactly_the_keys_due_by_now() {
    let a = AppointmentId::parse("apt_b").unwrap();
    let now = Timestamp::from_millisecond(1_000_000).unwrap();
    let bound = due_keys_below(now);
    let at = |ms| reminder_key(Timestamp::from_millisecond(ms).unwrap(), &a, "r7200");
    assert!(at(999_999) < bound);
    assert!(at(1_000_000) < bound);
    assert!(at(1_000_001) > bound);
}

/// A notification as version 1 stored it: address and text in the clear.
fn version_one(id: &str) -> serde_json::Value {
    serde_json::json!({
        "notificationId": id, "channel": "email", "recipient": "ottoline@example.org",
        "subject": "Reminder", "body": "Hello Ottoline Brackenbury", "status": "queued",
        "history": [], "attempts": 0
    })
}

#[tokio::test]
async fn notifications_written_in_the_clear_are_sealed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(8)).unwrap();
    let vault = Vault::ephemeral();
    let mut raw = 1u16.to_be_bytes().to_vec();
    raw.extend_from_slice(version_one("ntf_old").to_string().as_bytes());
    let mut batch = WriteBatch::new();
    batch.ops.push(crate::store::Op::Put {
        table: Table::Notifications,
        key: "ntf_old".into(),
        value: raw,
    });
    store.write(batch).await.unwrap();
    let old = store.get::<NotificationRecord>("ntf_old").unwrap().unwrap();
    assert!(matches!(old.text, StoredText::Legacy(_)), "{old:?}");
    assert!(old.stale(vault.current()));

    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 1);
    assert_eq!(seal_legacy(&store, &vault).await.unwrap(), 0, "once");
    let sealed = store.get::<NotificationRecord>("ntf_old").unwrap().unwrap();
    assert!(!sealed.stale(vault.current()));
    let text = sealed.text(&vault).unwrap();
    assert_eq!(text.body, "Hello Ottoline Brackenbury");
    assert_eq!(text.recipient, "ottoline@example.org");
    store.close().await;
    let bytes = std::fs::read(&path).unwrap();
    for secret in ["Ottoline", "ottoline@"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is readable in the store file"
        );
    }

    // The sealed text belongs to its notification: moved to another, it
    // does not open.
    let mut moved = sealed.clone();
    moved.notification_id = "ntf_other".into();
    assert!(matches!(moved.text(&vault), Err(PhiError::Tampered(_))));
}
