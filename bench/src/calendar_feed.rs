//! Part of the `schedule` benchmark: how long a calendar feed takes to
//! generate for a doctor with [`APPOINTMENTS`] appointments in its range.
//!
//! Setup books doctor `feed000` (5-minute slots, all day, UTC) solid for
//! [`APPOINTMENTS`] slots from 00:00 UTC [`DAYS_AHEAD`] days ahead (far
//! past any slot the booking runs reach, so no patient is busy there) over
//! HTTP, 16 requests at a time, patients taken round robin (a patient's
//! bookings are 200 slots apart, so none overlap), signs up the doctor's account and creates its
//! feed with patients' names shown: the costliest feed (every name is
//! unsealed, and the export is audited before the answer).
//!
//! Measured: [`FETCHES`] sequential `GET`s of the feed without
//! `If-None-Match` (every one generated in full), from sending the request
//! to reading the last byte (about 2.8 MB); p50 and p99; and the server's
//! own mean from its `calendar_feed_seconds` histogram. Then as many with the `ETag`
//! (each answered 304), p50. Target: generation p99 <= 20 ms.

use tokio::time::Instant;

use anyhow::{Context, ensure};
use futures_util::{StreamExt, stream};
use serde_json::json;

use crate::availability::all_day_availability;
use crate::figures::Figure;
use crate::server::Server;
use crate::stats::{micros_between, percentile};

/// Appointments in the doctor's feed.
pub const APPOINTMENTS: usize = 5_000;

/// How far ahead the doctor's appointments are (the benchmark's server
/// books up to ten years ahead).
const DAYS_AHEAD: i64 = 1000;

/// Feed downloads measured (each way).
const FETCHES: usize = 40;

/// The target for a full feed, p99, in milliseconds.
const TARGET_FEED_MS: f64 = 20.0;

/// Runs it; `token` is the admin's, `patients` the patients' ids.
///
/// # Errors
/// When setup or a download fails.
pub async fn run(server: &Server, token: &str, patients: &[String]) -> anyhow::Result<Vec<Figure>> {
    ensure!(!patients.is_empty(), "the feed benchmark needs patients");
    let (status, reply) = server
        .post(
            "/api/auth/signup",
            &json!({"username": "feeddoc", "email": "feeddoc@example.org",
                    "password": "bench-password-1", "role": "doctor", "providerId": "feed000",
                    "name": "Dr Feed", "timeZone": "UTC"}),
            Some(token),
        )
        .await?;
    ensure!(
        status == 201,
        "signing up the feed doctor: {status} {reply}"
    );
    let (status, reply) = server
        .put(
            "/api/providers/feed000",
            &json!({"slotMinutes": 5, "availability": all_day_availability()}),
            token,
        )
        .await?;
    ensure!(status == 200, "opening feed000's hours: {status} {reply}");
    eprintln!("schedule: feed: booking {APPOINTMENTS} appointments for feed000 ...");
    let first = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(DAYS_AHEAD))?
        .at(0, 0, 0, 0);
    let mut booked = stream::iter(0..APPOINTMENTS)
        .map(|k| {
            let at = first + jiff::SignedDuration::from_mins(5 * k as i64);
            let body = json!({
                "patientId": patients[k % patients.len()], "providerId": "feed000",
                "appointmentDate": at.date().to_string(),
                "timeSlot": at.time().strftime("%H:%M").to_string(),
            });
            async move { server.post("/api/appointments", &body, Some(token)).await }
        })
        .buffer_unordered(16);
    while let Some(done) = booked.next().await {
        let (status, reply) = done?;
        ensure!(status == 201, "booking feed000: {status} {reply}");
    }
    drop(booked);

    let doctor = server.login("feeddoc", "bench-password-1").await?;
    let (status, reply) = server
        .post(
            "/api/calendar/feeds",
            &json!({"showPatientNames": true}),
            Some(&doctor),
        )
        .await?;
    ensure!(status == 201, "creating the feed: {status} {reply}");
    let url = reply["url"].as_str().context("no feed url")?.to_owned();
    let http = reqwest::Client::new();
    eprintln!("schedule: feed: downloading the feed {FETCHES} times each way ...");

    let mut full = Vec::with_capacity(FETCHES);
    let mut etag = String::new();
    for _ in 0..FETCHES {
        let sent = Instant::now();
        let response = http.get(&url).send().await?;
        ensure!(response.status() == 200, "feed: {}", response.status());
        etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .context("no ETag")?
            .to_owned();
        let text = response.text().await?;
        full.push(micros_between(sent, Instant::now()));
        let events = text.matches("BEGIN:VEVENT").count();
        ensure!(events == APPOINTMENTS, "the feed holds {events} events");
    }
    let mut unchanged = Vec::with_capacity(FETCHES);
    for _ in 0..FETCHES {
        let sent = Instant::now();
        let response = http.get(&url).header("if-none-match", &etag).send().await?;
        ensure!(
            response.status() == 304,
            "unchanged feed: {}",
            response.status()
        );
        response.bytes().await?;
        unchanged.push(micros_between(sent, Instant::now()));
    }
    let metrics = server.metrics(token).await?;
    let server_ms = crate::server::metric(&metrics, "calendar_feed_seconds_sum")
        .zip(crate::server::metric(
            &metrics,
            "calendar_feed_seconds_count",
        ))
        .map(|(sum, n)| sum / n * 1000.0);
    full.sort_unstable();
    unchanged.sort_unstable();
    let ms = |v: &[u32], p: f64| f64::from(percentile(v, p).unwrap_or(u32::MAX)) / 1000.0;
    println!("calendar feed of {APPOINTMENTS} appointments ({FETCHES} downloads each way)");
    println!("| download | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| full (names, audited) | {:.2} | {:.2} |",
        ms(&full, 0.5),
        ms(&full, 0.99)
    );
    println!(
        "| unchanged (304) | {:.2} | {:.2} |",
        ms(&unchanged, 0.5),
        ms(&unchanged, 0.99)
    );
    if let Some(ms) = server_ms {
        println!("server side (calendar_feed_seconds), full feeds: mean {ms:.2} ms");
    }
    Ok(vec![Figure::at_most(
        "schedule.feed_p99",
        ms(&full, 0.99),
        "ms",
        TARGET_FEED_MS,
    )])
}
