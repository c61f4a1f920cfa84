//! Calendar feeds, read back by a real iCalendar parser (Python's
//! `icalendar`, which the test command installs): events, UIDs, SEQUENCE
//! after a move, CANCELLED after a cancel, a VTIMEZONE that places a
//! booking on a DST change day at the right instant, 304 on an unchanged
//! feed, disabled and foreign feeds.

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::helpers::*;

const TZ: &str = "Europe/Berlin";

/// What `tests/fixtures/ics_check.py` makes of an iCalendar text.
pub fn parse_ics(text: &str) -> Value {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ics_check.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the iCalendar parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// GET a feed URL: status, ETag and text.
async fn fetch(app: &TestApp, url: &str, etag: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = app.http.get(url);
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    let tag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    if status == 200 {
        assert_eq!(
            response.headers()["content-type"],
            "text/calendar; charset=utf-8"
        );
    }
    (status, tag, response.text().await.unwrap())
}

/// The next day a DST change happens in `TZ`, at least 3 days ahead.
fn dst_change_day() -> Date {
    let tz = TimeZone::get(TZ).unwrap();
    let at = jiff::Timestamp::now().checked_add(96.hours()).unwrap();
    let change = tz.following(at).next().unwrap();
    change.timestamp().to_zoned(tz).date()
}

fn event<'a>(feed: &'a Value, appointment: &str) -> Option<&'a Value> {
    let uid = format!("{appointment}@medrelay");
    feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["uid"] == uid)
}

struct Clinic {
    app: TestApp,
    admin: String,
    doctor: String,
    ada: Patient,
    bob: Patient,
}

async fn clinic() -> Clinic {
    clinic_with(|_| {}).await
}

