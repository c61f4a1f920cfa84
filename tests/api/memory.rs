//! Memory an outsider can grow stays bounded (docs/design.md, "Bounds"):
//! channels of nothing are refused before the hub allocates for them, names
//! sign-up would refuse never reach the failed-login table, and the limits on
//! subscriptions per socket and on sockets hold.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream};
use jiff::ToSpan;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::*;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `/ws` at `addr` with a bearer token.
async fn connect(addr: &str, token: &str) -> Result<Socket, WsError> {
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "medrelay.v1".parse().unwrap());
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

/// Sends `frames` without waiting, then reads one reply per frame; returns
/// each reply's error code (`ok` for a success), in order.
async fn pipelined(ws: &mut Socket, frames: Vec<Value>) -> Vec<String> {
    let n = frames.len();
    for frame in frames {
        ws.feed(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let mut codes = Vec::with_capacity(n);
    while codes.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a reply within 20 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                let reply: Value = serde_json::from_str(text.as_str()).unwrap();
                if reply["type"] == "event" {
                    continue;
                }
                codes.push(reply["error"]["code"].as_str().unwrap_or("ok").to_owned());
            }
            Some(Ok(_)) => {}
            other => panic!("the socket ended: {other:?}"),
        }
    }
    codes
}

/// `n` subscribes, with `since` (which needs no snapshot), to boards of
/// doctors that do not exist.
fn unknown_boards(tag: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("s{i}"), "type": "subscribe",
                   "channel": format!("board:ghost-{tag}-{i}"), "since": 0})
        })
        .collect()
}

async fn hub_channels(app: &TestApp, admin: &str) -> u64 {
    let (status, body) = app.get("/api/gateway", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    body["hubChannels"].as_u64().unwrap()
}

#[tokio::test]
async fn channels_of_nothing_are_not_found_and_cost_the_hub_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await;
    let addr = app.addr.to_string();
    let mut admin_ws = connect(&addr, &admin).await.unwrap();
    let mut alice_ws = connect(&addr, &alice.tokens.token).await.unwrap();
    let subscribe = |channel: &str, since: Option<u64>| {
        let mut frame = json!({"type": "subscribe", "channel": channel});
        if let Some(since) = since {
            frame["since"] = json!(since);
        }
        frame
    };
    let codes = pipelined(
        &mut admin_ws,
        vec![
            subscribe("board:ghost", None),
            // With `since` no snapshot is read, which let this through before.
            subscribe("board:ghost", Some(0)),
            subscribe("patient:pat_ghost", Some(0)),
            subscribe("user:usr_ghost", Some(0)),
        ],
    )
    .await;
    assert_eq!(codes, ["not_found"; 4]);
    // A patient may not watch another patient, existing or not, and does not
    // learn which; boards are anyone's to watch, so an unknown one is unknown.
    let codes = pipelined(
        &mut alice_ws,
        vec![
            subscribe("patient:pat_ghost", Some(0)),
            subscribe("board:ghost", Some(0)),
        ],
    )
    .await;
    assert_eq!(codes, ["forbidden", "not_found"]);
    assert_eq!(hub_channels(&app, &admin).await, 0);

    // A channel that exists has a ring for as long as someone listens.
    assert_eq!(
        pipelined(&mut admin_ws, vec![subscribe("users", None)]).await,
        ["ok"]
    );
    assert_eq!(hub_channels(&app, &admin).await, 1);
    let unsubscribe = json!({"type": "unsubscribe", "channel": "users"});
    assert_eq!(pipelined(&mut admin_ws, vec![unsubscribe]).await, ["ok"]);
    let released = eventually(Duration::from_secs(5), || async {
        hub_channels(&app, &admin).await == 0
    })
    .await;
    assert!(released, "the channel outlived its last subscriber");
}

