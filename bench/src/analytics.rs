//! `analytics`: the appointments and billing reports over a year of history.
//!
//! A store is seeded offline with N appointments (500,000) over the past
//! 365 days for 100 doctors with weekday hours, in a mix of outcomes
//! (completed, no-shows, early and late cancellations, some moved), and P
//! bills with one payment each (200,000; see [`billing_seed`]). Only the
//! records are written: the release server, started on the store, finds
//! figures it never counted and recounts them from the records before it
//! serves (timed, as the start-up time). Then the appointments report is
//! asked R times for the whole year in month buckets for all doctors, R
//! times in day buckets for one doctor, and the billing report (with its
//! A/R aging) R times for the year in month buckets. Target: each p99 at
//! most 50 ms.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Args as ClapArgs;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::hub::EventHub;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::store::{Store, StoreConfig, WriteBatch};
use medrelay_protocol::schedule::{
    AppointmentId, AppointmentStatus, ClockTime, HistoryAction, HistoryEntry, SlotTime,
};
use medrelay_protocol::{PatientId, ProviderId};
use serde_json::json;

mod billing_seed;

use crate::availability::daily_availability;
use crate::figures::Figure;
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server, locate_binary};
use crate::stats::{ms, percentile};

/// The store file inside a data folder (as the server names it).
const DB_FILE: &str = "medrelay.redb";
const DOCTORS: usize = 100;

/// Options of `analytics`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Appointments seeded over the past year.
    #[arg(long, default_value_t = 500_000)]
    appointments: usize,
    /// Bills seeded over the past year, each with one payment.
    #[arg(long, default_value_t = 200_000)]
    payments: usize,
    /// Requests of each report.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// The medrelay binary (default: next to this one).
    #[arg(long = "server-bin", value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
}

/// Seeds, starts, asks; returns the figures.
///
/// # Errors
/// When the server cannot start or a report fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    let binary = locate_binary(args.binary.as_deref())?;
    ensure!(args.requests > 0, "--requests must be at least 1");
    let dir = tempfile::tempdir().context("creating a data folder")?;
    let started = Instant::now();
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = today.checked_sub(365.days())?;
    seed(dir.path(), args.appointments, first).await?;
    billing_seed::seed(
        &dir.path().join(DB_FILE),
        &dir.path().join("phi.key"),
        args.payments,
        first,
    )
    .await?;
    eprintln!(
        "analytics: seeded {} appointments and {} bills and payments in {:.1} s ({:.0} MiB on disk)",
        args.appointments,
        args.payments,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(dir.path().join(DB_FILE))?.len() as f64 / 1_048_576.0
    );
    let spawned = Instant::now();
    let server = Server::start_in(&binary, dir, Vec::new()).await?;
    let start_secs = spawned.elapsed().as_secs_f64();
    let token = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;

    let year = format!("from={first}&to={today}");
    let months = ask(
        &server,
        &token,
        &format!("{year}&groupBy=month"),
        args.requests,
    )
    .await?;
    let one = ask(
        &server,
        &token,
        &format!("{year}&groupBy=day&providerId=prv_a000"),
        args.requests,
    )
    .await?;
    let billing = ask(
        &server,
        &token,
        &format!("billing?{year}&groupBy=month"),
        args.requests,
    )
    .await?;
    let doctor = ask(
        &server,
        &token,
        &format!("providers/prv_a000?{year}&groupBy=month"),
        args.requests,
    )
    .await?;
    server.stop().await?;

    println!();
    println!(
        "analytics: reports over {} appointments ({DOCTORS} doctors) and {} bills and payments, one year",
        args.appointments, args.payments
    );
    println!("{:<44} {:>10} {:>10}", "report", "p50", "p99");
    for (name, (sorted, _)) in [
        ("appointments, month buckets, all doctors", &months),
        ("appointments, day buckets, one doctor", &one),
        ("billing with A/R aging, month buckets", &billing),
        ("one doctor's activity, month buckets", &doctor),
    ] {
        println!(
            "{name:<44} {:>10} {:>10}",
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.99))
        );
    }
    println!("start-up with the recount of every figure: {start_secs:.2} s");
    let p99 = |(sorted, _): &(Vec<u32>, usize)| {
        f64::from(percentile(sorted, 0.99).unwrap_or(u32::MAX)) / 1000.0
    };
    Ok(vec![
        Figure::at_most("analytics.report_months_p99", p99(&months), "ms", 50.0),
        Figure::at_most(
            "analytics.report_one_doctor_days_p99",
            p99(&one),
            "ms",
            50.0,
        ),
        Figure::at_most(
            "analytics.report_billing_months_p99",
            p99(&billing),
            "ms",
            50.0,
        ),
        Figure::at_most(
            "analytics.report_provider_months_p99",
            p99(&doctor),
            "ms",
            50.0,
        ),
        Figure::plain("analytics.start_with_recount", start_secs, "s", false),
    ])
}

