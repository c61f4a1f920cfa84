//! Schedule commands over the WebSocket: races for one slot, and answers like REST.

use std::time::Duration;

use serde_json::{Value, json};

use super::{book_own, booking, delete, monday, provider, watch_board};
use crate::helpers::*;

#[tokio::test]
async fn one_hundred_clients_racing_for_one_slot_get_exactly_one_booking() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let mut patients = Vec::new();
    for i in 0..100 {
        let (status, body) = app
            .post("/api/auth/signup", json!({"username": format!("racer{i:03}"), "email": "r@example.org", "password": PASSWORD}), None)
            .await;
        assert_eq!(status, 201);
        patients.push(body["patientId"].as_str().unwrap().to_owned());
    }
    let mut boards = Vec::new();
    for _ in 0..3 {
        boards.push(watch_board(&app, &admin, "prov001").await);
    }
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(app.ws(Some(&admin)).await);
    }
    let day = monday();
    let attempts = clients.into_iter().zip(patients).map(|(mut ws, patient)| {
        let mut body = booking(&patient, "prov001", day, "10:00");
        body["type"] = json!("book");
        tokio::spawn(async move { ws.call(body).await })
    });
    let replies: Vec<Value> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = replies.iter().filter(|r| r["ok"] == true).count();
    let taken = replies
        .iter()
        .filter(|r| r["error"]["code"] == "slot_taken")
        .count();
    assert_eq!((ok, taken), (1, 99), "{replies:?}");
    for board in &mut boards {
        let event = board.next_event().await;
        assert_eq!(event["event"]["kind"], "appointment_booked");
        board.no_event_within(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_reschedule_and_a_booking_racing_for_one_slot_cannot_both_win() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let a = app.signup_patient("alice").await;
    let b = app.signup_patient("bob").await;
    let day = monday();
    for round in 0..5 {
        let from = ["09:00", "09:30", "10:00", "10:30", "11:00"][round];
        let target = "11:30";
        let (_, created) = book_own(&app, &a, "prov001", day, from).await;
        let id = created["appointmentId"].as_str().unwrap().to_owned();
        let mut ws_a = app.ws(Some(&a.tokens.token)).await;
        let mut ws_b = app.ws(Some(&b.tokens.token)).await;
        let mut move_body = json!({"type": "reschedule", "appointmentId": id, "appointmentDate": day.to_string(), "timeSlot": target});
        let mut book_body = booking(&b.patient_id, "prov001", day, target);
        book_body["type"] = json!("book");
        let (moved, booked) = tokio::join!(ws_a.call(move_body.take()), ws_b.call(book_body));
        let winners = [moved["ok"] == true, booked["ok"] == true];
        assert_eq!(
            winners.iter().filter(|w| **w).count(),
            1,
            "round {round}: {moved} {booked}"
        );
        // Free the target for the next round.
        let (_, list) = app
            .get(
                "/api/appointments?providerId=prov001&status=Scheduled",
                Some(&admin),
            )
            .await;
        for appt in list["appointments"].as_array().unwrap() {
            delete(
                &app,
                &format!(
                    "/api/appointments/{}",
                    appt["appointmentId"].as_str().unwrap()
                ),
                &admin,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn websocket_commands_answer_like_rest() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let mut body = booking(&p.patient_id, "prov001", monday(), "10:00");
    body["type"] = json!("book");
    let reply = ws.call(body.clone()).await;
    assert_eq!(reply["data"]["status"], "Created", "{reply}");
    let id = reply["data"]["appointmentId"].as_str().unwrap().to_owned();
    let again = ws.call(body).await;
    let (status, rest) = book_own(&app, &p, "prov001", monday(), "10:00").await;
    assert_eq!(status, 409);
    assert_eq!(again["error"]["code"], rest["error"]["code"]);
    let moved = ws
        .call(json!({"type": "reschedule", "appointmentId": id, "timeSlot": "11:00"}))
        .await;
    assert_eq!(
        moved["data"],
        json!({"appointmentId": id, "status": "Updated"})
    );
    let bad = ws
        .call(json!({"type": "reschedule", "appointmentId": id, "timeSlot": "11:10"}))
        .await;
    assert_eq!(bad["error"]["code"], "outside_availability");
    let cancelled = ws
        .call(json!({"type": "cancel", "appointmentId": id}))
        .await;
    assert_eq!(
        cancelled["data"],
        json!({"status": "Cancelled", "appointmentId": id})
    );
    let missing = ws
        .call(json!({"type": "cancel", "appointmentId": "apt_nope"}))
        .await;
    assert_eq!(missing["error"]["code"], "not_found");
}
