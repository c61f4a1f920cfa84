//! Appointments over REST: the lifecycle, every booking rule, and who may touch what.

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::json;

use super::{TZ, book, book_own, booking, delete, monday, next, provider, slot_states};
use crate::helpers::*;

/// The latest `weekday` strictly before today in `tz`: always in the past,
/// whatever day the suite runs on.
fn last(weekday: jiff::civil::Weekday, tz: &str) -> Date {
    let today = jiff::Timestamp::now()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date();
    let mut d = today.yesterday().unwrap();
    while d.weekday() != weekday {
        d = d.yesterday().unwrap();
    }
    d
}

#[tokio::test]
async fn book_read_move_check_in_complete_and_cancel() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let day = monday();

    let (status, created) = book_own(&app, &p, "prov001", day, "10:00").await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("Created")),
        "{created}"
    );
    let id = created["appointmentId"].as_str().unwrap().to_owned();
    let (status, a) = app
        .get(&format!("/api/appointments/{id}"), Some(&p.tokens.token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["patientId"], p.patient_id);
    assert_eq!(a["providerId"], "prov001");
    assert_eq!(a["appointmentDate"], day.to_string());
    assert_eq!(a["timeSlot"], "10:00");
    assert_eq!(a["status"], "Scheduled");
    assert_eq!(a["timeZone"], TZ);
    let expected = day.at(10, 0, 0, 0).in_tz(TZ).unwrap().timestamp();
    assert_eq!(a["startUtc"], expected.to_string());

    // Move: the new slot is taken and the old one freed.
    let (status, reply) = app.put(&format!("/api/appointments/{id}"),
        json!({"appointmentDate": day.to_string(), "timeSlot": "11:00", "status": "Rescheduled"}),
        &p.tokens.token,
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("Updated")),
        "{reply}"
    );
    let (_, slots) = app
        .get(
            &format!("/api/providers/prov001/slots?date={day}"),
            Some(&p.tokens.token),
        )
        .await;
    let states = slot_states(&slots);
    assert!(states.contains(&("10:00".into(), "free".into())));
    assert!(states.contains(&("11:00".into(), "booked".into())));
    assert!(
        slots["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("patientId").is_none()),
        "patients see no identities"
    );

    // Patients may not check themselves in; the doctor (here: admin) may.
    let path = format!("/api/appointments/{id}");
    assert_eq!(
        app.put(&path, json!({"status": "CheckedIn"}), &p.tokens.token)
            .await
            .0,
        403
    );
    assert_eq!(
        app.put(&path, json!({"status": "CheckedIn"}), &admin)
            .await
            .0,
        200
    );
    let (status, reply) = app
        .put(
            &path,
            json!({"appointmentDate": day.to_string(), "timeSlot": "09:00"}),
            &admin,
        )
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    assert_eq!(
        app.put(&path, json!({"status": "Completed"}), &admin)
            .await
            .0,
        200
    );
    let (status, reply) = app.put(&path, json!({"status": "Cancelled"}), &admin).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    let (_, a) = app.get(&path, Some(&admin)).await;
    let actions: Vec<&str> = a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["Booked", "Rescheduled", "CheckedIn", "Completed"]);

    // Cancel frees the slot for someone else.
    let (_, second) = book_own(&app, &p, "prov001", day, "09:30").await;
    let second = second["appointmentId"].as_str().unwrap().to_owned();
    let (status, reply) = delete(
        &app,
        &format!("/api/appointments/{second}"),
        &p.tokens.token,
    )
    .await;
    assert_eq!(
        (
            status,
            reply["status"].as_str(),
            reply["appointmentId"].as_str()
        ),
        (200, Some("Cancelled"), Some(second.as_str()))
    );
    let other = app.signup_patient("bob").await;
    let (status, _) = book_own(&app, &other, "prov001", day, "09:30").await;
    assert_eq!(status, 201);

    let (status, list) = app
        .get(
            &format!("/api/appointments?patientId={}", p.patient_id),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["appointments"].as_array().unwrap().len(), 2);
    let (_, list) = app
        .get(
            "/api/appointments?providerId=prov001&status=Scheduled",
            Some(&admin),
        )
        .await;
    assert_eq!(list["appointments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_booking_rule_has_its_own_code() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    provider(&app, &admin, "prov002").await;
    let p = app.signup_patient("alice").await;
    let t = &p.tokens.token;
    let day = monday();
    let wednesday = next(jiff::civil::Weekday::Wednesday, TZ);
    assert_eq!(book_own(&app, &p, "prov001", day, "10:00").await.0, 201);

    // Past days picked by weekday, never "yesterday": the doctor works on
    // Mondays and Wednesdays, so a past Tuesday is outside their hours and
    // a past Monday is a real slot that is too soon, on any day of the week.
    let past_tuesday = last(jiff::civil::Weekday::Tuesday, TZ);
    let past_monday = last(jiff::civil::Weekday::Monday, TZ);
    let far = day.checked_add(400.days()).unwrap();
    let mut far_monday = far;
    while far_monday.weekday() != jiff::civil::Weekday::Monday {
        far_monday = far_monday.checked_add(1.day()).unwrap();
    }
    let own = |provider: &str, date: Date, slot: &str| booking(&p.patient_id, provider, date, slot);
    let cases = [
        (own("prov001", day, "10:00"), 409, "slot_taken"),
        (own("prov002", day, "10:00"), 409, "patient_conflict"),
        (
            own("prov001", day.tomorrow().unwrap(), "10:00"),
            422,
            "outside_availability",
        ),
        (own("prov001", day, "10:15"), 422, "outside_availability"),
        (own("prov001", day, "12:00"), 422, "outside_availability"),
        (
            own("prov001", past_tuesday, "10:00"),
            422,
            "outside_availability",
        ),
        (own("prov001", past_monday, "10:00"), 422, "too_soon"),
        (own("prov001", far_monday, "10:00"), 422, "too_far"),
        (own("nobody", day, "10:00"), 404, "not_found"),
        (
            booking("pat_nobody", "prov001", wednesday, "10:00"),
            403,
            "forbidden",
        ),
        (
            json!({"patientId": p.patient_id, "providerId": "prov001", "appointmentDate": "2030-13-01", "timeSlot": "10:00"}),
            400,
            "bad_request",
        ),
        (
            json!({"patientId": p.patient_id, "providerId": "prov001", "appointmentDate": day.to_string(), "timeSlot": "10am"}),
            400,
            "bad_request",
        ),
        (
            json!({"patientId": p.patient_id, "providerId": "prov001", "appointmentDate": day.to_string()}),
            400,
            "bad_request",
        ),
        (
            json!({"patientId": p.patient_id, "providerId": "prov001", "appointmentDate": day.to_string(), "timeSlot": "10:30", "status": "Completed"}),
            422,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let (got, reply) = book(&app, t, body.clone()).await;
        assert_eq!(
            (got, reply["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} -> {reply}"
        );
    }
    // Admins book for anyone; unknown patients are named as such.
    let (status, reply) = book(
        &app,
        &admin,
        booking("pat_nobody", "prov001", wednesday, "10:00"),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{reply}"
    );
    // Too soon: a slot later today that is within the minimum notice.
    let soon = spawn_app_with(|s| s.schedule.min_notice_minutes = 60 * 24 * 30).await;
    let admin = soon.admin_token().await;
    provider(&soon, &admin, "prov001").await;
    let p = soon.signup_patient("carol").await;
    let (status, reply) = book_own(&soon, &p, "prov001", day, "10:00").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("too_soon")),
        "{reply}"
    );
}

#[tokio::test]
async fn patients_and_doctors_touch_only_their_own() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let (_, created) = book_own(&app, &alice, "prov001", monday(), "10:00").await;
    let id = created["appointmentId"].as_str().unwrap();
    let path = format!("/api/appointments/{id}");
    let (status, reply) = book(
        &app,
        &bob.tokens.token,
        booking(&alice.patient_id, "prov001", monday(), "11:00"),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(app.get(&path, Some(&bob.tokens.token)).await.0, 403);
    assert_eq!(
        app.put(&path, json!({"timeSlot": "11:00"}), &bob.tokens.token)
            .await
            .0,
        403
    );
    assert_eq!(delete(&app, &path, &bob.tokens.token).await.0, 403);
    assert_eq!(
        app.get(
            &format!("/api/appointments?patientId={}", alice.patient_id),
            Some(&bob.tokens.token)
        )
        .await
        .0,
        403
    );
    let (status, _) = app
        .post(
            "/api/auth/signup",
            json!({"username": "drother", "email": "o@example.org", "password": PASSWORD,
              "role": "doctor", "providerId": "prov009", "timeZone": TZ}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201);
    let other_doctor = app.login("drother", PASSWORD).await;
    assert_eq!(app.get(&path, Some(&other_doctor.token)).await.0, 403);
    assert_eq!(
        app.put(&path, json!({"status": "CheckedIn"}), &other_doctor.token)
            .await
            .0,
        403
    );
    assert_eq!(app.get(&path, None).await.0, 401);
}
