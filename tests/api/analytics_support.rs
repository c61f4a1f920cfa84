//! What the analytics tests share: the clinic's settings, doctors with
//! hours, bookings and changes through the API, CSV answers and rates as
//! the reports round them.

use jiff::civil::Date;
use medrelay::admin::rebuild_stats;
use medrelay::config::Settings;
use serde_json::{Value, json};

use crate::helpers::*;

/// The clinic's zone in these tests: it has a DST change in spring.
pub const CLINIC: &str = "Europe/Berlin";

/// Days in `CLINIC`, bookings a year ahead, a minute's notice, no booking
/// confirmations (their e-mails would be notifications in the figures).
pub fn clinic(s: &mut Settings) {
    s.analytics.time_zone = CLINIC.into();
    s.schedule.horizon_days = 400;
    s.schedule.min_notice_minutes = 1;
    s.notifications.confirm_bookings = false;
}

/// A doctor in `zone` with the same `hours` every day.
pub async fn doctor(
    app: &TestApp,
    admin: &str,
    (id, zone, hours, slot): (&str, &str, &[&str], u32),
) {
    let body = json!({"providerId": id, "name": id, "timeZone": zone, "slotMinutes": slot,
                      "availability": daily_availability(hours)});
    let (status, reply) = app.post("/api/providers", body, Some(admin)).await;
    assert_eq!(status, 201, "{reply}");
}

/// Books and returns the appointment id.
pub async fn book(
    app: &TestApp,
    admin: &str,
    patient: &str,
    (provider, date, time): (&str, Date, &str),
) -> String {
    let body = json!({"patientId": patient, "providerId": provider,
                      "appointmentDate": date.to_string(), "timeSlot": time});
    let (status, reply) = app.post("/api/appointments", body, Some(admin)).await;
    assert_eq!(status, 201, "{provider} {date} {time}: {reply}");
    reply["appointmentId"].as_str().unwrap().to_owned()
}

/// Changes an appointment (`PUT`), which must succeed.
pub async fn set(app: &TestApp, admin: &str, id: &str, change: Value) {
    let path = format!("/api/appointments/{id}");
    let (status, body) = app.put(&path, change, admin).await;
    assert_eq!(status, 200, "{body}");
}

/// A report asked as CSV, which must answer 200 with CSV.
pub async fn csv(app: &TestApp, token: &str, path: &str) -> String {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// A doctor and a patient are refused the report at `path` (403), and so
/// is a call with no token (401).
pub async fn only_admins_read(app: &TestApp, admin: &str, path: &str) {
    let doctor = doctor_account(app, admin, "house", "prv_house").await;
    let patient = app.signup_patient("ana").await.tokens.token;
    for token in [&doctor, &patient] {
        let (status, body) = app.get(path, Some(token)).await;
        assert_eq!(status, 403, "{body}");
    }
    assert_eq!(app.get(path, None).await.0, 401, "no token");
}

/// `part ÷ whole` as the reports give rates: half up to 4 places, null
/// with nothing to divide by.
pub fn rate(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(((part * 20_000 + whole) / (2 * whole)) as f64 / 10_000.0)
    }
}

/// Stops the server, asserts that a recount offline (with `tweak`'s
/// settings) changes nothing, and restarts it with them. Returns the
/// server, the admin's new token and how many figure rows the recount
/// found.
pub async fn recount_and_restart(
    mut app: TestApp,
    tweak: impl Fn(&mut Settings),
) -> (TestApp, String, usize) {
    app.stop().await;
    let mut settings = test_settings(&app.data_dir);
    tweak(&mut settings);
    let (rows, changed) = rebuild_stats(&settings).await.unwrap();
    assert_eq!(changed, 0, "the live figures equal a recount ({rows} rows)");
    let app = app.restart(tweak).await;
    let admin = app.admin_token().await;
    (app, admin, rows)
}
