//! `notify`: reminders and e-mail.
//!
//! 1. Reminders. A store is seeded offline with N pending reminders (two per
//!    appointment, 24 h and 2 h before, written by the same
//!    [`ReminderPlan::schedule`] a booking uses; due over the next weeks),
//!    plus a burst of B reminders (one per patient, over 100 doctors) that
//!    all fall due at the same instant shortly after start-up, plus one
//!    reminder already overdue. The release server then starts on that
//!    store. Reported: the server's memory with the reminders against an
//!    empty server in the same run, the time from process start to ready and
//!    to the overdue reminder firing, and the lateness of the burst (fired,
//!    and delivered by e-mail to the outbox folder), read from the delivery
//!    records after the run.
//! 2. E-mail throughput: M e-mails posted to `/api/notifications/email`,
//!    delivered over SMTP to a local sink, with 1 and with 8 pooled
//!    connections.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args as ClapArgs;
use jiff::{SignedDuration, Timestamp};
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::hub::EventHub;
use medrelay_actors::notify::{
    NotificationRecord, ReminderKind, ReminderPlan, ReminderRecord, reminder_key,
};
use medrelay_actors::patients::PatientRecord;
use medrelay_actors::phi::Vault;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_actors::store::{Store, StoreConfig, WriteBatch};
use medrelay_protocol::notification::{DeliveryStatus, NotificationChannel};
use medrelay_protocol::profile::ContactInfo;
use medrelay_protocol::schedule::{AppointmentId, AppointmentStatus, ClockTime, SlotTime};
use medrelay_protocol::{Email, PatientId, ProviderId};
use serde_json::json;

use crate::booking::{self, Plan};
use crate::figures::Figure;
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server, locate_binary};
use crate::smtp_sink::SmtpSink;
use crate::stats::{Summary, measuring, ms, percentile, verdict};

/// The store file inside a data folder (as the server names it).
const DB_FILE: &str = "medrelay.redb";

/// Options of `notify`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Pending reminders seeded (two per appointment).
    #[arg(long, default_value_t = 1_000_000)]
    pending: usize,
    /// Reminders falling due at the same instant.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// E-mails sent in the throughput run.
    #[arg(long, default_value_t = 3_000)]
    emails: usize,
    /// Seconds of full-speed booking on the seeded server and on an empty
    /// one, to show the pending reminders cost bookings nothing.
    #[arg(long, default_value_t = 5.0)]
    booking_seconds: f64,
    /// The medrelay binary (default: next to this one).
    #[arg(long = "server-bin", alias = "binary", value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
}

/// Runs both parts and returns the figures.
///
/// # Errors
/// When a server cannot start or a step fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    let binary = locate_binary(args.binary.as_deref())?;
    let figures = reminders(&binary, &args).await?;
    email(&binary, args.emails).await?;
    Ok(figures)
}