/// Dr. Cal (Europe/Berlin, open all day, 60-minute slots), Ada and Bob,
/// bookable 400 days ahead, with `tweak` applied to the settings.
async fn clinic_with(tweak: impl FnOnce(&mut medrelay::config::Settings)) -> Clinic {
    let app = spawn_app_with(|s| {
        s.schedule.horizon_days = 400;
        tweak(s);
    })
    .await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/api/auth/signup",
            json!({"username": "drcal", "email": "drcal@example.org", "password": PASSWORD,
                   "role": "doctor", "providerId": "cal", "name": "Dr. Cal", "timeZone": TZ}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .put(
            "/api/providers/cal",
            json!({"availability": all_day_availability(), "slotMinutes": 60}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let doctor = app.login("drcal", PASSWORD).await.token;
    let ada = app
        .signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    let bob = app
        .signup_patient_with("bob", json!({"name": "Bob Secret"}))
        .await;
    Clinic {
        app,
        admin,
        doctor,
        ada,
        bob,
    }
}

async fn book(app: &TestApp, patient: &Patient, date: Date, slot: &str) -> String {
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": patient.patient_id, "providerId": "cal",
                   "appointmentDate": date.to_string(), "timeSlot": slot}),
            Some(&patient.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["appointmentId"].as_str().unwrap().to_owned()
}

async fn create_feed(app: &TestApp, token: &str, body: Value) -> String {
    let (status, created) = app.post("/api/calendar/feeds", body, Some(token)).await;
    assert_eq!(status, 201, "{created}");
    created["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn feeds_follow_bookings_moves_and_cancellations_across_a_dst_change() {
    let Clinic {
        app,
        admin,
        doctor,
        ada,
        bob,
    } = clinic().await;
    let day = dst_change_day();
    let on_change = book(&app, &ada, day, "09:00").await;
    let moving = book(&app, &ada, day.checked_add(1.day()).unwrap(), "10:00").await;
    let cancelling = book(&app, &ada, day.checked_add(2.days()).unwrap(), "11:00").await;
    let bobs = book(&app, &bob, day, "10:00").await;

    let ada_url = create_feed(&app, &ada.tokens.token, json!({})).await;
    assert!(ada_url.contains("/api/calendar/cal_") && ada_url.ends_with(".ics"));
    let (status, etag, text) = fetch(&app, &ada_url, None).await;
    assert_eq!(status, 200);
    let feed = parse_ics(&text);
    assert_eq!(feed["zones"], json!([TZ]), "{text}");
    assert_eq!(feed["events"].as_array().unwrap().len(), 3, "{text}");
    // 09:00 on the change day, placed by the file's own VTIMEZONE at the
    // instant the server booked.
    let (_, booked) = app
        .get(
            &format!("/api/appointments/{on_change}"),
            Some(&ada.tokens.token),
        )
        .await;
    let e = event(&feed, &on_change).unwrap();
    assert_eq!(e["tzid"], TZ);
    assert_eq!(e["local"], format!("{day}T09:00:00"));
    let start_utc: jiff::Timestamp = booked["startUtc"].as_str().unwrap().parse().unwrap();
    let expected = day
        .at(9, 0, 0, 0)
        .to_zoned(TimeZone::get(TZ).unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(start_utc, expected);
    assert_eq!(
        e["startUtc"],
        expected.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(e["sequence"], 0);
    assert_eq!(e["status"], "CONFIRMED");
    assert_eq!(e["summary"], "Appointment with Dr. Cal");
    assert!(
        event(&feed, &bobs).is_none(),
        "a patient sees only their own"
    );
    assert!(!text.contains("Bob"), "{text}");

    // Unchanged: 304 with the same tag, no body.
    let etag = etag.expect("an ETag");
    let (status, again, body) = fetch(&app, &ada_url, Some(&etag)).await;
    assert_eq!(
        (status, again.as_deref(), body.as_str()),
        (304, Some(etag.as_str()), "")
    );

    // A move raises SEQUENCE; a cancellation marks it CANCELLED.
    let (status, body) = app
        .put(
            &format!("/api/appointments/{moving}"),
            json!({"timeSlot": "12:00"}),
            &ada.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(
            &format!("/api/appointments/{cancelling}"),
            json!({"status": "Cancelled"}),
            &ada.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, new_tag, text) = fetch(&app, &ada_url, Some(&etag)).await;
    assert_eq!(status, 200, "a change makes the old tag stale");
    assert_ne!(new_tag.as_deref(), Some(etag.as_str()));
    let feed = parse_ics(&text);
    let moved = event(&feed, &moving).unwrap();
    assert_eq!(moved["sequence"], 1);
    assert!(moved["local"].as_str().unwrap().ends_with("T12:00:00"));
    let cancelled = event(&feed, &cancelling).unwrap();
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["sequence"].as_i64()),
        (Some("CANCELLED"), Some(1))
    );

    // The doctor's feed: every patient, unnamed unless asked for.
    let doctor_url = create_feed(&app, &doctor, json!({})).await;
    let (_, _, text) = fetch(&app, &doctor_url, None).await;
    let feed = parse_ics(&text);
    assert_eq!(feed["events"].as_array().unwrap().len(), 4, "{text}");
    assert!(event(&feed, &bobs).is_some());
    assert!(!text.contains("Ada") && !text.contains("Bob"), "{text}");
    let named_url = create_feed(&app, &doctor, json!({"showPatientNames": true})).await;
    let (status, _, _) = fetch(&app, &doctor_url, None).await;
    assert_eq!(status, 404, "creating again replaces the old URL");
    let (_, _, text) = fetch(&app, &named_url, None).await;
    let feed = parse_ics(&text);
    assert_eq!(
        event(&feed, &bobs).unwrap()["summary"],
        "Appointment: Bob Secret"
    );
    let (status, view) = app.get("/api/calendar/feeds", Some(&doctor)).await;
    assert_eq!(
        (status, &view["showPatientNames"]),
        (200, &json!(true)),
        "{view}"
    );
    assert!(view.get("url").is_none(), "the URL is shown once");

    // Changes the owner's own channel does not carry still change the tag:
    // a patient renamed under a doctor's named feed, a doctor renamed under
    // a patient's feed.
    let (_, named_tag, _) = fetch(&app, &named_url, None).await;
    let (_, ada_tag, _) = fetch(&app, &ada_url, None).await;
    let (status, body) = app
        .put(
            &format!("/api/patients/{}", bob.patient_id),
            json!({"name": "Bob Renamed"}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, text) = fetch(&app, &named_url, named_tag.as_deref()).await;
    assert_eq!(status, 200);
    assert!(text.contains("Appointment: Bob Renamed"), "{text}");
    let (status, body) = app
        .put("/api/providers/cal", json!({"name": "Dr. Renamed"}), &admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, text) = fetch(&app, &ada_url, ada_tag.as_deref()).await;
    assert_eq!(status, 200);
    assert!(text.contains("Appointment with Dr. Renamed"), "{text}");
}

#[tokio::test]
async fn feeds_refuse_strangers_and_die_when_disabled() {
    let Clinic {
        app, admin, ada, ..
    } = clinic().await;
    let (status, body) = app
        .post("/api/calendar/feeds", json!({}), Some(&admin))
        .await;
    assert_eq!(status, 403, "an admin has no calendar of their own: {body}");
    let (status, body) = app
        .post(
            "/api/calendar/feeds",
            json!({"showPatientNames": true}),
            Some(&ada.tokens.token),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("showPatientNames")),
        "{body}"
    );
    let (status, _) = app.post("/api/calendar/feeds", json!({}), None).await;
    assert_eq!(status, 401);

    let url = create_feed(&app, &ada.tokens.token, json!({})).await;
    let (status, _, _) = fetch(&app, &url, None).await;
    assert_eq!(status, 200);
    // Guessed, truncated and suffix-less tokens find nothing.
    let token = url.rsplit('/').next().unwrap().trim_end_matches(".ics");
    for bad in [
        format!("{}x.ics", &token[..token.len() - 1]),
        format!("{}.ics", &token[..10]),
        token.to_owned(),
        "feeds.ics".to_owned(),
    ] {
        let (status, body) = app.get(&format!("/api/calendar/{bad}"), None).await;
        assert_eq!(status, 404, "{bad}: {body}");
    }
    let response = app
        .http
        .delete(app.url("/api/calendar/feeds"))
        .bearer_auth(&ada.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _, _) = fetch(&app, &url, None).await;
    assert_eq!(status, 404, "a disabled feed is gone");
    let (status, _) = app
        .get("/api/calendar/feeds", Some(&ada.tokens.token))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_doctors_named_feed_is_an_audited_export() {
    let Clinic {
        app,
        admin,
        doctor,
        ada,
        ..
    } = clinic().await;
    book(&app, &ada, dst_change_day(), "09:00").await;
    let url = create_feed(&app, &doctor, json!({"showPatientNames": true})).await;
    let (status, _, text) = fetch(&app, &url, None).await;
    assert_eq!(status, 200);
    assert!(text.contains("Ada Lovelace"), "{text}");
    let (status, log) = app
        .get(
            &format!("/api/patients/{}/access-log", ada.patient_id),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    assert!(
        log.to_string().contains("CalendarFeed"),
        "the export is in Ada's access log: {log}"
    );
}

#[tokio::test]
async fn a_deleted_patients_feed_is_gone_and_feeds_are_bounded() {
    let Clinic {
        app, admin, ada, ..
    } = clinic_with(|s| s.calendar.max_events = 2).await;
    let day = dst_change_day();
    for slot in ["09:00", "10:00", "11:00"] {
        book(&app, &ada, day, slot).await;
    }
    let url = create_feed(&app, &ada.tokens.token, json!({})).await;
    let (status, _, text) = fetch(&app, &url, None).await;
    assert_eq!(status, 200);
    let feed = parse_ics(&text);
    let starts: Vec<&str> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["local"].as_str().unwrap())
        .collect();
    let first_two = [format!("{day}T09:00:00"), format!("{day}T10:00:00")];
    assert_eq!(starts, first_two, "calendar.max_events keeps the earliest");

    let response = app
        .http
        .delete(app.url(&format!("/api/patients/{}", ada.patient_id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _, _) = fetch(&app, &url, None).await;
    assert_eq!(status, 404, "a deleted patient's feed is hidden with them");
}

#[tokio::test]
async fn a_feed_downloaded_too_often_is_limited_alone() {
    let Clinic { app, ada, bob, .. } = clinic_with(|s| {
        s.calendar.downloads_per_minute = 1;
        s.calendar.download_burst = 2;
    })
    .await;
    let adas = create_feed(&app, &ada.tokens.token, json!({})).await;
    let bobs = create_feed(&app, &bob.tokens.token, json!({})).await;
    for _ in 0..2 {
        assert_eq!(fetch(&app, &adas, None).await.0, 200);
    }
    let response = app.http.get(&adas).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());
    // Another feed, and the owner's own use of the API, are untouched.
    assert_eq!(fetch(&app, &bobs, None).await.0, 200);
    let (status, _) = app
        .get("/api/calendar/feeds", Some(&ada.tokens.token))
        .await;
    assert_eq!(status, 200);
}
