//! Doctor schedules over REST and WebSocket: providers, slots, bookings,
//! rules, races, DST, restarts, boards.
//!
//! This module holds the shared set-up (a provider, bookings, dates); the
//! tests are in its submodules.

mod booking;
mod commands;
mod dst;
mod holds;
mod providers;

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

/// `patient` books `provider` on `date` at `slot` for themselves.
async fn book_own(
    app: &TestApp,
    patient: &Patient,
    provider: &str,
    date: Date,
    slot: &str,
) -> (u16, Value) {
    book(
        app,
        &patient.tokens.token,
        booking(&patient.patient_id, provider, date, slot),
    )
    .await
}

/// A socket of `token`'s subscribed to `provider`'s board.
async fn watch_board(app: &TestApp, token: &str, provider: &str) -> Ws {
    let mut board = app.ws(Some(token)).await;
    let reply = board
        .call(json!({"type": "subscribe", "channel": format!("board:{provider}")}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    board
}

async fn delete(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.delete(path, token).await
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
