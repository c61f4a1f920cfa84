//! Doctor schedules over REST and WebSocket: providers, slots, bookings,
//! rules, races, DST, restarts, boards.

use std::time::Duration;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::helpers::*;

const TZ: &str = "Europe/Berlin";

/// The first `weekday` at least 3 days from now in `tz` (far enough for the
/// minimum notice, near enough for the horizon).
fn next(weekday: jiff::civil::Weekday, tz: &str) -> Date {
    let today = jiff::Timestamp::now()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date();
    let mut d = today.checked_add(3.days()).unwrap();
    while d.weekday() != weekday {
        d = d.checked_add(1.day()).unwrap();
    }
    d
}

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

fn monday() -> Date {
    next(jiff::civil::Weekday::Monday, TZ)
}

/// A provider with Monday 09:00-12:00 and Wednesday 09:00-12:00, 30-minute slots.
async fn provider(app: &TestApp, admin: &str, id: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": id, "name": format!("Dr. {id}"), "specialization": "Cardiology",
                   "contactInfo": {"phone": "+1234567890", "email": "jane@example.org"},
                   "availability": [{"day": "Monday", "slots": ["09:00-12:00"]},
                                    {"day": "Wednesday", "slots": ["09:00-12:00"]}],
                   "timeZone": TZ}),
            Some(admin),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("Created")),
        "{body}"
    );
}

fn booking(patient: &str, provider: &str, date: Date, slot: &str) -> Value {
    json!({"patientId": patient, "providerId": provider, "appointmentDate": date.to_string(),
           "timeSlot": slot, "status": "Scheduled"})
}

async fn book(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/appointments", body, Some(token)).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    read(
        app.http
            .delete(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn slot_states(slots: &Value) -> Vec<(String, String)> {
    slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["timeSlot"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

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
async fn book_read_move_check_in_complete_and_cancel() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let day = monday();

    let (status, created) = book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", day, "10:00"),
    )
    .await;
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
    let (_, second) = book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", day, "09:30"),
    )
    .await;
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
    let (status, _) = book(
        &app,
        &other.tokens.token,
        booking(&other.patient_id, "prov001", day, "09:30"),
    )
    .await;
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
    assert_eq!(
        book(&app, t, booking(&p.patient_id, "prov001", day, "10:00"))
            .await
            .0,
        201
    );

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
    let cases = [
        (
            booking(&p.patient_id, "prov001", day, "10:00"),
            409,
            "slot_taken",
        ),
        (
            booking(&p.patient_id, "prov002", day, "10:00"),
            409,
            "patient_conflict",
        ),
        (
            booking(&p.patient_id, "prov001", day.tomorrow().unwrap(), "10:00"),
            422,
            "outside_availability",
        ),
        (
            booking(&p.patient_id, "prov001", day, "10:15"),
            422,
            "outside_availability",
        ),
        (
            booking(&p.patient_id, "prov001", day, "12:00"),
            422,
            "outside_availability",
        ),
        (
            booking(&p.patient_id, "prov001", past_tuesday, "10:00"),
            422,
            "outside_availability",
        ),
        (
            booking(&p.patient_id, "prov001", past_monday, "10:00"),
            422,
            "too_soon",
        ),
        (
            booking(&p.patient_id, "prov001", far_monday, "10:00"),
            422,
            "too_far",
        ),
        (
            booking(&p.patient_id, "nobody", day, "10:00"),
            404,
            "not_found",
        ),
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
    let (status, reply) = book(
        &soon,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", day, "10:00"),
    )
    .await;
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
    let (_, created) = book(
        &app,
        &alice.tokens.token,
        booking(&alice.patient_id, "prov001", monday(), "10:00"),
    )
    .await;
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

#[tokio::test]
async fn a_provider_with_appointments_ahead_is_deleted_only_with_cancellation() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", monday(), "10:00"),
    )
    .await;
    let mut board = app.ws(Some(&admin)).await;
    assert_eq!(
        board
            .call(json!({"type": "subscribe", "channel": "board:prov001"}))
            .await["ok"],
        true
    );

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
    let (status, _) = book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", monday(), "11:00"),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn slots_are_right_around_a_dst_change() {
    // Find the next DST transition of Europe/Berlin and book around it.
    let tz = TimeZone::get(TZ).unwrap();
    let transition = tz
        .following(jiff::Timestamp::now().checked_add(72.hours()).unwrap())
        .next()
        .unwrap();
    let change_day = transition.timestamp().to_zoned(tz.clone()).date();
    let spring =
        transition.offset() > tz.to_offset(transition.timestamp().checked_sub(1.hour()).unwrap());
    let app = spawn_app_with(|s| s.schedule.horizon_days = 400).await;
    let admin = app.admin_token().await;
    let all_day = all_day_availability();
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "dst", "name": "Dr. DST", "timeZone": TZ,
              "slotMinutes": 60, "availability": all_day}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let slots_of = |d: Date| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.get(&format!("/api/providers/dst/slots?date={d}"), Some(&admin))
                .await
                .1
        }
    };
    let before = slots_of(change_day.yesterday().unwrap()).await;
    let on = slots_of(change_day).await;
    let after = slots_of(change_day.tomorrow().unwrap()).await;
    let starts = |v: &Value| -> Vec<jiff::Timestamp> {
        v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["start"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(starts(&before).len(), 24);
    assert_eq!(starts(&after).len(), 24);
    let nine = |v: &Value| -> jiff::Timestamp {
        let s = v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["timeSlot"] == "09:00")
            .unwrap();
        s["start"].as_str().unwrap().parse().unwrap()
    };
    // Two days apart, 09:00 local is 48 hours of UTC apart, less or more
    // the hour the change takes or gives.
    let shift = nine(&after).duration_since(nine(&before)).as_hours();
    assert_eq!(shift, if spring { 47 } else { 49 });
    let on_starts = starts(&on);
    if spring {
        assert_eq!(on_starts.len(), 23, "the skipped hour has no slot");
        assert!(
            on["slots"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["timeSlot"] != "02:00")
        );
    } else {
        assert_eq!(on_starts.len(), 24, "the repeated hour has one slot");
    }
    assert!(
        on_starts.windows(2).all(|w| w[1] > w[0]),
        "distinct, ordered instants"
    );
    // Booking on the change day lands on the instant the slot list shows.
    let p = app.signup_patient("alice").await;
    let (status, created) = book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "dst", change_day, "09:00"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, a) = app
        .get(
            &format!(
                "/api/appointments/{}",
                created["appointmentId"].as_str().unwrap()
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(
        a["startUtc"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        nine(&on)
    );
}

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
        let mut board = app.ws(Some(&admin)).await;
        assert_eq!(
            board
                .call(json!({"type": "subscribe", "channel": "board:prov001"}))
                .await["ok"],
            true
        );
        boards.push(board);
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
        let (_, created) = book(
            &app,
            &a.tokens.token,
            booking(&a.patient_id, "prov001", day, from),
        )
        .await;
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
    let (status, rest) = book(
        &app,
        &p.tokens.token,
        booking(&p.patient_id, "prov001", monday(), "10:00"),
    )
    .await;
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