#[tokio::test]
async fn the_33rd_subscription_on_a_socket_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let max = 32;
    for i in 1..max {
        let (status, body) = app
            .post(
                "/api/providers",
                json!({"providerId": format!("cap{i}"), "name": "Dr. Cap", "timeZone": "UTC"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ws = connect(&app.addr.to_string(), &admin).await.unwrap();
    let mut frames = vec![json!({"type": "subscribe", "channel": "users"})];
    frames
        .extend((1..max).map(|i| json!({"type": "subscribe", "channel": format!("board:cap{i}")})));
    assert_eq!(pipelined(&mut ws, frames).await, vec!["ok"; max]);
    // One more, even of a channel that exists, is refused; the socket stays
    // open, and subscribing again to a channel it holds is no extra one.
    let more = vec![
        json!({"type": "subscribe", "channel": "user:usr_any"}),
        json!({"type": "subscribe", "channel": "board:ghost"}),
        json!({"type": "subscribe", "channel": "board:cap1", "since": 0}),
    ];
    assert_eq!(
        pipelined(&mut ws, more).await,
        ["bad_request", "bad_request", "ok"]
    );
    assert_eq!(
        pipelined(&mut ws, vec![json!({"type": "ping"})]).await,
        ["ok"]
    );
}

#[tokio::test]
async fn a_socket_beyond_max_connections_gets_503() {
    let app = spawn_app_with(|s| s.websocket.max_connections = 2).await;
    let admin = app.admin_token().await;
    let addr = app.addr.to_string();
    let first = connect(&addr, &admin).await.unwrap();
    let _second = connect(&addr, &admin).await.unwrap();
    match connect(&addr, &admin).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
        }
        other => panic!("a third socket was not refused: {:?}", other.map(|_| ())),
    }
    drop(first);
    let reopened = eventually(Duration::from_secs(5), || async {
        connect(&addr, &admin).await.is_ok()
    })
    .await;
    assert!(reopened, "a closed socket did not free its place");
}

#[tokio::test]
async fn a_subscriber_that_outgrows_its_ring_misses_no_event() {
    // Rings of one and two events: bookings of many doctors for one patient
    // land in the same commits, so the patient's channel gets bursts larger
    // than its ring, and the subscriber must fill each gap from the store.
    let app = spawn_app_with(|s| {
        s.store.hub_initial_capacity = 1;
        s.store.hub_capacity = 2;
    })
    .await;
    let admin = app.admin_token().await;
    let patient = app.signup_patient("pat").await;
    let doctors = 8;
    let per_doctor = 4;
    for d in 0..doctors {
        let (status, body) = app
            .post(
                "/api/providers",
                json!({"providerId": format!("burst{d}"), "name": "Dr. Burst", "timeZone": "UTC",
                       "availability": all_day_availability()}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let addr = app.addr.to_string();
    let mut watcher = connect(&addr, &admin).await.unwrap();
    let channel = format!("patient:{}", patient.patient_id);
    let subscribe = json!({"id": "w", "type": "subscribe", "channel": channel});
    watcher
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let head = loop {
        let Some(Ok(Message::Text(text))) = watcher.next().await else {
            continue;
        };
        let reply: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        break reply["data"]["seq"].as_u64().unwrap();
    };
    let date = jiff::Zoned::now()
        .date()
        .checked_add(3.days())
        .unwrap()
        .to_string();
    let bookers = (0..doctors).map(|d| {
        let (addr, admin, patient, date) = (&addr, &admin, &patient.patient_id, &date);
        async move {
            let mut ws = connect(addr, admin).await.unwrap();
            let frames = (0..per_doctor)
                .map(|k| {
                    // A different half hour for every booking: one patient
                    // cannot be in two places at once.
                    let minutes = (d * per_doctor + k) * 30;
                    json!({"id": format!("b{k}"), "type": "book", "patientId": patient,
                           "providerId": format!("burst{d}"), "appointmentDate": date,
                           "timeSlot": format!("{:02}:{:02}", minutes / 60, minutes % 60)})
                })
                .collect();
            pipelined(&mut ws, frames).await
        }
    });
    let results: Vec<Vec<String>> = futures_util::future::join_all(bookers).await;
    assert!(results.iter().flatten().all(|c| c == "ok"), "{results:?}");
    let total = (doctors * per_doctor) as u64;
    let mut seqs = Vec::new();
    while seqs.len() < total as usize {
        let message = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .expect("every event within 10 s");
        if let Some(Ok(Message::Text(text))) = message {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(frame["type"], "event", "{frame}");
            seqs.push(frame["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, (head + 1..=head + total).collect::<Vec<_>>());
    // The bursts did outgrow the first ring (the counter is process-wide,
    // so this shows only that some ring grew, which here is this one).
    let growths = metric(&app.metrics().await, "hub_ring_growths_total");
    assert!(growths.is_some_and(|n| n >= 1.0), "{growths:?}");
}

/// The server's memory across a flood: 2,000 subscribes to boards of
/// doctors that do not exist over 20 sockets, and 5,000 logins with random
/// 60-character names. Loose on purpose (allocator caches, the sockets kept
/// open): what it guards against cost far more, a 1,024-event ring and a
/// forwarding task for every unknown board watched with `since` (about
/// 25 MiB for the 640 that got through here), and argon2's 19 MiB for every
/// made-up name.
const FLOOD_GROWTH_LIMIT: u64 = 8 << 20;

#[tokio::test]
async fn a_flood_of_unknown_boards_and_made_up_logins_leaves_memory_flat() {
    const METRICS_TOKEN: &str = "memory-test-scrape";
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(
        dir.path(),
        &[
            ("MEDRELAY__WEBSOCKET__COMMANDS_PER_SEC", "100000"),
            ("MEDRELAY__WEBSOCKET__COMMANDS_BURST", "100000"),
            ("MEDRELAY__SERVER__METRICS_TOKEN", METRICS_TOKEN),
        ],
    );
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let signup = json!({"username": "memo", "email": "memo@example.org", "password": PASSWORD});
    let response = http
        .post(format!("{base}/api/auth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let login = json!({"username": "memo", "password": PASSWORD});
    let (status, body) = read(
        http.post(format!("{base}/api/auth/login"))
            .json(&login)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    let made_up_logins = |n: usize| {
        let (http, base) = (&http, &base);
        stream::iter(0..n)
            .map(move |_| async move {
                let name: String = medrelay_actors::ids::random_bytes(30)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let response = http
                    .post(format!("{base}/api/auth/login"))
                    .json(&json!({"username": name, "password": "not-the-password"}))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = read(response).await;
                assert_eq!(
                    (status, body["error"]["field"].as_str()),
                    (422, Some("username")),
                    "{body}"
                );
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
    };
    let flood_boards = |sockets: usize, per_socket: usize, tag: &'static str| {
        let (addr, token) = (&server.addr, &token);
        async move {
            let mut held = Vec::new();
            for s in 0..sockets {
                let mut ws = connect(addr, token).await.unwrap();
                let codes =
                    pipelined(&mut ws, unknown_boards(&format!("{tag}{s}"), per_socket)).await;
                assert!(codes.iter().all(|c| c == "not_found"), "{codes:?}");
                held.push(ws);
            }
            held
        }
    };

    // The same work on a small scale first, so that what is built once
    // (connection pools, thread arenas, lazily made state) exists before the
    // first reading.
    drop(flood_boards(20, 5, "warm").await);
    made_up_logins(200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_bytes();

    let held = flood_boards(20, 100, "ghost").await;
    made_up_logins(5_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_bytes();

    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "hub_channels"), Some(0.0), "{metrics}");
    assert_eq!(metric(&metrics, "login_lockout_entries"), Some(0.0));
    let growth = after.saturating_sub(before);
    assert!(
        growth <= FLOOD_GROWTH_LIMIT,
        "RSS grew by {:.1} MiB ({before} -> {after} bytes)",
        growth as f64 / 1_048_576.0
    );
    eprintln!(
        "memory: RSS {:.1} -> {:.1} MiB over the flood",
        before as f64 / 1_048_576.0,
        after as f64 / 1_048_576.0
    );
    drop(held);
    server.kill();
}
