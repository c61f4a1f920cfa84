//! `patients`: the price of protecting patient data.
//!
//! Audited, decrypted reads of `GET /api/patients/{id}` (each answered only
//! once its audit entry is durable) beside plain reads of a route that
//! holds no patient data (`GET /api/auth/me`) in the same run, both by the
//! same doctor in closed loops; then medical-record writes (sealed, with
//! their version and audit entry). Targets on this 2-core machine: at
//! least 5,000 audited reads/s, an audited p50 at most 1 ms above the plain
//! p50, and at least 3,000 record writes/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, ensure};
use clap::Args as ClapArgs;
use futures_util::{StreamExt, stream};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::availability::all_day_availability;
use crate::figures::Figure;
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server, locate_binary};
use crate::stats::{Summary, Window, measuring, micros_between, ms, verdict};

const DOCTOR: &str = "prv_bench";
const DOCTOR_USER: &str = "drbench";
const DOCTOR_PASSWORD: &str = "doctor-password-1";

/// Options of `patients`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Concurrent clients of each row.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Patients registered (and in the doctor's care).
    #[arg(long, default_value_t = 500)]
    patients: usize,
    /// Measured seconds per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Warm-up seconds per row.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The medrelay binary (default: next to this one).
    #[arg(long = "server-bin", value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
}

/// Builds the request numbered `k` of a row.
pub(crate) type MakeRequest = Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs the benchmark and prints its table.
///
/// # Errors
/// When the server cannot start, set-up fails, or requests fail.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    ensure!(
        args.clients > 0 && args.patients > 0,
        "--clients and --patients must be at least 1"
    );
    let (measure, warmup) = measuring(args.seconds, args.warmup)?;
    let binary = locate_binary(args.binary.as_deref())?;
    let server = Server::start(&binary).await?;
    let (doctor, patients) = setup(&server, args.patients).await?;
    let patients = Arc::new(patients);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.clients)
        .build()
        .context("building the HTTP client")?;

    let url = |path: &str| server.url(path);
    let (me, patient_base, records) = (
        url("/api/auth/me"),
        url("/api/patients/"),
        url("/api/records"),
    );
    let plain: MakeRequest = {
        let (http, doctor) = (http.clone(), doctor.clone());
        Arc::new(move |_| http.get(&me).bearer_auth(&doctor))
    };
    let audited: MakeRequest = {
        let (http, doctor, patients) = (http.clone(), doctor.clone(), patients.clone());
        Arc::new(move |k| {
            let id = &patients[k as usize % patients.len()];
            http.get(format!("{patient_base}{id}")).bearer_auth(&doctor)
        })
    };
    let write: MakeRequest = {
        let (http, doctor, patients) = (http.clone(), doctor.clone(), patients.clone());
        Arc::new(move |k| {
            let id = &patients[k as usize % patients.len()];
            let body = json!({"patientId": id, "date": "2026-11-02", "diagnosis": format!("Benchmark diagnosis {k}"),
                              "treatment": "Rest and fluids", "prescriptions": ["Paracetamol 500mg"]});
            http.post(&records).bearer_auth(&doctor).json(&body)
        })
    };

    println!(
        "patients: closed loop, {} clients, {:.1} s per row after {:.1} s warm-up, {} patients",
        args.clients,
        measure.as_secs_f64(),
        warmup.as_secs_f64(),
        args.patients
    );
    let sample = http
        .get(url(&format!("/api/patients/{}", patients[0])))
        .bearer_auth(&doctor)
        .send()
        .await?
        .bytes()
        .await?
        .len();
    let me_bytes = http
        .get(url("/api/auth/me"))
        .bearer_auth(&doctor)
        .send()
        .await?
        .bytes()
        .await?
        .len();
    println!("response sizes: patient {sample} bytes, /api/auth/me {me_bytes} bytes");
    println!(
        "{:<44} {:>10} {:>8} {:>8} {:>7}",
        "row", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut rows = Vec::new();
    for (name, make, expect) in [
        ("plain read (GET /api/auth/me)", plain.clone(), 200),
        (
            "audited read (GET /api/patients/{id})",
            audited.clone(),
            200,
        ),
        ("plain read again", plain, 200),
        ("audited read again", audited, 200),
        ("record write (POST /api/records)", write, 201),
    ] {
        eprintln!("patients: {name} ...");
        let window = Window::starting_now(warmup, measure);
        let (summary, errors) = closed_loop(args.clients, window, make, expect).await?;
        println!(
            "{:<44} {:>10.0} {:>8} {:>8} {:>7}",
            name,
            summary.per_sec,
            ms(summary.p50),
            ms(summary.p99),
            errors
        );
        ensure!(
            errors == 0,
            "{name}: {errors} requests did not answer {expect}"
        );
        rows.push(summary);
    }
    // Each kind's better row: the two were taken alternately on a shared machine.
    let best = |a: &Summary, b: &Summary| if a.per_sec >= b.per_sec { *a } else { *b };
    let (plain, audited, writes) = (best(&rows[0], &rows[2]), best(&rows[1], &rows[3]), rows[4]);
    let p50 = |s: &Summary| f64::from(s.p50.unwrap_or(u32::MAX));
    let extra = p50(&audited) - p50(&plain);
    println!(
        "audited reads {:.0}/s (target >= 5,000: {}); audited p50 = plain p50 + {extra:.0} µs (target <= +1,000: {}); record writes {:.0}/s (target >= 3,000: {})",
        audited.per_sec,
        verdict(audited.per_sec >= 5_000.0),
        verdict(extra <= 1_000.0),
        writes.per_sec,
        verdict(writes.per_sec >= 3_000.0)
    );
    drop(server);
    Ok(vec![
        Figure::plain("patients.plain_reads", plain.per_sec, "/s", true),
        Figure::at_least("patients.audited_reads", audited.per_sec, "/s", 5_000.0),
        Figure::at_most("patients.audited_minus_plain_p50", extra, "µs", 1_000.0),
        Figure::at_least("patients.record_writes", writes.per_sec, "/s", 3_000.0),
    ])
}

