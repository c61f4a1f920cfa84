//! Slot holds: a held slot is kept from every other booking and move, its
//! own booking takes it, it lapses on time, a patient has a limit, and a
//! restart keeps it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{book, book_own, booking, delete, monday, provider, watch_board};
use crate::helpers::*;

async fn hold(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/providers/prv_hold/holds", body, Some(token))
        .await
}

fn at(time: &str) -> Value {
    json!({"appointmentDate": monday().to_string(), "timeSlot": time})
}

/// The 09:00 slot of Monday's board, as `token` sees it.
async fn nine_on_the_board(app: &TestApp, token: &str) -> Value {
    let path = format!("/api/providers/prv_hold/slots?date={}", monday());
    let (_, slots) = app.get(&path, Some(token)).await;
    slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["timeSlot"] == "09:00")
        .unwrap()
        .clone()
}

/// The next board event of `kind`, skipping others.
async fn next_of(board: &mut Ws, kind: &str, within: Duration) -> Value {
    tokio::time::timeout(within, async {
        loop {
            let event = board.next_event().await;
            if event["event"]["kind"] == kind {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event in time"))
}

#[tokio::test]
async fn a_held_slot_is_kept_from_twenty_racing_patients_and_booked_with_its_hold() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prv_hold").await;
    let ann = app.signup_patient("ann").await;
    let mut board = watch_board(&app, &admin, "prv_hold").await;

    let (status, held) = hold(&app, &ann.tokens.token, at("09:00")).await;
    assert_eq!(status, 201, "{held}");
    let hold_id = held["holdId"].as_str().unwrap().to_owned();
    assert_eq!(held["patientId"], json!(ann.patient_id));
    let event = next_of(&mut board, "slot_held", Duration::from_secs(5)).await;
    assert_eq!(event["event"]["holdId"], json!(hold_id));

    // Twenty others race for it (each from their own socket of the HTTP
    // pool): all refused as held.
    let mut racers = Vec::new();
    for i in 0..20 {
        racers.push(app.signup_patient(&format!("racer{i}")).await);
    }
    let replies = futures_util::future::join_all(
        racers
            .iter()
            .map(|p| book_own(&app, p, "prv_hold", monday(), "09:00")),
    )
    .await;
    for (status, reply) in &replies {
        assert_eq!(
            (*status, reply["error"]["code"].as_str()),
            (409, Some("slot_held")),
            "{reply}"
        );
    }
    // Nor may anyone move into it.
    let (status, other) = book_own(&app, &racers[0], "prv_hold", monday(), "10:00").await;
    assert_eq!(status, 201, "{other}");
    let moved = app
        .put(
            &format!(
                "/api/appointments/{}",
                other["appointmentId"].as_str().unwrap()
            ),
            json!({"timeSlot": "09:00"}),
            &racers[0].tokens.token,
        )
        .await;
    assert_eq!(moved.0, 409, "{}", moved.1);
    // Shown as held, without the patient, to a patient.
    let nine = nine_on_the_board(&app, &racers[1].tokens.token).await;
    assert_eq!(nine["state"], "held", "{nine}");
    assert!(nine.get("patientId").is_none(), "{nine}");

    // Its patient books it with the hold; the hold is then spent.
    let mut body = booking(&ann.patient_id, "prv_hold", monday(), "09:00");
    body["holdId"] = json!(hold_id);
    let (status, booked) = book(&app, &ann.tokens.token, body).await;
    assert_eq!(status, 201, "{booked}");
    let released = next_of(&mut board, "slot_released", Duration::from_secs(5)).await;
    assert_eq!(released["event"]["reason"], "booked");
    let mut again = booking(&ann.patient_id, "prv_hold", monday(), "11:00");
    again["holdId"] = json!(hold_id);
    let (status, reply) = book(&app, &ann.tokens.token, again).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("holdId")),
        "{reply}"
    );
}

#[tokio::test]
async fn a_hold_lapses_on_time_and_a_patient_holds_at_most_two() {
    let app = spawn_app_with(|s| s.schedule.hold_secs = 1).await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prv_hold").await;
    let (ann, bob) = (
        app.signup_patient("ann").await,
        app.signup_patient("bob").await,
    );
    let mut board = watch_board(&app, &admin, "prv_hold").await;

    for time in ["09:00", "09:30"] {
        let (status, reply) = hold(&app, &ann.tokens.token, at(time)).await;
        assert_eq!(status, 201, "{reply}");
    }
    let (status, reply) = hold(&app, &ann.tokens.token, at("10:00")).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (409, Some("patientId")),
        "{reply}"
    );
    // Nobody holds for someone else; staff must name the patient.
    let mut for_bob = at("10:00");
    for_bob["patientId"] = json!(bob.patient_id);
    assert_eq!(hold(&app, &ann.tokens.token, for_bob).await.0, 403);
    let (status, reply) = hold(&app, &admin, at("10:00")).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (422, Some("patientId"))
    );

    // Within a second 09:00 is Ann's; after it, anyone's.
    let (status, _) = book_own(&app, &bob, "prv_hold", monday(), "09:00").await;
    assert_eq!(status, 409);
    let lapsed = next_of(&mut board, "slot_released", Duration::from_secs(10)).await;
    assert_eq!(lapsed["event"]["reason"], "expired");
    let (status, reply) = book_own(&app, &bob, "prv_hold", monday(), "09:00").await;
    assert_eq!(status, 201, "{reply}");
    // Lapsed holds no longer count against Ann.
    let (status, reply) = hold(&app, &ann.tokens.token, at("11:00")).await;
    assert_eq!(status, 201, "{reply}");

    // Only its patient (or staff) ends a hold early, once.
    let path = format!(
        "/api/providers/prv_hold/holds/{}",
        reply["holdId"].as_str().unwrap()
    );
    assert_eq!(delete(&app, &path, &bob.tokens.token).await.0, 403);
    assert_eq!(delete(&app, &path, &ann.tokens.token).await.0, 204);
    assert_eq!(delete(&app, &path, &ann.tokens.token).await.0, 404);
}

