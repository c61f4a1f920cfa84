//! Live schedule boards: snapshots, live events, resume, privacy, restarts,
//! and one doctor's crash sparing the others.

use std::time::Duration;

use jiff::ToSpan;
use jiff::civil::Date;
use serde_json::{Value, json};

use crate::helpers::*;

fn monday() -> Date {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("UTC").unwrap())
        .date();
    let mut d = today.checked_add(3.days()).unwrap();
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.checked_add(1.day()).unwrap();
    }
    d
}

async fn provider(app: &TestApp, admin: &str, id: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": id, "name": "Dr. Board", "timeZone": "UTC",
              "availability": [{"day": "Monday", "slots": ["09:00-12:00"]}]}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn book_cmd(patient: &str, provider: &str, slot: &str) -> Value {
    json!({"type": "book", "patientId": patient, "providerId": provider,
           "appointmentDate": monday().to_string(), "timeSlot": slot})
}

async fn subscribe(ws: &mut Ws, channel: &str, extra: Value) -> Value {
    let mut cmd = json!({"type": "subscribe", "channel": channel});
    for (k, v) in extra.as_object().unwrap() {
        cmd[k] = v.clone();
    }
    let reply = ws.call(cmd).await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply["data"].clone()
}

#[tokio::test]
async fn boards_show_a_snapshot_then_every_change_in_seq_order() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let mut board = app.ws(Some(&admin)).await;
    let sub = subscribe(
        &mut board,
        "board:prov001",
        json!({"from": monday().to_string(), "to": monday().to_string()}),
    )
    .await;
    let seq = sub["seq"].as_u64().unwrap();
    assert_eq!(sub["snapshot"]["slots"].as_array().unwrap().len(), 6);
    assert!(
        sub["snapshot"]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "free")
    );

    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let booked = ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await;
    let id = booked["data"]["appointmentId"].as_str().unwrap().to_owned();
    ws.call(json!({"type": "reschedule", "appointmentId": id, "timeSlot": "11:00"}))
        .await;
    let (status, _) = app
        .http
        .put(app.url(&format!("/api/appointments/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"status": "CheckedIn"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, 200);
    ws.call(json!({"type": "cancel", "appointmentId": id}))
        .await;
    let (status, _) = app
        .http
        .put(app.url("/api/providers/prov001"))
        .bearer_auth(&admin)
        .json(&json!({"availability": [{"day": "Monday", "slots": ["08:00-12:00"]}]}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, 200);

    let kinds = [
        "appointment_booked",
        "appointment_rescheduled",
        "appointment_status_changed",
        "appointment_cancelled",
        "availability_changed",
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let event = board.next_event().await;
        assert_eq!(event["seq"], seq + 1 + i as u64, "{event}");
        assert_eq!(event["event"]["kind"], *kind, "{event}");
    }
    // The doctor's and admins' board names the patient.
    board.no_event_within(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn boards_hide_patients_from_patients_and_patient_channels_are_private() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let mut alice_ws = app.ws(Some(&alice.tokens.token)).await;
    let mut bob_board = app.ws(Some(&bob.tokens.token)).await;
    let mut admin_board = app.ws(Some(&admin)).await;
    subscribe(&mut bob_board, "board:prov001", json!({})).await;
    subscribe(&mut admin_board, "board:prov001", json!({})).await;
    subscribe(
        &mut alice_ws,
        &format!("patient:{}", alice.patient_id),
        json!({}),
    )
    .await;
    let denied = bob_board
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", alice.patient_id)}))
        .await;
    assert_eq!(denied["error"]["code"], "forbidden");

    let booked = alice_ws
        .call(book_cmd(&alice.patient_id, "prov001", "10:00"))
        .await;
    assert_eq!(booked["ok"], true, "{booked}");
    let seen_by_bob = bob_board.next_event().await;
    assert_eq!(seen_by_bob["event"]["kind"], "appointment_booked");
    assert!(
        seen_by_bob["event"].get("patientId").is_none(),
        "{seen_by_bob}"
    );
    let seen_by_admin = admin_board.next_event().await;
    assert_eq!(seen_by_admin["event"]["patientId"], alice.patient_id);
    assert_eq!(seen_by_admin["seq"], seen_by_bob["seq"]);
    let own = alice_ws.next_event().await;
    assert_eq!(own["channel"], format!("patient:{}", alice.patient_id));
    assert_eq!(own["event"]["patientId"], alice.patient_id);

    // Snapshots follow the same rule.
    let mut late = app.ws(Some(&bob.tokens.token)).await;
    let snap = subscribe(
        &mut late,
        "board:prov001",
        json!({"from": monday().to_string(), "to": monday().to_string()}),
    )
    .await;
    let booked_slot = snap["snapshot"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "booked")
        .unwrap()
        .clone();
    assert!(booked_slot.get("patientId").is_none(), "{booked_slot}");
    let mut late_admin = app.ws(Some(&admin)).await;
    let snap = subscribe(
        &mut late_admin,
        "board:prov001",
        json!({"from": monday().to_string(), "to": monday().to_string()}),
    )
    .await;
    assert!(
        snap["snapshot"]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["patientId"] == alice.patient_id.as_str())
    );
    // The doctor of the appointment may follow the patient; their channel's snapshot lists it.
    let mut admin_patient = app.ws(Some(&admin)).await;
    let snap = subscribe(
        &mut admin_patient,
        &format!("patient:{}", alice.patient_id),
        json!({}),
    )
    .await;
    assert_eq!(snap["snapshot"]["upcoming"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_board_that_reconnects_with_since_gets_exactly_what_it_missed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let mut board = app.ws(Some(&admin)).await;
    let seq = subscribe(&mut board, "board:prov001", json!({})).await["seq"]
        .as_u64()
        .unwrap();
    drop(board);
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    for slot in ["09:00", "09:30", "10:00"] {
        assert_eq!(
            ws.call(book_cmd(&p.patient_id, "prov001", slot)).await["ok"],
            true
        );
    }
    let mut board = app.ws(Some(&admin)).await;
    let sub = subscribe(&mut board, "board:prov001", json!({"since": seq})).await;
    assert_eq!(
        (sub["replayed"].as_u64(), sub["resync"].as_bool()),
        (Some(3), Some(false))
    );
    for (i, slot) in ["09:00", "09:30", "10:00"].iter().enumerate() {
        let event = board.next_event().await;
        assert_eq!(event["seq"], seq + 1 + i as u64);
        assert_eq!(event["event"]["slot"]["timeSlot"], *slot);
    }
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "10:30")).await["ok"],
        true
    );
    assert_eq!(board.next_event().await["seq"], seq + 4);
    board.no_event_within(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn appointments_and_board_seqs_survive_a_restart() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await["ok"],
        true
    );
    let mut board = app.ws(Some(&admin)).await;
    let seq = subscribe(&mut board, "board:prov001", json!({})).await["seq"]
        .as_u64()
        .unwrap();
    drop((ws, board));

    let app = app.restart(|_| {}).await;
    let admin = app.admin_token().await;
    let token = app.login("alice", PASSWORD).await.token;
    let mut ws = app.ws(Some(&token)).await;
    let taken = ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await;
    assert_eq!(taken["error"]["code"], "slot_taken", "the booking survived");
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "11:00")).await["ok"],
        true
    );
    let mut board = app.ws(Some(&admin)).await;
    let sub = subscribe(&mut board, "board:prov001", json!({"since": seq})).await;
    assert_eq!(sub["replayed"], 1, "{sub}");
    let event = board.next_event().await;
    assert_eq!(event["seq"], seq + 1);
    assert_eq!(event["event"]["slot"]["timeSlot"], "11:00");
}