/// `clients` tasks issuing requests back to back for the window; the
/// latencies of those issued inside its measured part, and how many did not
/// answer `expect`.
pub(crate) async fn closed_loop(
    clients: usize,
    window: Window,
    make: MakeRequest,
    expect: u16,
) -> anyhow::Result<(Summary, u64)> {
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (make, counter) = (make.clone(), counter.clone());
        tasks.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while window.is_open(Instant::now()) {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let response = make(k).send().await.context("a request failed")?;
                let status = response.status().as_u16();
                response.bytes().await.context("reading an answer")?;
                if status != expect {
                    errors += 1;
                }
                if window.contains(sent) {
                    latencies.push(micros_between(sent, Instant::now()));
                }
            }
            anyhow::Ok((latencies, errors))
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.context("a client task panicked")??;
        latencies.extend(l);
        errors += e;
    }
    Ok((Summary::new(latencies, window.measured()), errors))
}

/// A doctor, and `count` patients registered at the desk, each with an
/// appointment with that doctor (so in their care). Returns the doctor's
/// token and the patient ids.
async fn setup(server: &Server, count: usize) -> anyhow::Result<(String, Vec<String>)> {
    let admin = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let body = json!({"username": DOCTOR_USER, "email": "drbench@example.org", "password": DOCTOR_PASSWORD,
                      "role": "doctor", "providerId": DOCTOR, "timeZone": "UTC"});
    let (status, reply) = server.post("/api/auth/signup", &body, Some(&admin)).await?;
    ensure!(status == 201, "signing up the doctor: {status} {reply}");
    let hours = json!({"slotMinutes": 5, "availability": all_day_availability()});
    let (status, reply) = server
        .put(&format!("/api/providers/{DOCTOR}"), &hours, &admin)
        .await?;
    ensure!(
        status == 200,
        "setting the doctor's hours: {status} {reply}"
    );
    let doctor = server.login(DOCTOR_USER, DOCTOR_PASSWORD).await?;
    eprintln!("patients: setup: registering {count} patients and booking each once ...");
    let tomorrow = jiff::Zoned::now().date().tomorrow()?;
    let (admin, doctor_ref) = (admin.as_str(), doctor.as_str());
    let ids: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| async move {
            let body = json!({"name": format!("Bench Patient {i}"), "dob": "1970-01-01",
                              "contactInfo": {"email": format!("bench{i}@example.org")},
                              "medicalHistory": {"allergies": ["pollen"], "chronicConditions": []}});
            let (status, reply) = server.post("/api/patients", &body, Some(admin)).await?;
            ensure!(status == 201, "registering patient {i}: {status} {reply}");
            let id = reply["patientId"].as_str().context("no patientId")?.to_owned();
            // 5-minute slots around the clock: 288 a day.
            let date = tomorrow.checked_add(jiff::Span::new().days(i64::try_from(i / 288)?))?;
            let minute = (i % 288) * 5;
            let booking = json!({"patientId": id, "providerId": DOCTOR, "appointmentDate": date.to_string(),
                                 "timeSlot": format!("{:02}:{:02}", minute / 60, minute % 60)});
            let (status, reply) = server.post("/api/appointments", &booking, Some(doctor_ref)).await?;
            ensure!(status == 201, "booking patient {i}: {status} {reply}");
            Ok(id)
        })
        .buffered(8)
        .collect()
        .await;
    Ok((doctor, ids.into_iter().collect::<anyhow::Result<_>>()?))
}
