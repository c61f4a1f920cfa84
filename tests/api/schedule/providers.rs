//! Provider profiles: create, read, update, validate, and delete with cancellation.

use serde_json::json;

use super::{TZ, book_own, delete, monday, provider, slot_states, watch_board};
use crate::helpers::*;

#[tokio::test]
async fn providers_are_created_read_updated_and_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let patient = app.signup_patient("alice").await;

    let (status, p) = app
        .get("/api/providers/prov001", Some(&patient.tokens.token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(p["availability"][0]["slots"][0], "09:00-12:00");
    assert_eq!(
        (p["timeZone"].as_str(), p["slotMinutes"].as_u64()),
        (Some(TZ), Some(30))
    );
    let (_, list) = app.get("/api/providers", Some(&patient.tokens.token)).await;
    let (_, doctors) = app.get("/api/doctors", Some(&patient.tokens.token)).await;
    assert_eq!(list, doctors, "one list of profiles");

    let (status, slots) = app
        .get(
            &format!("/api/providers/prov001/slots?date={}", monday()),
            Some(&patient.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{slots}");
    let names: Vec<String> = slot_states(&slots).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        names,
        ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    );

    let bad = [
        (json!({"name": "X", "timeZone": "Mars/Base"}), "timeZone"),
        (
            json!({"name": "X", "timeZone": TZ, "availability": [{"day": "Monday", "slots": ["12:00-09:00"]}]}),
            "availability[0].slots[0]",
        ),
        (
            json!({"name": "X", "timeZone": TZ, "availability": [{"day": "Monday", "slots": ["09:00-12:00", "11:00-13:00"]}]}),
            "availability[0].slots[1]",
        ),
        (
            json!({"name": "X", "timeZone": TZ, "availability": [{"day": "Funday", "slots": []}]}),
            "availability[0].day",
        ),
        (
            json!({"name": "X", "timeZone": TZ, "slotMinutes": 7}),
            "slotMinutes",
        ),
        (json!({"name": "X"}), "timeZone"),
    ];
    for (body, field) in bad {
        let (status, reply) = app.post("/api/providers", body.clone(), Some(&admin)).await;
        assert!(status == 400 || status == 422, "{body} -> {status} {reply}");
        let named = format!("{} {}", reply["error"]["field"], reply["error"]["message"]);
        assert!(
            named.contains(field),
            "{body} -> {reply} should name {field}"
        );
    }
    let (status, _) = app
        .post(
            "/api/providers",
            json!({"name": "X", "timeZone": TZ}),
            Some(&patient.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, reply) = app
        .post(
            "/api/providers",
            json!({"providerId": "prov001", "name": "X", "timeZone": TZ}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (409, Some("providerId"))
    );

    // A doctor's sign-up creates their profile; they may change it, others may not.
    let (status, _) = app
        .post(
            "/api/auth/signup",
            json!({"username": "drwho", "email": "w@example.org", "password": PASSWORD,
              "role": "doctor", "providerId": "prov002", "timeZone": TZ}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201);
    let doctor = app.login("drwho", PASSWORD).await;
    let change =
        json!({"availability": [{"day": "Tuesday", "slots": ["14:00-16:00"]}], "slotMinutes": 60});
    let (status, reply) = app
        .put("/api/providers/prov002", change.clone(), &doctor.token)
        .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("Updated")),
        "{reply}"
    );
    let (status, _) = app
        .put("/api/providers/prov001", change, &doctor.token)
        .await;
    assert_eq!(status, 403);
    let (_, p) = app.get("/api/providers/prov002", Some(&doctor.token)).await;
    assert_eq!(p["slotMinutes"], 60);
    assert_eq!(
        app.get("/api/providers/nobody", Some(&doctor.token))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get("/api/providers/nobody/slots", Some(&doctor.token))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_provider_with_appointments_ahead_is_deleted_only_with_cancellation() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    book_own(&app, &p, "prov001", monday(), "10:00").await;
    let mut board = watch_board(&app, &admin, "prov001").await;

    let (status, reply) = delete(&app, "/api/providers/prov001", &admin).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (409, Some("cancelAppointments")),
        "{reply}"
    );
    let (status, reply) = delete(
        &app,
        "/api/providers/prov001?cancelAppointments=true",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (
            reply["status"].as_str(),
            reply["cancelledAppointments"].as_u64()
        ),
        (Some("Deleted"), Some(1))
    );
    assert_eq!(
        board.next_event().await["event"]["kind"],
        "appointment_cancelled"
    );
    assert_eq!(app.get("/api/providers/prov001", Some(&admin)).await.0, 404);
    let (status, _) = book_own(&app, &p, "prov001", monday(), "11:00").await;
    assert_eq!(status, 404);
}
