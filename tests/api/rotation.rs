//! Key rotation: `admin rotate-key`, then the server re-seals in the
//! background; killed half-way it resumes, and the old key leaves the key
//! file only once nothing uses it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use medrelay_actors::hub::EventHub;
use medrelay_actors::patients::StoredPatient;
use medrelay_actors::store::{Store, StoreConfig};
use serde_json::{Value, json};

use crate::helpers::*;

/// How many stored profiles are sealed with each key id. Opens the store
/// the way a restart does (replaying its redo log), while no server holds it.
async fn sealed_by_key(data: &Path) -> BTreeMap<String, usize> {
    let store = Store::open(
        &data.join("medrelay.redb"),
        StoreConfig::default(),
        EventHub::new(16),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    for (_, patient) in store.scan::<StoredPatient>(None, 1000).unwrap() {
        let json = serde_json::to_value(&patient).unwrap();
        let key = json["profile"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_owned();
        *out.entry(key).or_default() += 1;
    }
    store.close().await;
    out
}

fn key_ids(data: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("phi.key")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["keys"].as_object().unwrap().keys().cloned().collect()
}

fn rotate(data: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_medrelay"))
        .args(["admin", "rotate-key", "--data-dir"])
        .arg(data)
        .env("MEDRELAY__LOG__FORMAT", "json")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_rotation_killed_half_way_finishes_and_then_drops_the_old_key() {
    let (_dir, data) = data_with_admin().await;
    let server = Process::start(&data, &[]);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (status, body) = app
            .post(
                "/api/patients",
                json!({"name": format!("Rotated Person {i}")}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["patientId"].as_str().unwrap().to_owned());
    }
    // The server holds the data folder: rotating now is refused.
    assert!(!rotate(&data).status.success());
    server.kill();

    let rotated = rotate(&data);
    assert!(rotated.status.success(), "{rotated:?}");
    assert_eq!(key_ids(&data), ["1", "2"]);
    assert_eq!(
        sealed_by_key(&data).await,
        BTreeMap::from([("1".to_owned(), 10)])
    );

    // One value per write, 300 ms apart: killed after about a third.
    let slow = [
        ("MEDRELAY__RECORDS__REKEY_BATCH", "1"),
        ("MEDRELAY__RECORDS__REKEY_PAUSE_MS", "300"),
    ];
    let server = Process::start(&data, &slow);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    server.kill();
    let half = sealed_by_key(&data).await;
    assert!(
        half.get("1").is_some_and(|n| *n > 0) && half.get("2").is_some_and(|n| *n > 0),
        "{half:?}"
    );
    assert_eq!(
        key_ids(&data),
        ["1", "2"],
        "the old key stays while values use it"
    );

    let server = Process::start(&data, &[]);
    let app = server.app(&data);
    let done = eventually(Duration::from_secs(20), || async {
        key_ids(&data) == ["2"]
    })
    .await;
    assert!(done, "the old key left the file: {:?}", key_ids(&data));
    let admin = app.admin_token().await;
    for (i, id) in ids.iter().enumerate() {
        let (status, got) = app.get(&format!("/api/patients/{id}"), Some(&admin)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["name"], format!("Rotated Person {i}"));
    }
    server.kill();
    assert_eq!(
        sealed_by_key(&data).await,
        BTreeMap::from([("2".to_owned(), 10)])
    );
}