/// Full-speed bookings per second against `server`, after the usual setup
/// (100 doctors, 200 patients, 128 booking sockets).
async fn booking_rate(server: &Server, seconds: f64) -> anyhow::Result<f64> {
    let (measure, warmup) = measuring(seconds, 1.0)?;
    let (token, patients) = crate::clinic::setup(server).await?;
    let plan = Arc::new(Plan::new(patients)?);
    let sockets = booking::open_booking_sockets(server, &token, 128).await?;
    let (sockets, stats, window) = booking::full_speed(sockets, &plan, warmup, measure).await?;
    booking::close_all(sockets).await;
    Ok(Summary::new(stats.latencies, window.measured()).per_sec)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Settings that keep the e-mail lane (outbox folder) from pacing the burst.
fn fast_lanes() -> Vec<(String, String)> {
    env(&[
        ("MEDRELAY__NOTIFICATIONS__DELIVERY__RATE_PER_SEC", "1000000"),
        ("MEDRELAY__NOTIFICATIONS__DELIVERY__CONCURRENCY", "32"),
    ])
}

async fn reminders(binary: &Path, args: &Args) -> anyhow::Result<Vec<Figure>> {
    // The same server with nothing seeded, for comparison.
    let empty = Server::start_with(binary, fast_lanes()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty_rss = empty.rss_bytes()?;
    empty.stop().await?;

    let dir = tempfile::tempdir().context("creating a data folder")?;
    let started = Instant::now();
    let burst_due = seed(dir.path(), args.pending, args.burst).await?;
    let seeded = started.elapsed();
    let file_bytes = std::fs::metadata(dir.path().join(DB_FILE))?.len();
    eprintln!(
        "notify: seeded {} pending + {} burst reminders in {:.1} s ({:.0} MiB on disk); burst due at {burst_due}",
        args.pending,
        args.burst,
        seeded.as_secs_f64(),
        file_bytes as f64 / 1_048_576.0
    );

    let spawned = Instant::now();
    let server = Server::start_in(binary, dir, fast_lanes()).await?;
    let token = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let ready = spawned.elapsed();
    let http = reqwest::Client::new();
    // The notifications report over yesterday to tomorrow (UTC, the
    // server's default clinic zone): the reminders fire today, whichever
    // side of midnight the run is on.
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let stats_url = server.url(&format!(
        "/api/analytics/notifications?from={}&to={}",
        today.yesterday()?,
        today.tomorrow()?
    ));
    // (all notifications, e-mails delivered to the outbox)
    let counts = |http: reqwest::Client, token: String, url: String| async move {
        let body: serde_json::Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let emails_delivered: u64 = body["rows"].as_array().map_or(0, |rows| {
            rows.iter()
                .filter(|r| r["channel"] == "email")
                .map(|r| r["delivered"].as_u64().unwrap_or(0))
                .sum::<u64>()
        });
        anyhow::Ok((
            body["totals"]["notifications"].as_u64().unwrap_or(0),
            emails_delivered,
        ))
    };
    while counts(http.clone(), token.clone(), stats_url.clone())
        .await?
        .0
        == 0
    {
        ensure!(
            spawned.elapsed() < Duration::from_secs(60),
            "the overdue reminder never fired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_fired = spawned.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_rss = server.rss_bytes()?;

    // Wait until every burst e-mail (and the overdue one) is in the
    // outbox. The report sums a few small counter rows (per day, channel
    // and category), not the records, so a read is cheap; it is still
    // made only once a second and not during the burst itself, so that
    // the lateness measured is the burst's alone.
    let settle = burst_due.duration_since(Timestamp::now()) + SignedDuration::from_secs(3);
    tokio::time::sleep(Duration::try_from(settle).unwrap_or_default()).await;
    let wait_until = burst_due + SignedDuration::from_secs(120);
    loop {
        let (_, emails) = counts(http.clone(), token.clone(), stats_url.clone()).await?;
        if emails > args.burst as u64 || Timestamp::now() > wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after_rss = server.rss_bytes()?;
    eprintln!("notify: booking at full speed with the reminders pending ...");
    let loaded_rate = booking_rate(&server, args.booking_seconds).await?;
    let dir = server.stop_keeping_data().await?;
    eprintln!("notify: booking at full speed on an empty store ...");
    let empty = Server::start_with(binary, fast_lanes()).await?;
    let empty_rate = booking_rate(&empty, args.booking_seconds).await?;
    empty.stop().await?;

    let (fired, delivered, missing) = lateness(dir.path(), args.burst)?;
    let mib = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "notify: reminders ({} pending in the store, {} due at one instant)",
        args.pending, args.burst
    );
    println!("server                                   RSS");
    println!(
        "empty store                      {:>9.1} MiB",
        mib(empty_rss)
    );
    println!(
        "with the pending reminders       {:>9.1} MiB",
        mib(loaded_rss)
    );
    println!(
        "after the burst                  {:>9.1} MiB",
        mib(after_rss)
    );
    let held = loaded_rss.saturating_sub(empty_rss);
    println!(
        "memory held for the pending reminders: {:.1} MiB ({} bytes each; the store file is {:.0} MiB)",
        mib(held),
        held / args.pending.max(1) as u64,
        mib(file_bytes)
    );
    println!(
        "restart: ready (login answered) {:.2} s after spawn; the overdue reminder fired {:.2} s after spawn",
        ready.as_secs_f64(),
        first_fired.as_secs_f64()
    );
    println!("burst lateness (from the due time)      n    min ms    p50 ms    p99 ms    max ms");
    for (name, values) in [
        ("fired (in-app sent)", &fired),
        ("e-mail in the outbox", &delivered),
    ] {
        let mut v = values.clone();
        v.sort_unstable();
        println!(
            "{name:<32} {:>7} {:>9} {:>9} {:>9} {:>9}",
            v.len(),
            ms(v.first().copied()),
            ms(percentile(&v, 0.50)),
            ms(percentile(&v, 0.99)),
            ms(v.last().copied())
        );
    }
    if missing > 0 {
        println!("missing: {missing} burst reminders without an in-app notification");
    }
    let mut f = fired.clone();
    f.sort_unstable();
    let p99 = percentile(&f, 0.99).unwrap_or(u32::MAX);
    let booking_ratio = loaded_rate / empty_rate;
    println!(
        "bookings at full speed: {empty_rate:.0}/s on an empty store, {loaded_rate:.0}/s with {} reminders pending ({booking_ratio:.2}x)",
        args.pending
    );
    println!(
        "targets: memory <= 300 MiB: {}; reload <= 5 s: {}; fired p99 <= 1 s: {}; bookings within 10%: {}",
        verdict(mib(held) <= 300.0),
        verdict(first_fired <= Duration::from_secs(5)),
        verdict(p99 <= 1_000_000 && missing == 0),
        verdict((booking_ratio - 1.0).abs() <= 0.10)
    );
    Ok(vec![
        Figure::at_most("notify.pending_rss", mib(held), "MiB", 300.0),
        Figure::at_most(
            "notify.restart_first_fired",
            first_fired.as_secs_f64(),
            "s",
            5.0,
        ),
        Figure::at_most(
            "notify.burst_fired_p99",
            if missing == 0 {
                f64::from(p99) / 1000.0
            } else {
                f64::INFINITY
            },
            "ms",
            1000.0,
        ),
        Figure::at_least("notify.bookings_pending_vs_empty", booking_ratio, "x", 0.9),
    ])
}

/// Seeds `dir`'s store; returns when the burst falls due.
async fn seed(dir: &Path, pending: usize, burst: usize) -> anyhow::Result<Timestamp> {
    let store = Store::open(
        &dir.join(DB_FILE),
        StoreConfig::default(),
        EventHub::new(16),
    )?;
    let now = Timestamp::now();
    let plan = ReminderPlan::new(
        vec![
            SignedDuration::from_hours(24),
            SignedDuration::from_hours(2),
        ],
        true,
    );
    // 100 doctors; the burst has one appointment per patient.
    let doctors: Vec<ProviderRecord> = (0..100)
        .map(|d| {
            serde_json::from_value(json!({
                "providerId": format!("prv_b{d:03}"), "name": format!("Dr. Bench {d}"),
                "timeZone": "UTC", "createdAt": now.to_string()
            }))
        })
        .collect::<Result<_, _>>()?;
    let slot = |start: Timestamp| -> anyhow::Result<SlotTime> {
        let z = start.to_zoned(jiff::tz::TimeZone::UTC);
        Ok(SlotTime {
            date: z.date(),
            time_slot: ClockTime::from_minutes(
                u16::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0),
            ),
            start,
            end: start + SignedDuration::from_mins(30),
        })
    };
    let appointment = |id: String,
                       doctor: &ProviderId,
                       patient: &PatientId,
                       start: Timestamp|
     -> anyhow::Result<AppointmentRecord> {
        Ok(AppointmentRecord {
            appointment_id: AppointmentId::parse(&id)?,
            provider_id: doctor.clone(),
            patient_id: patient.clone(),
            slot: slot(start)?,
            status: AppointmentStatus::Scheduled,
            history: Vec::new(),
            history_dropped: 0,
            reschedules_dropped: 0,
            from_waitlist: false,
            needs_reschedule: false,
        })
    };

    // Pending: due from 2 days ahead, spread over the following weeks. Only
    // what a booking writes for its reminders is stored (the keys and the
    // index), not the appointments themselves.
    let nobody = PatientId::parse("pat_nobody")?;
    let mut batch = WriteBatch::new();
    for i in 0..pending.div_ceil(2) {
        let start = now + SignedDuration::from_hours(72) + SignedDuration::from_secs(5 * i as i64);
        let doctor = &doctors[i % doctors.len()].provider_id;
        let record = appointment(format!("apt_p{i:07}"), doctor, &nobody, start)?;
        plan.schedule(&mut batch, &record, now);
        if (i + 1) % 10_000 == 0 {
            store.write(std::mem::take(&mut batch)).await?;
        }
    }
    store.write(batch).await?;

    // The burst: real patients and appointments, all due at one instant.
    let burst_due = Timestamp::now() + SignedDuration::from_secs(20);
    let mut batch = WriteBatch::new();
    for doctor in &doctors {
        batch.put(doctor.provider_id.as_str(), doctor);
    }
    let patients: Vec<PatientId> = (0..burst.max(1))
        .map(|i| PatientId::parse(&format!("pat_b{i:06}")))
        .collect::<Result<_, _>>()?;
    // The server opens the same key file (its default, in the data folder).
    let vault = Vault::open(&dir.join("phi.key"))?;
    for (i, p) in patients.iter().enumerate() {
        let profile = PatientRecord {
            patient_id: p.clone(),
            user_id: None,
            name: format!("Patient {i}"),
            dob: None,
            contact_info: ContactInfo {
                phone: None,
                email: Some(Email::parse(&format!("patient{i}@example.org"))?),
            },
            address: None,
            medical_history: Default::default(),
            created_at: now,
            updated_at: None,
        };
        medrelay_actors::patients::write(&mut batch, &vault, None, &profile, false);
    }
    let add = |batch: &mut WriteBatch,
               id: String,
               doctor: &ProviderId,
               patient: &PatientId,
               due: Timestamp,
               start: Timestamp|
     -> anyhow::Result<()> {
        let record = appointment(id, doctor, patient, start)?;
        let offset = start.duration_since(due).as_secs();
        batch.put(record.appointment_id.as_str(), &record);
        batch.put(
            reminder_key(due, &record.appointment_id, &format!("r{offset}")),
            &ReminderRecord {
                appointment_id: record.appointment_id.clone(),
                kind: ReminderKind::Reminder {
                    offset_secs: offset,
                },
                starts_at: Some(start),
                suggestions: Vec::new(),
            },
        );
        Ok(())
    };
    for i in 0..burst {
        let start = burst_due
            + SignedDuration::from_hours(2)
            + SignedDuration::from_secs(300 * (i / doctors.len()) as i64);
        add(
            &mut batch,
            format!("apt_b{i:06}"),
            &doctors[i % doctors.len()].provider_id,
            &patients[i % patients.len()],
            burst_due,
            start,
        )?;
    }
    // One reminder that fell due while the server was down.
    add(
        &mut batch,
        "apt_overdue".into(),
        &doctors[0].provider_id,
        &patients[0],
        now - SignedDuration::from_secs(60),
        now + SignedDuration::from_hours(1),
    )?;
    store.write(batch).await?;
    store.close().await;
    Ok(burst_due)
}

/// Per burst reminder: microseconds from due to fired, and to the e-mail
/// being in the outbox; and how many burst reminders have no in-app record.
fn lateness(dir: &Path, burst: usize) -> anyhow::Result<(Vec<u32>, Vec<u32>, usize)> {
    let store = Store::open(
        &dir.join(DB_FILE),
        StoreConfig::default(),
        EventHub::new(16),
    )?;
    let micros = |from: Timestamp, to: Timestamp| {
        u32::try_from(to.duration_since(from).as_micros().max(0)).unwrap_or(u32::MAX)
    };
    let (mut fired, mut delivered) = (Vec::new(), Vec::new());
    let mut after: Option<String> = None;
    loop {
        let page = store.scan::<NotificationRecord>(after.as_deref(), 5_000)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, r) in page {
            let burst_one = r
                .appointment_id
                .as_ref()
                .is_some_and(|a| a.as_str().starts_with("apt_b"));
            let Some(due) = r.due_at.filter(|_| burst_one) else {
                continue;
            };
            match r.channel {
                NotificationChannel::InApp => {
                    if let Some(at) = r.history.first().map(|e| e.at) {
                        fired.push(micros(due, at));
                    }
                }
                NotificationChannel::Email => {
                    if let Some(at) = r.first(DeliveryStatus::Delivered) {
                        delivered.push(micros(due, at));
                    }
                }
                _ => {}
            }
        }
    }
    let missing = burst.saturating_sub(fired.len());
    Ok((fired, delivered, missing))
}

async fn email(binary: &Path, count: usize) -> anyhow::Result<()> {
    println!();
    println!("notify: e-mail over SMTP to a local sink ({count} messages posted by 32 clients)");
    println!(
        "kept idle  in flight  accepted/s  delivered/s   (delivered: all in the sink, from the first post)"
    );
    let mut rates = Vec::new();
    for (pool, concurrency) in [(0u32, 8usize), (8, 8), (32, 32)] {
        let sink = SmtpSink::start().await;
        let port = sink.addr().port().to_string();
        let (pool_size, in_flight) = (pool.to_string(), concurrency.to_string());
        let mut settings = fast_lanes();
        settings.retain(|(k, _)| !k.ends_with("__CONCURRENCY"));
        settings.extend(env(&[
            ("MEDRELAY__NOTIFICATIONS__EMAIL__HOST", "127.0.0.1"),
            ("MEDRELAY__NOTIFICATIONS__EMAIL__PORT", &port),
            ("MEDRELAY__NOTIFICATIONS__EMAIL__TLS", "none"),
            ("MEDRELAY__NOTIFICATIONS__EMAIL__POOL_SIZE", &pool_size),
            ("MEDRELAY__NOTIFICATIONS__DELIVERY__CONCURRENCY", &in_flight),
        ]));
        let server = Server::start_with(binary, settings).await?;
        let token = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        let server = Arc::new(server);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (server, next, token) = (server.clone(), next.clone(), token.clone());
            clients.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return anyhow::Ok(());
                    }
                    let (status, body) = server
                        .post(
                            "/api/notifications/email",
                            &json!({"to": format!("to{i}@example.org"), "subject": format!("bench {i}"),
                                    "body": "A benchmark message."}),
                            Some(&token),
                        )
                        .await?;
                    ensure!(status == 202, "POST /api/notifications/email: {status} {body}");
                }
            });
        }
        while let Some(done) = clients.join_next().await {
            done??;
        }
        let accepted = started.elapsed();
        let mails = sink.wait_for(count, Duration::from_secs(180)).await;
        let delivered = started.elapsed();
        ensure!(
            mails.len() >= count,
            "only {} of {count} e-mails arrived",
            mails.len()
        );
        let distinct: std::collections::HashSet<String> =
            mails.iter().filter_map(|m| m.header("Subject")).collect();
        ensure!(
            distinct.len() == count,
            "{} distinct of {} e-mails",
            distinct.len(),
            mails.len()
        );
        let rate = count as f64 / delivered.as_secs_f64();
        rates.push(rate);
        println!(
            "{pool:>9} {concurrency:>10} {:>11.0} {:>12.0}",
            count as f64 / accepted.as_secs_f64(),
            rate,
        );
        match Arc::try_unwrap(server) {
            Ok(server) => server.stop().await?,
            Err(_) => anyhow::bail!("server still shared"),
        }
    }
    if let [fresh, pooled, wide] = rates[..] {
        println!(
            "pooled / a connection per message: {:.2}x; 32 in flight / 8: {:.2}x",
            pooled / fresh,
            wide / pooled
        );
    }
    Ok(())
}