/// Asks a report (`appointments?...` unless the query names another) `n`
/// times; returns the sorted latencies (µs) and the number of rows it answered.
async fn ask(
    server: &Server,
    token: &str,
    query: &str,
    n: usize,
) -> anyhow::Result<(Vec<u32>, usize)> {
    let path = if query.contains('?') {
        query.to_owned()
    } else {
        format!("appointments?{query}")
    };
    let url = server.url(&format!("/api/analytics/{path}"));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut took = Vec::with_capacity(n);
    let mut rows = 0;
    for _ in 0..n {
        let sent = Instant::now();
        let response = http.get(&url).bearer_auth(token).send().await?;
        ensure!(
            response.status() == 200,
            "report answered {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        took.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        rows = body["rows"].as_array().map_or(0, Vec::len);
    }
    ensure!(rows > 0, "the report was empty");
    took.sort_unstable();
    Ok((took, rows))
}

/// Writes the doctors and `count` appointments spread over the 365 days
/// from `first`, weekdays 08:00-18:00 UTC, half-hour slots.
async fn seed(dir: &Path, count: usize, first: jiff::civil::Date) -> anyhow::Result<()> {
    let store = Store::open(
        &dir.join(DB_FILE),
        StoreConfig::default(),
        EventHub::new(16),
    )?;
    let now = Timestamp::now();
    let mut batch = WriteBatch::new();
    for d in 0..DOCTORS {
        let doctor: ProviderRecord = serde_json::from_value(json!({
            "providerId": format!("prv_a{d:03}"), "name": format!("Dr. Year {d}"),
            "timeZone": "UTC", "createdAt": now.to_string(), "slotMinutes": 30,
            "availability": daily_availability(&["08:00-18:00"]),
        }))?;
        batch.put(doctor.provider_id.as_str(), &doctor);
    }
    store.write(batch).await?;
    let mut batch = WriteBatch::new();
    for i in 0..count {
        // Appointment i: doctor i % 100, then day and slot in turn.
        let doctor = ProviderId::parse(&format!("prv_a{:03}", i % DOCTORS))?;
        let nth = i / DOCTORS;
        let date = first.checked_add(i64::try_from(nth % 365)?.days())?;
        let minute = 8 * 60 + u16::try_from((nth / 365) % 20)? * 30;
        let start = date
            .at(0, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)?
            .timestamp()
            + SignedDuration::from_mins(i64::from(minute));
        let booked = start - SignedDuration::from_hours(i64::try_from(1 + i % 700)?);
        let mut history = vec![entry(booked, HistoryAction::Booked)];
        let status = match i % 20 {
            0..=13 => AppointmentStatus::Completed,
            14 | 15 => AppointmentStatus::NoShow,
            16 | 17 => AppointmentStatus::Cancelled,
            _ => AppointmentStatus::Scheduled,
        };
        if i % 7 == 0 {
            history.push(entry(booked, HistoryAction::Rescheduled));
        }
        if status != AppointmentStatus::Scheduled {
            // Cancellations from 2 to 70 hours ahead: some late.
            let at = start - SignedDuration::from_hours(i64::try_from(2 + i % 69)?);
            history.push(entry(at, HistoryAction::Status(status)));
        }
        let record = AppointmentRecord {
            appointment_id: AppointmentId::parse(&format!("apt_y{i:07}"))?,
            provider_id: doctor,
            // 3,000 patients: a doctor sees some of them again in a year.
            patient_id: PatientId::parse(&format!("pat_y{:04}", i % 3_000))?,
            slot: SlotTime {
                date,
                time_slot: ClockTime::from_minutes(minute),
                start,
                end: start + SignedDuration::from_mins(30),
            },
            status,
            history,
            history_dropped: 0,
            reschedules_dropped: 0,
            from_waitlist: i % 50 == 0,
            needs_reschedule: false,
        };
        batch.put(record.appointment_id.as_str(), &record);
        if (i + 1) % 10_000 == 0 {
            store.write(std::mem::take(&mut batch)).await?;
        }
    }
    store.write(batch).await?;
    store.close().await;
    Ok(())
}

fn entry(at: Timestamp, action: HistoryAction) -> HistoryEntry {
    HistoryEntry {
        at,
        by: None,
        action,
        from: None,
    }
}
