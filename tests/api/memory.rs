//! Memory an outsider can grow stays bounded: channels of nothing are
//! refused before the hub allocates for them, and a channel's ring starts
//! small and grows only when a subscriber lags, losing no event.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
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