#[tokio::test]
async fn one_doctors_crash_leaves_every_other_board_working() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    provider(&app, &admin, "prov002").await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await["ok"],
        true
    );
    let mut other_board = app.ws(Some(&admin)).await;
    subscribe(&mut other_board, "board:prov002", json!({})).await;

    let (status, body) = app
        .post(
            "/api/test-faults/schedule-panic/prov001",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("internal"))
    );

    // The crashed doctor's actor restarted from the store: its bookings hold.
    let again = ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await;
    assert_eq!(again["error"]["code"], "slot_taken", "{again}");
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "11:00")).await["ok"],
        true
    );
    // The other doctor's board never noticed.
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov002", "09:00")).await["ok"],
        true
    );
    assert_eq!(
        other_board.next_event().await["event"]["kind"],
        "appointment_booked"
    );
    assert!(
        app.metrics()
            .await
            .contains("actor_restarts_total{actor=\"schedule\"}")
    );
}

#[tokio::test]
async fn a_display_token_watches_one_board_redacted_and_nothing_else() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    provider(&app, &admin, "prov002").await;
    let p = app.signup_patient("alice").await;
    let (status, _) = app
        .post(
            "/api/providers/prov001/display-tokens",
            json!({}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, issued) = app
        .post(
            "/api/providers/prov001/display-tokens",
            json!({"ttlHours": 24}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let display = issued["token"].as_str().unwrap().to_owned();

    // No REST route accepts it.
    assert_eq!(app.get("/api/doctors", Some(&display)).await.0, 401);
    assert_eq!(
        app.get("/api/providers/prov001/slots", Some(&display))
            .await
            .0,
        401
    );

    // Over the WebSocket (here via an auth frame) it watches its one board.
    let mut screen = app.ws(None).await;
    assert_eq!(
        screen.call(json!({"type": "auth", "token": display})).await["ok"],
        true
    );
    let other = screen
        .call(json!({"type": "subscribe", "channel": "board:prov002"}))
        .await;
    assert_eq!(other["error"]["code"], "forbidden");
    let users = screen
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await;
    assert_eq!(users["error"]["code"], "forbidden");
    subscribe(&mut screen, "board:prov001", json!({})).await;
    let denied = screen
        .call(book_cmd(&p.patient_id, "prov001", "09:00"))
        .await;
    assert_eq!(denied["error"]["code"], "forbidden");

    let mut ws = app.ws(Some(&p.tokens.token)).await;
    assert_eq!(
        ws.call(book_cmd(&p.patient_id, "prov001", "10:00")).await["ok"],
        true
    );
    let event = screen.next_event().await;
    assert_eq!(event["event"]["kind"], "appointment_booked");
    assert!(event["event"].get("patientId").is_none(), "{event}");
}

#[tokio::test]
async fn the_largest_board_snapshot_reaches_the_client() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let all_day = all_day_availability();
    let (status, _) = app
        .post(
            "/api/providers",
            json!({"providerId": "busy", "name": "Dr. Busy", "timeZone": "UTC",
              "slotMinutes": 5, "availability": all_day}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201);
    let from = monday();
    let to = from.checked_add(30.days()).unwrap();
    let mut ws = app.ws(Some(&admin)).await;
    let sub = subscribe(
        &mut ws,
        "board:busy",
        json!({"from": from.to_string(), "to": to.to_string()}),
    )
    .await;
    assert_eq!(sub["snapshot"]["slots"].as_array().unwrap().len(), 31 * 288);
    let too_long = ws
        .call(
            json!({"type": "subscribe", "channel": "board:busy", "from": from.to_string(),
                     "to": to.checked_add(1.day()).unwrap().to_string()}),
        )
        .await;
    assert_eq!(too_long["error"]["field"], "to");
}