#[tokio::test]
async fn a_restart_keeps_a_hold() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prv_hold").await;
    let (ann, bob) = (
        app.signup_patient("ann").await,
        app.signup_patient("bob").await,
    );
    let (status, held) = hold(&app, &ann.tokens.token, at("09:00")).await;
    assert_eq!(status, 201, "{held}");

    let app = app.restart(|_| {}).await;
    let admin = app.admin_token().await;
    let (status, reply) = book_own(&app, &bob, "prv_hold", monday(), "09:00").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("slot_held")),
        "{reply}"
    );
    // Her own hold is taken by her booking, even without quoting it.
    let body = booking(&ann.patient_id, "prv_hold", monday(), "09:00");
    let (status, reply) = book(&app, &ann.tokens.token, body).await;
    assert_eq!(status, 201, "{reply}");
    let nine = nine_on_the_board(&app, &admin).await;
    assert_eq!(nine["state"], "booked", "{nine}");
}

#[tokio::test]
async fn the_hold_command_over_websocket_answers_like_rest() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prv_hold").await;
    let (ann, bob) = (
        app.signup_patient("ann").await,
        app.signup_patient("bob").await,
    );
    let command = |time: &str| {
        json!({"type": "hold", "providerId": "prv_hold",
               "appointmentDate": monday().to_string(), "timeSlot": time})
    };
    let mut ws = app.ws(Some(&ann.tokens.token)).await;
    let reply = ws.call(command("11:00")).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["patientId"], json!(ann.patient_id), "{reply}");
    assert!(reply["data"]["holdId"].as_str().is_some(), "{reply}");
    let mut theirs = app.ws(Some(&bob.tokens.token)).await;
    let refused = theirs.call(command("11:00")).await;
    let (status, rest) = hold(&app, &bob.tokens.token, at("11:00")).await;
    assert_eq!(status, 409);
    assert_eq!(refused["error"]["code"], rest["error"]["code"]);
    assert_eq!(refused["error"]["code"], "slot_held");
}

#[tokio::test]
async fn deleting_a_doctor_ends_their_holds_and_waitlist() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prv_hold").await;
    provider(&app, &admin, "prv_next").await;
    let ann = app.signup_patient("ann").await;
    for time in ["09:00", "09:30"] {
        let (status, reply) = hold(&app, &ann.tokens.token, at(time)).await;
        assert_eq!(status, 201, "{reply}");
    }
    let (status, reply) = app
        .post(
            "/api/providers/prv_hold/waitlist",
            json!({"from": monday().to_string(), "to": monday().to_string()}),
            Some(&ann.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let (status, reply) = delete(&app, "/api/providers/prv_hold", &admin).await;
    assert_eq!(status, 200, "{reply}");
    // Her limit is free again at another doctor.
    for time in ["09:00", "09:30"] {
        let (status, reply) = app
            .post(
                "/api/providers/prv_next/holds",
                at(time),
                Some(&ann.tokens.token),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
    }
}
