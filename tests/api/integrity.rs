//! Schedule integrity: the store refuses any overlap for a doctor, one actor
//! owns a doctor, changed hours flag appointments instead of leaving them in
//! an impossible state, and a no-show gives the patient's time back.

use std::time::Duration;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::helpers::*;

const TZ: &str = "Europe/Berlin";
const WAIT: Duration = Duration::from_secs(10);

/// The first Monday at least 3 days from now (inside notice and horizon).
fn monday() -> Date {
    let today = jiff::Timestamp::now()
        .to_zoned(TimeZone::get(TZ).unwrap())
        .date();
    let mut d = today.checked_add(3.days()).unwrap();
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().unwrap();
    }
    d
}

/// A doctor working Mondays 09:00-12:00 in 30-minute slots.
async fn doctor(app: &TestApp, admin: &str, id: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": id, "name": format!("Dr. {id}"), "timeZone": TZ,
                   "slotMinutes": 30,
                   "availability": [{"day": "Monday", "slots": ["09:00-12:00"]}]}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn booking(patient: &str, provider: &str, date: Date, slot: &str) -> Value {
    json!({"patientId": patient, "providerId": provider,
           "appointmentDate": date.to_string(), "timeSlot": slot})
}

async fn book(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/appointments", body, Some(token)).await
}

/// A patient books for themselves.
async fn book_as(
    app: &TestApp,
    p: &Patient,
    provider: &str,
    date: Date,
    time: &str,
) -> (u16, Value) {
    let body = booking(&p.patient_id, provider, date, time);
    book(app, &p.tokens.token, body).await
}

/// Books and returns the new appointment's id.
async fn booked(app: &TestApp, p: &Patient, provider: &str, date: Date, time: &str) -> String {
    let (status, body) = book_as(app, p, provider, date, time).await;
    assert_eq!(status, 201, "{body}");
    body["appointmentId"].as_str().unwrap().to_owned()
}

/// Books on a task of its own, so many clients race.
fn spawn_booking(app: &TestApp, token: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = app
        .http
        .post(app.url("/api/appointments"))
        .bearer_auth(token)
        .json(&body);
    tokio::spawn(async move { read(request.send().await.unwrap()).await })
}

