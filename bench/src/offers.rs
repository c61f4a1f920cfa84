//! Part of the `schedule` benchmark: how long a waitlisted patient waits
//! for the offer of a slot someone cancelled.
//!
//! Setup: each of the 100 doctors gets [`PER_DOCTOR`] appointments on one
//! day [`DAYS_AHEAD`] days ahead (far from every other benchmark's
//! bookings), booked for patient `d` over HTTP, and as many waitlisted
//! patients wanting any time that day (patients `100 + (d + j) % 100`: an
//! entry holds one live offer at a time, so each cancellation has someone
//! to go to); an admin socket per waiting patient subscribes to that
//! patient's channel.
//!
//! Measured: the appointments are cancelled over HTTP at [`RATE`] per
//! second (open loop, round robin over the doctors), each from its own
//! task; a cancellation's latency runs from just before its request is
//! sent to the arrival of the `offer_made` event for that slot on the
//! waitlisted patient's socket (matched by doctor and slot start). p50 and
//! p99, and offers that never came. Target: p99 <= 50 ms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::figures::Figure;
use crate::server::Server;
use crate::stats::{micros_between, percentile};

/// Doctors (the schedule benchmark's `prov000`..`prov099`).
const DOCTORS: usize = crate::booking::DOCTORS as usize;

/// Appointments per doctor, all cancelled.
const PER_DOCTOR: usize = 10;

/// Cancellations per second.
const RATE: f64 = 200.0;

/// The day the offers are about.
const DAYS_AHEAD: i64 = 900;

/// The target, p99, in milliseconds.
const TARGET_OFFER_MS: f64 = 50.0;

/// A slot: its doctor and start, as the events write them.
type SlotKey = (String, String);

/// Runs it; `token` is the admin's, `patients` the patients' ids (at least
/// 200: the first 100 book, the next 100 wait).
///
/// # Errors
/// When setup, a cancellation or a socket fails.
pub async fn run(server: &Server, token: &str, patients: &[String]) -> anyhow::Result<Vec<Figure>> {
    ensure!(
        patients.len() >= 2 * DOCTORS,
        "the offers benchmark needs 200 patients"
    );
    let day = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(DAYS_AHEAD))?;
    eprintln!(
        "schedule: offers: {DOCTORS} waitlists, {} appointments ...",
        DOCTORS * PER_DOCTOR
    );
    // Each doctor's line: as many patients as it will have cancellations
    // (an entry has one live offer at a time), patient 100 + d first.
    let mut joined = stream::iter(0..DOCTORS * PER_DOCTOR)
        .map(|k| {
            let (d, j) = (k % DOCTORS, k / DOCTORS);
            let body = json!({"patientId": patients[DOCTORS + (d + j) % DOCTORS],
                              "from": day.to_string(), "to": day.to_string()});
            let path = format!("/api/providers/prov{d:03}/waitlist");
            async move { (path.clone(), server.post(&path, &body, Some(token)).await) }
        })
        .buffered(16);
    while let Some((path, done)) = joined.next().await {
        let (status, reply) = done?;
        ensure!(status == 201, "joining {path}: {status} {reply}");
    }
    drop(joined);
    let first = day.at(0, 0, 0, 0);
    let mut booked = stream::iter(0..DOCTORS * PER_DOCTOR)
        .map(|k| {
            let (d, n) = (k % DOCTORS, k / DOCTORS);
            let at = first + jiff::SignedDuration::from_mins(5 * n as i64);
            let body = json!({
                "patientId": patients[d], "providerId": format!("prov{d:03}"),
                "appointmentDate": at.date().to_string(),
                "timeSlot": at.time().strftime("%H:%M").to_string(),
            });
            async move { server.post("/api/appointments", &body, Some(token)).await }
        })
        .buffered(16);
    let mut appointments = Vec::with_capacity(DOCTORS * PER_DOCTOR);
    while let Some(done) = booked.next().await {
        let (status, reply) = done?;
        ensure!(status == 201, "booking for the offers: {status} {reply}");
        let id = reply["appointmentId"]
            .as_str()
            .context("no appointmentId")?;
        appointments.push(id.to_owned());
    }
    drop(booked);

    // One socket per waitlisted patient, read by its own task.
    let arrived: Arc<Mutex<HashMap<SlotKey, Instant>>> = Arc::default();
    let mut readers = Vec::with_capacity(DOCTORS);
    for d in 0..DOCTORS {
        let mut socket = crate::ws::connect_medrelay(server.addr, token).await?;
        let channel = format!("patient:{}", patients[DOCTORS + d]);
        let command = json!({"id": "s", "type": "subscribe", "channel": channel});
        socket.send(Message::text(command.to_string())).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = crate::ws::next_text(&mut socket, deadline).await?;
            let frame: Value = serde_json::from_str(text.as_str())?;
            if frame["re"] == "s" {
                ensure!(frame["ok"] == true, "subscribing {channel}: {frame}");
                break;
            }
        }
        let arrived = arrived.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let at = Instant::now();
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let event = &frame["event"];
                if event["kind"] == "offer_made" {
                    let key = (
                        event["providerId"].as_str().unwrap_or_default().to_owned(),
                        event["slot"]["start"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    arrived.lock().expect("not poisoned").insert(key, at);
                }
            }
        }));
    }

    eprintln!(
        "schedule: offers: cancelling {} appointments at {RATE}/s ...",
        appointments.len()
    );
    let http = reqwest::Client::new();
    let mut sends = Vec::with_capacity(appointments.len());
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    for (k, id) in appointments.iter().enumerate() {
        tick.tick().await;
        let (d, n) = (k % DOCTORS, k / DOCTORS);
        let start = (first + jiff::SignedDuration::from_mins(5 * n as i64))
            .to_zoned(jiff::tz::TimeZone::UTC)?
            .timestamp()
            .to_string();
        let key = (format!("prov{d:03}"), start);
        let request = http
            .delete(server.url(&format!("/api/appointments/{id}")))
            .bearer_auth(token);
        let sent = Instant::now();
        sends.push((key, sent, tokio::spawn(async move { request.send().await })));
    }
    let mut cancelled = HashMap::with_capacity(sends.len());
    for (key, sent, task) in sends {
        let response = task.await??;
        ensure!(
            response.status() == 200,
            "cancelling: {}",
            response.status()
        );
        cancelled.insert(key, sent);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for reader in readers {
        reader.abort();
    }
    let arrived = arrived.lock().expect("not poisoned").clone();
    let mut latencies: Vec<u32> = cancelled
        .iter()
        .filter_map(|(key, sent)| arrived.get(key).map(|at| micros_between(*sent, *at)))
        .collect();
    latencies.sort_unstable();
    let missing = cancelled.len() - latencies.len();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let max = latencies.last().copied();
    let ms = |v: Option<u32>| v.map_or(f64::INFINITY, |us| f64::from(us) / 1000.0);
    println!(
        "offers: cancellation to offer_made on the waitlisted patient's socket ({} cancellations at {RATE}/s, {DOCTORS} doctors)",
        cancelled.len()
    );
    println!("| p50 | p99 | max | missing |");
    println!("|---|---|---|---|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.2} ms | {missing} |",
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "target: offer p99 <= {TARGET_OFFER_MS} ms: {}",
        crate::stats::verdict(ms(p99) <= TARGET_OFFER_MS && missing == 0)
    );
    let p99_ms = if missing == 0 { ms(p99) } else { f64::INFINITY };
    Ok(vec![Figure::at_most(
        "schedule.offer_p99",
        p99_ms,
        "ms",
        TARGET_OFFER_MS,
    )])
}
