//! The `analytics` channel: admins watch today's headline figures change,
//! at most one frame a second, and catch up with `since`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::care::care_clinic;

#[tokio::test]
async fn admins_watch_todays_figures_change_at_most_once_a_second() {
    let c = care_clinic(|_| {}).await;
    let app = &c.app;
    for token in [&c.dr, &c.alice.tokens.token] {
        let mut ws = app.ws(Some(token)).await;
        let denied = ws
            .call(json!({"type": "subscribe", "channel": "analytics"}))
            .await;
        assert_eq!(denied["error"]["code"], "forbidden", "admins only");
    }
    let mut ws = app.ws(Some(&c.admin)).await;
    let sub = ws
        .call(json!({"type": "subscribe", "channel": "analytics"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    let today = &sub["data"]["snapshot"]["today"];
    let written = today["recordsWritten"].as_u64().unwrap();

    // Five records at once: a frame a second at most while they land,
    // not one per record.
    let body = json!({"patientId": c.alice.patient_id, "date": "2026-11-20", "diagnosis": "Flu"});
    let started = Instant::now();
    let posts = (0..5).map(|_| app.post("/api/records", body.clone(), Some(&c.dr)));
    for (status, reply) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 201, "{reply}");
    }
    // Frames of the set-up's own changes, pushed late, are not counted.
    let mut frames = Vec::new();
    loop {
        let frame = ws.next_event().await;
        assert_eq!(frame["channel"], "analytics");
        assert_eq!(frame["event"]["kind"], "analytics_today");
        let seen = frame["event"]["recordsWritten"].as_u64().unwrap();
        if seen > written {
            frames.push(frame);
        }
        if seen == written + 5 {
            break;
        }
    }
    // The first frame may come at once, then one a second at most.
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        (frames.len() as f64) <= seconds.ceil() + 1.0 && frames.len() < 5,
        "one frame a second at most: {} frames in {seconds:.1} s: {frames:?}",
        frames.len()
    );
    let last = frames.last().unwrap().clone();
    assert_eq!(last["event"]["day"], today["day"]);
    assert_eq!(last["event"]["booked"], today["booked"], "no booking today");
    // Nothing changes: nothing is pushed.
    ws.no_event_within(Duration::from_millis(2_500)).await;

    // A dashboard that reconnects catches up from its last seq.
    let seq = last["seq"].as_u64().unwrap();
    let (status, _) = app.post("/api/records", body, Some(&c.dr)).await;
    assert_eq!(status, 201);
    let mut again = app.ws(Some(&c.admin)).await;
    let caught = again
        .call(json!({"type": "subscribe", "channel": "analytics", "since": seq}))
        .await;
    assert_eq!(caught["ok"], true, "{caught}");
    let next = again.next_event().await;
    assert_eq!(next["seq"], seq + 1, "{next}");
    assert_eq!(next["event"]["recordsWritten"], written + 6);
}
