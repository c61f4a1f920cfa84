//! WebSocket protocol v1: auth, commands, limits, channels, resume.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

#[tokio::test]
async fn bearer_on_the_upgrade_authenticates_the_socket() {
    let app = spawn_app().await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let reply = ws.call(json!({"type": "whoami"})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["userId"], p.user_id);
    assert_eq!(reply["data"]["role"], "patient");
    let pong = ws.call(json!({"type": "ping"})).await;
    assert_eq!(pong["data"]["pong"], true);
}

#[tokio::test]
async fn an_auth_frame_authenticates_and_commands_before_it_are_refused() {
    let app = spawn_app().await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(None).await;
    let refused = ws.call(json!({"type": "whoami"})).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "unauthorized");
    let bad = ws.call(json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(bad["error"]["code"], "unauthorized");
    // The socket is still open, and a good token works.
    let ok = ws
        .call(json!({"type": "auth", "token": p.tokens.token}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(
        ws.call(json!({"type": "whoami"})).await["data"]["userId"],
        p.user_id
    );
    // Refreshing with another user's token is refused.
    let other = app.signup_patient("bob").await;
    let swap = ws
        .call(json!({"type": "auth", "token": other.tokens.token}))
        .await;
    assert_eq!(swap["error"]["code"], "forbidden");
}

#[tokio::test]
async fn no_auth_in_time_closes_with_4001() {
    let app = spawn_app_with(|s| s.websocket.auth_timeout_secs = 1).await;
    let mut ws = app.ws(None).await;
    assert_eq!(ws.closed().await, close_code(4001));
}

#[tokio::test]
async fn an_expired_token_closes_the_socket_unless_refreshed() {
    let app = spawn_app_with(|s| s.auth.access_ttl_secs = 4).await;
    app.signup_patient("alice").await;
    // Two sessions at least two seconds apart: the second token outlives the
    // first by that much, which is the margin this test needs.
    let first = app.login("alice", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = app.login("alice", PASSWORD).await;
    let mut refreshed = app.ws(Some(&first.token)).await;
    let mut expiring = app.ws(Some(&first.token)).await;
    assert_eq!(
        refreshed
            .call(json!({"type": "auth", "token": second.token}))
            .await["ok"],
        true
    );
    assert_eq!(expiring.closed().await, close_code(4001));
    // Past the first token's expiry, the refreshed socket still answers.
    assert_eq!(refreshed.call(json!({"type": "ping"})).await["ok"], true);
}

#[tokio::test]
async fn a_logout_closes_that_sessions_sockets() {
    let app = spawn_app_with(|s| s.websocket.heartbeat_secs = 1).await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    app.post("/api/auth/logout", json!({"token": p.tokens.token}), None)
        .await;
    assert_eq!(ws.closed().await, close_code(4001));
}

#[tokio::test]
async fn garbage_frames_get_bad_request_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    for garbage in [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"id":"x1","type":"fly"}"#.to_owned(),
        r#"{"id":"x2","type":"subscribe","channel":"nope:1"}"#.to_owned(),
        r#"{"id":7,"type":"ping"}"#.to_owned(),
        format!(r#"{{"id":"{}","type":"ping"}}"#, "i".repeat(65)),
        "[1,2,3]".to_owned(),
    ] {
        ws.send_text(garbage.clone()).await;
        let reply = ws.next_reply().await;
        assert_eq!(reply["ok"], false, "{garbage}: {reply}");
        assert_eq!(reply["error"]["code"], "bad_request", "{garbage}: {reply}");
    }
    // The id is echoed whenever it could be read.
    ws.send_text(r#"{"id":"x1","type":"fly"}"#).await;
    assert_eq!(ws.next_reply().await["re"], "x1");
    ws.stream
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(ws.next_reply().await["error"]["code"], "bad_request");
    assert_eq!(ws.call(json!({"type": "ping"})).await["ok"], true);
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let app = spawn_app_with(|s| s.websocket.max_frame_bytes = 1024).await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000));
    ws.send_text(big).await;
    assert_eq!(ws.closed().await, close_code(1009));
    // Far beyond the limit, the transport cuts the frame off before buffering it.
    let mut ws = app.ws(Some(&token)).await;
    let _ = ws
        .stream
        .send(Message::Text("y".repeat(64 * 1024).into()))
        .await;
    assert!(matches!(
        ws.closed().await,
        Ended::Closed(1009) | Ended::Dropped
    ));
}

#[tokio::test]
async fn commands_over_the_socket_rate_get_rate_limited() {
    let app = spawn_app_with(|s| {
        s.websocket.commands_per_sec = 1;
        s.websocket.commands_burst = 3;
    })
    .await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let reply = ws.call(json!({"type": "ping"})).await;
        codes.push(reply["error"]["code"].as_str().unwrap_or("ok").to_owned());
    }
    assert_eq!(codes[..3], ["ok", "ok", "ok"]);
    assert!(codes.contains(&"rate_limited".to_owned()), "{codes:?}");
}

#[tokio::test]
async fn the_subprotocol_is_required() {
    let app = spawn_app().await;
    let request = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_memory_stays_bounded() {
    let app = spawn_app_with(|s| {
        s.websocket.outbound_queue = 8;
        s.websocket.commands_per_sec = 1_000_000;
        s.websocket.commands_burst = 1_000_000;
    })
    .await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    // Ask for replies as fast as possible without ever reading one. Once TCP
    // buffers fill, the server must drop the client rather than queue more.
    let ping = r#"{"id":"p","type":"ping"}"#;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if ws.stream.send(Message::Text(ping.into())).await.is_err() {
            break;
        }
        if app
            .metrics()
            .await
            .contains("ws_slow_consumer_closes_total")
        {
            break;
        }
        for _ in 0..500 {
            if ws.stream.feed(Message::Text(ping.into())).await.is_err() {
                break;
            }
        }
    }
    let admin = app.admin_token().await;
    let closed = eventually(Duration::from_secs(10), || async {
        app.get("/api/gateway", Some(&admin)).await.1["openSockets"] == 0
    })
    .await;
    assert!(closed, "the slow socket was never closed");
    assert!(
        app.metrics()
            .await
            .contains("ws_slow_consumer_closes_total")
    );
}

