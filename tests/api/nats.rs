//! NATS against a real `nats-server` (JetStream on, a free port, a temp
//! store): events in the stream, commands over request/reply, an outage, a
//! crash, and a board replica.
//!
//! The server itself is [`crate::nats_harness::NatsServer`]; this module
//! holds the shared set-up, and the tests are in its submodules.

mod commands;
mod replica;
mod stream;

use jiff::ToSpan;
use medrelay::config::Settings;
use serde_json::{Value, json};

use crate::helpers::*;

fn with_nats(url: String) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.nats.url = url;
        s.nats.request_timeout_ms = 1_000;
    }
}

/// A day far enough ahead for the booking rules, and `n` half-hour slots.
fn slots(n: usize) -> Vec<(String, String)> {
    let first = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .unwrap();
    (0..n)
        .map(|i| {
            let day = first.checked_add(((i / 48) as i64).days()).unwrap();
            let minutes = (i % 48) * 30;
            (
                day.to_string(),
                format!("{:02}:{:02}", minutes / 60, minutes % 60),
            )
        })
        .collect()
}

async fn all_day_provider(app: &TestApp, admin: &str, id: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": id, "name": "Dr. Nats", "timeZone": "UTC",
                   "availability": all_day_availability()}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn booking(patient: &str, provider: &str, slot: &(String, String)) -> Value {
    json!({"patientId": patient, "providerId": provider,
           "appointmentDate": slot.0, "timeSlot": slot.1})
}