async fn hours(app: &TestApp, admin: &str, id: &str, change: Value) {
    let (status, body) = app
        .put(&format!("/api/providers/{id}"), change, admin)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Every appointment of the doctor, as the REST list gives it.
async fn appointments(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/appointments?{query}"), Some(admin))
        .await;
    assert_eq!(status, 200, "{body}");
    body["appointments"].as_array().unwrap().clone()
}

/// Asserts that no two live appointments of the doctor overlap in time.
async fn assert_no_overlap(app: &TestApp, admin: &str, provider: &str) -> usize {
    let live: Vec<(jiff::Timestamp, jiff::Timestamp, String)> =
        appointments(app, admin, &format!("providerId={provider}"))
            .await
            .into_iter()
            .filter(|a| matches!(a["status"].as_str(), Some("Scheduled" | "CheckedIn")))
            .map(|a| {
                (
                    a["startUtc"].as_str().unwrap().parse().unwrap(),
                    a["endUtc"].as_str().unwrap().parse().unwrap(),
                    a["appointmentId"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            assert!(
                a.1 <= b.0 || b.1 <= a.0,
                "{} and {} overlap: {a:?} {b:?}",
                a.2,
                b.2
            );
        }
    }
    live.len()
}

/// `N` signed-up patients.
async fn patients<const N: usize>(app: &TestApp) -> [Patient; N] {
    let mut out = Vec::with_capacity(N);
    for i in 0..N {
        out.push(app.signup_patient(&format!("patient{i:03}")).await);
    }
    out.try_into().ok().expect("N patients")
}

#[tokio::test]
async fn a_shorter_slot_length_cannot_double_book_a_doctor() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, "prov001").await;
    let [alice, bob] = patients(&app).await;
    let day = monday();
    let (status, body) = book_as(&app, &alice, "prov001", day, "10:00").await;
    assert_eq!(status, 201, "{body}");
    hours(&app, &admin, "prov001", json!({"slotMinutes": 15})).await;

    // 10:15 lies inside alice's 10:00-10:30: taken, whatever the new grid says.
    let (status, body) = book_as(&app, &bob, "prov001", day, "10:15").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("slot_taken")),
        "{body}"
    );
    let (status, body) = book_as(&app, &bob, "prov001", day, "10:30").await;
    assert_eq!(status, 201, "{body}");
    // The board shows both 15-minute slots under alice's appointment as booked.
    let (_, slots) = app
        .get(
            &format!("/api/providers/prov001/slots?date={day}"),
            Some(&admin),
        )
        .await;
    let state = |t: &str| {
        slots["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["timeSlot"] == t)
            .map(|s| s["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state("10:00").as_deref(), Some("booked"));
    assert_eq!(state("10:15").as_deref(), Some("booked"));
    assert_eq!(state("10:45").as_deref(), Some("free"));
    assert_eq!(assert_no_overlap(&app, &admin, "prov001").await, 2);

    // Longer slots again: 10:00-11:00 would cover bob's 10:30.
    hours(&app, &admin, "prov001", json!({"slotMinutes": 60})).await;
    let carol = app.signup_patient("carol").await;
    let (status, body) = book_as(&app, &carol, "prov001", day, "10:00").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("slot_taken")),
        "{body}"
    );
    assert_eq!(assert_no_overlap(&app, &admin, "prov001").await, 2);
}

#[tokio::test]
async fn changed_hours_flag_appointments_that_no_longer_fit_and_never_move_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, "prov001").await;
    let [alice, bob] = patients(&app).await;
    let day = monday();
    let late = booked(&app, &alice, "prov001", day, "11:00").await;
    let early = booked(&app, &bob, "prov001", day, "09:00").await;
    let before = app
        .get(&format!("/api/appointments/{late}"), Some(&admin))
        .await
        .1;

    let mut phone = app.ws(Some(&alice.tokens.token)).await;
    let reply = phone
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", alice.patient_id)}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let mut board = app.ws(Some(&admin)).await;
    let reply = board
        .call(json!({"type": "subscribe", "channel": "board:prov001"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The doctor now stops at 10:30 on Mondays: alice's 11:00 no longer fits.
    hours(
        &app,
        &admin,
        "prov001",
        json!({"availability": [{"day": "Monday", "slots": ["09:00-10:30"]}]}),
    )
    .await;
    assert_eq!(
        board.next_event().await["event"]["kind"],
        "availability_changed"
    );
    let flagged = board.next_event().await;
    assert_eq!(
        flagged["event"]["kind"], "appointment_needs_reschedule",
        "{flagged}"
    );
    assert_eq!(flagged["event"]["appointmentId"], late.as_str());
    assert_eq!(flagged["event"]["needsReschedule"], true);
    let offered: Vec<&str> = flagged["event"]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["timeSlot"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["09:30", "10:00", "09:00"], "{flagged}");
    // The patient hears it live, then as a notification offering the slots.
    let mut kinds = Vec::new();
    let mut notice = Value::Null;
    while notice.is_null() {
        let event = tokio::time::timeout(WAIT, phone.next_event())
            .await
            .expect("an event");
        let kind = event["event"]["kind"].as_str().unwrap().to_owned();
        if kind == "notification" {
            notice = event["event"].clone();
        }
        kinds.push(kind);
    }
    assert_eq!(kinds[0], "appointment_needs_reschedule");
    assert!(
        notice["body"]
            .as_str()
            .unwrap()
            .contains(&format!("Free times: {day} 09:30")),
        "{notice}"
    );

    // Kept, flagged, at the same time; listed on its own and on the board.
    let after = app
        .get(&format!("/api/appointments/{late}"), Some(&admin))
        .await
        .1;
    assert_eq!(after["needsReschedule"], true);
    assert_eq!(
        (&after["status"], &after["startUtc"]),
        (&before["status"], &before["startUtc"])
    );
    let listed = appointments(&app, &admin, "providerId=prov001&needsReschedule=true").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["appointmentId"], late.as_str());
    let own = appointments(&app, &alice.tokens.token, "needsReschedule=true").await;
    assert_eq!(own.len(), 1);
    let (_, slots) = app
        .get(
            &format!("/api/providers/prov001/slots?date={day}"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        slots["needsReschedule"][0]["appointmentId"],
        late.as_str(),
        "{slots}"
    );

    // The patient moves it to an offered slot: the flag is gone.
    let (status, body) = app
        .put(
            &format!("/api/appointments/{late}"),
            json!({"timeSlot": "10:00"}),
            &alice.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        appointments(&app, &admin, "providerId=prov001&needsReschedule=true")
            .await
            .is_empty()
    );

    // A day off flags bob's; hours back to normal clear it, time unchanged.
    hours(
        &app,
        &admin,
        "prov001",
        json!({"exceptions": [{"date": day.to_string(), "slots": []}]}),
    )
    .await;
    let listed = appointments(&app, &admin, "providerId=prov001&needsReschedule=true").await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|a| a["appointmentId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "both of that Monday's appointments: {listed:?}"
    );
    assert!(ids.contains(&early.as_str()));
    hours(
        &app,
        &admin,
        "prov001",
        json!({"exceptions": [],
        "availability": [{"day": "Monday", "slots": ["09:00-12:00"]}]}),
    )
    .await;
    assert!(
        appointments(&app, &admin, "providerId=prov001&needsReschedule=true")
            .await
            .is_empty()
    );
    let early_now = app
        .get(&format!("/api/appointments/{early}"), Some(&admin))
        .await
        .1;
    assert_eq!(early_now["timeSlot"], "09:00");
    assert_eq!(early_now["status"], "Scheduled");
}

#[tokio::test]
async fn a_no_show_frees_the_doctors_and_the_patients_time() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, "prov001").await;
    doctor(&app, &admin, "prov002").await;
    let [alice, bob] = patients(&app).await;
    let day = monday();
    let first = booked(&app, &alice, "prov001", day, "10:00").await;
    let (status, _) = book_as(&app, &alice, "prov002", day, "10:00").await;
    assert_eq!(status, 409, "the patient is busy at 10:00");
    let (status, body) = app
        .put(
            &format!("/api/appointments/{first}"),
            json!({"status": "NoShow"}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Both the patient's and the doctor's time are free again.
    let (status, body) = book_as(&app, &alice, "prov002", day, "10:00").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = book_as(&app, &bob, "prov001", day, "10:00").await;
    assert_eq!(status, 201, "{body}");
}

/// 50 patients, one wanted slot each across the morning, booked while an
/// admin flips the slot length between 30 and 15 minutes.
#[tokio::test]
async fn bookings_racing_a_slot_length_change_never_overlap() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, "prov001").await;
    let people: [Patient; 50] = patients(&app).await;
    let day = monday();
    let times: Vec<String> = (0..12)
        .map(|i| format!("{:02}:{:02}", 9 + i * 15 / 60, i * 15 % 60))
        .collect();
    let clients: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let body = booking(&p.patient_id, "prov001", day, &times[i % times.len()]);
            spawn_booking(&app, &p.tokens.token, body)
        })
        .collect();
    for minutes in [15, 30, 15, 30] {
        hours(&app, &admin, "prov001", json!({"slotMinutes": minutes})).await;
    }
    let mut created = 0;
    for client in clients {
        let (status, body) = client.await.unwrap();
        match (status, body["error"]["code"].as_str()) {
            (201, _) => created += 1,
            (409, Some("slot_taken")) | (422, Some("outside_availability")) => {}
            other => panic!("unclear refusal {other:?}: {body}"),
        }
    }
    assert!(created >= 1);
    assert_eq!(assert_no_overlap(&app, &admin, "prov001").await, created);
}