#[tokio::test]
async fn channel_permissions_follow_roles_and_owners() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let mut ws = app.ws(Some(&alice.tokens.token)).await;
    let denied = ws
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await;
    assert_eq!(denied["error"]["code"], "forbidden");
    let other = ws
        .call(json!({"type": "subscribe", "channel": format!("user:{}", bob.user_id)}))
        .await;
    assert_eq!(other["error"]["code"], "forbidden");
    let own = ws
        .call(json!({"type": "subscribe", "channel": format!("user:{}", alice.user_id)}))
        .await;
    assert_eq!(own["ok"], true, "{own}");
    assert_eq!(own["data"]["snapshot"]["user"]["userId"], alice.user_id);
    // Alice's own account events arrive live, in seq order.
    let head = own["data"]["seq"].as_u64().unwrap();
    app.login("alice", PASSWORD).await;
    let event = ws.next_event().await;
    assert_eq!(event["channel"], format!("user:{}", alice.user_id));
    assert_eq!(event["seq"], head + 1);
    assert_eq!(event["event"]["kind"], "signed_in");
    // Nothing of Bob's reaches her.
    app.login("bob", PASSWORD).await;
    ws.no_event_within(Duration::from_millis(300)).await;
    let admin = app.admin_token().await;
    let mut admin_ws = app.ws(Some(&admin)).await;
    let any = admin_ws
        .call(json!({"type": "subscribe", "channel": format!("user:{}", bob.user_id)}))
        .await;
    assert_eq!(any["ok"], true);
    let unsub = ws
        .call(json!({"type": "unsubscribe", "channel": format!("user:{}", alice.user_id)}))
        .await;
    assert_eq!(unsub["ok"], true);
    app.login("alice", PASSWORD).await;
    ws.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn resume_with_since_replays_exactly_what_was_missed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut ws = app.ws(Some(&admin)).await;
    let sub = ws
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    let head = sub["data"]["seq"].as_u64().unwrap();
    assert!(
        !sub["data"]["snapshot"]["users"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.signup_patient("user1").await;
    assert_eq!(ws.next_event().await["seq"], head + 1);
    drop(ws);

    // Missed while disconnected:
    for name in ["user2", "user3", "user4"] {
        app.signup_patient(name).await;
    }
    let mut ws = app.ws(Some(&admin)).await;
    let resumed = ws
        .call(json!({"type": "subscribe", "channel": "users", "since": head + 1}))
        .await;
    assert_eq!(resumed["data"]["resync"], false, "{resumed}");
    assert_eq!(resumed["data"]["replayed"], 3);
    assert!(resumed["data"].get("snapshot").is_none());
    for (offset, name) in [(2, "user2"), (3, "user3"), (4, "user4")] {
        let event = ws.next_event().await;
        assert_eq!(event["seq"], head + offset);
        assert_eq!(event["event"]["kind"], "user_registered");
        assert_eq!(event["event"]["username"], name);
    }
    // Then live events continue with no gap and no duplicate.
    app.signup_patient("user5").await;
    assert_eq!(ws.next_event().await["seq"], head + 5);
    ws.no_event_within(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn resume_from_too_old_a_seq_resynchronises_with_a_snapshot() {
    let app = spawn_app_with(|s| s.store.channel_history = 3).await;
    let admin = app.admin_token().await;
    for i in 0..6 {
        app.signup_patient(&format!("old{i}")).await;
    }
    let mut ws = app.ws(Some(&admin)).await;
    let reply = ws
        .call(json!({"type": "subscribe", "channel": "users", "since": 1}))
        .await;
    assert_eq!(reply["data"]["resync"], true, "{reply}");
    assert_eq!(reply["data"]["replayed"], 0);
    assert_eq!(
        reply["data"]["snapshot"]["users"].as_array().unwrap().len(),
        7
    );
    // A `since` ahead of the server (e.g. after a data reset) also resyncs.
    let ahead = ws
        .call(json!({"type": "subscribe", "channel": "users", "since": 10_000}))
        .await;
    assert_eq!(ahead["data"]["resync"], true);
}

#[tokio::test]
async fn channel_seqs_and_replay_survive_a_restart() {
    let app = spawn_app().await;
    for name in ["rest1", "rest2"] {
        app.signup_patient(name).await;
    }
    let admin = app.admin_token().await;
    let mut ws = app.ws(Some(&admin)).await;
    let head = ws
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await["data"]["seq"]
        .as_u64()
        .unwrap();
    drop(ws);
    let app = app.restart(|_| {}).await;
    app.signup_patient("rest3").await;
    let admin = app.admin_token().await;
    let mut ws = app.ws(Some(&admin)).await;
    let reply = ws
        .call(json!({"type": "subscribe", "channel": "users", "since": head}))
        .await;
    assert_eq!(reply["data"]["replayed"], 1, "{reply}");
    let event = ws.next_event().await;
    assert_eq!(event["seq"], head + 1);
    assert_eq!(event["event"]["username"], "rest3");
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed_with_4009() {
    let app = spawn_app_with(|s| s.websocket.heartbeat_secs = 1).await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    // Not reading means never answering the server's pings (a client answers
    // them as it reads). After two silent intervals the server gives up.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(ws.closed().await, close_code(4009));
}
