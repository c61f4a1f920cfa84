//! A board replica serving the owner's boards with the same seqs.

use medrelay::config::NodeRole;
use serde_json::json;

use super::{all_day_provider, booking, slots, with_nats};
use crate::helpers::*;
use crate::nats_harness::NatsServer;

#[tokio::test]
async fn a_board_replica_serves_the_owners_boards_with_the_same_seqs() {
    let nats = NatsServer::start();
    let owner = spawn_app_with(with_nats(nats.url())).await;
    let admin = owner.admin_token().await;
    all_day_provider(&owner, &admin, "prov001").await;
    let p = owner.signup_patient("erin").await;
    let slots = slots(6);
    let book = |i: usize| booking(&p.patient_id, "prov001", &slots[i]);
    let (status, _) = owner.post("/api/appointments", book(0), Some(&admin)).await;
    assert_eq!(status, 201);

    // The replica shares the owner's signing key, nothing else.
    let replica_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        owner.data_dir.join("jwt.secret"),
        replica_dir.path().join("jwt.secret"),
    )
    .unwrap();
    let mut settings = test_settings(replica_dir.path());
    with_nats(nats.url())(&mut settings);
    settings.nats.role = NodeRole::BoardReplica;
    let replica = start(settings).await;

    // The REST API is the owner's.
    let (status, body) = replica.get("/api/doctors", Some(&admin)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    // The board page and its files are served (a replica exists for
    // screens); the patient and admin pages are the owner's.
    for (path, expected) in [
        ("/board/prov001", 200),
        ("/pages/board.js", 200),
        ("/pages/common.js", 200),
        ("/app", 503),
        ("/admin", 503),
    ] {
        let page = replica.http.get(replica.url(path)).send().await.unwrap();
        assert_eq!(page.status(), expected, "{path}");
    }

    let from = &slots[0].0;
    let mut doctor_view = replica.ws(Some(&admin)).await;
    let sub = doctor_view
        .call(json!({"type": "subscribe", "channel": "board:prov001", "from": from, "to": from}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    assert_eq!(sub["data"]["seq"], 1);
    let mut patient_view = replica.ws(Some(&p.tokens.token)).await;
    let sub = patient_view
        .call(json!({"type": "subscribe", "channel": "board:prov001"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    // Channels other than boards belong to the owner.
    let users = doctor_view
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await;
    assert_eq!(users["error"]["code"], "unavailable");

    for i in 1..4 {
        let (status, _) = owner.post("/api/appointments", book(i), Some(&admin)).await;
        assert_eq!(status, 201);
    }
    for seq in 2..=4 {
        let event = doctor_view.next_event().await;
        assert_eq!(event["seq"], seq);
        assert_eq!(event["event"]["patientId"], p.patient_id.as_str());
        let event = patient_view.next_event().await;
        assert_eq!(event["seq"], seq);
        assert!(event["event"].get("patientId").is_none(), "{event}");
    }

    // A board that reconnects to the replica with `since` gets what it missed.
    drop(patient_view);
    for i in 4..6 {
        let (status, _) = owner.post("/api/appointments", book(i), Some(&admin)).await;
        assert_eq!(status, 201);
    }
    assert_eq!(doctor_view.next_event().await["seq"], 5);
    assert_eq!(doctor_view.next_event().await["seq"], 6);
    let mut again = replica.ws(Some(&p.tokens.token)).await;
    let resumed = again
        .call(json!({"type": "subscribe", "channel": "board:prov001", "since": 4}))
        .await;
    assert_eq!(resumed["data"]["replayed"], 2, "{resumed}");
    assert_eq!(resumed["data"]["resync"], false);
    assert_eq!(again.next_event().await["seq"], 5);
    assert_eq!(again.next_event().await["seq"], 6);

    // Writes go to the owner.
    let refused = again
        .call(json!({"type": "cancel", "appointmentId": "apt_x"}))
        .await;
    assert_eq!(refused["error"]["code"], "unavailable");

    // A token the owner does not accept is refused there too.
    let mut stranger = replica.ws(None).await;
    let auth = stranger
        .call(json!({"type": "auth", "token": "forged.token.value"}))
        .await;
    assert_eq!(auth["error"]["code"], "unauthorized");
}