/// The doctor's actor retires and is revived by late bookings while its
/// successor already serves: the revived one forwards, nothing overlaps.
#[tokio::test]
async fn a_retired_actor_revived_by_late_bookings_forwards_to_its_successor() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, "prov001").await;
    let people: [Patient; 50] = patients(&app).await;
    let day = monday();
    let times = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"];
    let late: Vec<Value> = people[..25]
        .iter()
        .enumerate()
        .map(|(i, p)| booking(&p.patient_id, "prov001", day, times[i % times.len()]))
        .collect();
    let clients: Vec<_> = people[25..]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let body = booking(&p.patient_id, "prov001", day, times[i % times.len()]);
            spawn_booking(&app, &p.tokens.token, body)
        })
        .collect();
    let (status, handover) = app
        .post(
            "/api/test-faults/schedule-handover/prov001",
            json!({"bookings": late}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{handover}");
    let mut created = 0;
    for outcome in handover["outcomes"].as_array().unwrap() {
        match outcome.as_str() {
            Some("created") => created += 1,
            Some("slot_taken") => {}
            other => panic!("unclear outcome {other:?}"),
        }
    }
    for client in clients {
        let (status, body) = client.await.unwrap();
        match (status, body["error"]["code"].as_str()) {
            (201, _) => created += 1,
            (409, Some("slot_taken")) => {}
            other => panic!("unclear refusal {other:?}: {body}"),
        }
    }
    assert_eq!(created, times.len(), "every slot booked exactly once");
    assert_eq!(
        assert_no_overlap(&app, &admin, "prov001").await,
        times.len()
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("schedule_forwarded_total") && !l.ends_with(" 0")),
        "the revived actor forwarded: {metrics}"
    );
}
