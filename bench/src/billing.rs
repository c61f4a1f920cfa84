//! `billing`: desk payments through their `PaymentActor`s.
//!
//! Patients registered at the desk, each with one large open bill; then
//! closed-loop `POST /api/patients/{id}/payments` of 1.00 in cash, each
//! with its own `Idempotency-Key`, each answered once the payment is
//! applied to the bill and durable. Consecutive requests go to different
//! patients, so concurrent payments rarely touch the same account.
//! The same with card payments through a stand-in card gateway that
//! answers each charge after `--card-latency-ms` (20): they must overlap
//! while each waits on it, not queue behind one another.
//! Then, on a fresh server, `--invoice-payments` payments (100,000), their
//! receipts fired, and the invoice over all of them (`GET /api/invoices`):
//! its time, and the server's resident memory at its peak while it is
//! built, above what it held before.
//! Targets on this 2-core machine: at least 4,000 desk payments/s and
//! 1,000 card payments/s at 20 ms gateway latency with 32 clients; the
//! invoice over 100,000 payments in at most 1 s and 100 MiB.

use std::sync::Arc;

use anyhow::{Context, ensure};
use clap::Args as ClapArgs;
use futures_util::{StreamExt, stream};
use serde_json::json;

use crate::card_gateway::CardGateway;
use crate::figures::Figure;
use crate::patients::{MakeRequest, closed_loop};
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server, locate_binary};
use crate::stats::{Window, measuring, ms, verdict};

/// Options of `billing`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Patients paying (each with one open bill).
    #[arg(long, default_value_t = 256)]
    patients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// How long the stand-in card gateway takes to answer a charge.
    #[arg(long, default_value_t = 20)]
    card_latency_ms: u64,
    /// Payments the invoice row covers.
    #[arg(long, default_value_t = 100_000)]
    invoice_payments: usize,
    /// The medrelay binary (default: next to this one).
    #[arg(long = "server-bin", value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
}

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
    let latency = std::time::Duration::from_millis(args.card_latency_ms);
    let gateway = CardGateway::start(latency).await?;
    let card_env = vec![
        ("MEDRELAY__BILLING__CARD__SECRET_KEY", "sk_bench".to_owned()),
        (
            "MEDRELAY__BILLING__CARD__WEBHOOK_SECRET",
            "whsec_bench".to_owned(),
        ),
        ("MEDRELAY__BILLING__CARD__BASE_URL", gateway.url()),
    ];
    let card_env = card_env
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let server = Server::start_with(&binary, card_env).await?;
    let admin = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let patients = Arc::new(setup(&server, &admin, args.patients).await?);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.clients)
        .build()
        .context("building the HTTP client")?;
    let payments = |method: &'static str| -> MakeRequest {
        let (http, admin, patients) = (http.clone(), admin.clone(), patients.clone());
        let base = server.url("/api/patients/");
        let body = match method {
            "card" => json!({"amount": "1.00", "method": "card", "cardToken": "pm_card_visa"}),
            _ => json!({"amount": "1.00", "method": method}),
        };
        Arc::new(move |k| {
            let id = &patients[k as usize % patients.len()];
            http.post(format!("{base}{id}/payments"))
                .bearer_auth(&admin)
                .header("Idempotency-Key", format!("bench-{method}-{k}"))
                .json(&body)
        })
    };
    println!(
        "billing: closed loop, {} clients, {:.1} s after {:.1} s warm-up, {} patients",
        args.clients,
        measure.as_secs_f64(),
        warmup.as_secs_f64(),
        args.patients
    );
    println!(
        "{:<44} {:>10} {:>8} {:>8} {:>7}",
        "row", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut rows = Vec::new();
    for (method, name) in [
        ("cash", "desk payment (POST .../payments, cash)"),
        ("card", "card payment (stand-in card gateway)"),
    ] {
        eprintln!("billing: {method} payments ...");
        let window = Window::starting_now(warmup, measure);
        let (summary, errors) = closed_loop(args.clients, window, payments(method), 201).await?;
        println!(
            "{:<44} {:>10.0} {:>8} {:>8} {:>7}",
            name,
            summary.per_sec,
            ms(summary.p50),
            ms(summary.p99),
            errors
        );
        ensure!(errors == 0, "{name}: {errors} requests did not answer 201");
        rows.push(summary.per_sec);
    }
    let (desk, card) = (rows[0], rows[1]);
    ensure!(
        gateway.charges() > 0,
        "no card payment reached the stand-in gateway"
    );
    println!(
        "desk payments {desk:.0}/s (target >= 4,000: {}); card payments {card:.0}/s at {} ms gateway latency (target >= 1,000: {})",
        verdict(desk >= 4_000.0),
        args.card_latency_ms,
        verdict(card >= 1_000.0)
    );
    drop(server);
    let (seconds, peak) = invoice(&binary, &args).await?;
    println!(
        "invoice over {} payments: {seconds:.3} s (target <= 1 s: {}), memory +{peak:.1} MiB at its peak (target <= 100 MiB: {})",
        args.invoice_payments,
        verdict(seconds <= 1.0),
        verdict(peak <= 100.0)
    );
    Ok(vec![
        Figure::at_least("billing.desk_payments", desk, "/s", 4_000.0),
        Figure::at_least("billing.card_payments", card, "/s", 1_000.0),
        Figure::at_most("billing.invoice_seconds", seconds, "s", 1.0),
        Figure::at_most("billing.invoice_peak_mib", peak, "MiB", 100.0),
    ])
}

/// A fresh server, `--invoice-payments` desk payments and their receipts
/// fired, then the invoice over all of them: seconds to answer, and the peak growth of the server's
/// resident memory meanwhile (sampled every 5 ms).
async fn invoice(binary: &std::path::Path, args: &Args) -> anyhow::Result<(f64, f64)> {
    let server = Server::start(binary).await?;
    let admin = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let patients = setup(&server, &admin, args.patients).await?;
    eprintln!(
        "billing: invoice: making {} payments ...",
        args.invoice_payments
    );
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = server.url("/api/patients/");
    let (http_ref, admin_ref, patients_ref, base_ref) = (&http, &admin, &patients, &base);
    let failed: Vec<anyhow::Result<()>> = stream::iter(0..args.invoice_payments)
        .map(|k| async move {
            let id = &patients_ref[k % patients_ref.len()];
            let response = http_ref
                .post(format!("{base_ref}{id}/payments"))
                .bearer_auth(admin_ref)
                .json(&json!({"amount": "1.00", "method": "cash"}))
                .send()
                .await?;
            ensure!(
                response.status() == 201,
                "a payment answered {}",
                response.status()
            );
            Ok(())
        })
        .buffer_unordered(args.clients)
        .filter(|r| std::future::ready(r.is_err()))
        .collect()
        .await;
    if let Some(Err(e)) = failed.into_iter().next() {
        return Err(e);
    }
    // Each payment sent its patient a receipt: let the scheduler finish
    // firing them, so that the memory measured is the invoice's, not the
    // receipts'. (Their e-mails go on at the channel's pace, from the store.)
    eprintln!("billing: invoice: waiting for the receipts to be fired ...");
    let fired = std::time::Instant::now();
    loop {
        let text = server.metrics(&admin).await?;
        let done = crate::server::metric(&text, "billing_notices_fired_total").unwrap_or(0.0);
        // A receipt per payment, and a notice per bill issued in set-up.
        if done >= (args.invoice_payments + patients.len()) as f64 {
            break;
        }
        ensure!(
            fired.elapsed() < std::time::Duration::from_secs(300),
            "only {done} of {} receipts fired in 300 s",
            args.invoice_payments
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "billing: invoice: receipts fired in {:.1} s; building it ...",
        fired.elapsed().as_secs_f64()
    );
    let before = server.rss_bytes()?;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak.clone(), server.pid());
        tokio::spawn(async move {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = crate::server::rss_of(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    let response = http
        .get(server.url("/api/invoices"))
        .bearer_auth(&admin)
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "the invoice answered {}",
        response.status()
    );
    let body = response.bytes().await?;
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await?;
    let invoice: serde_json::Value = serde_json::from_slice(&body)?;
    let applied = invoice["paymentsApplied"].to_string();
    ensure!(
        applied == format!("{}.0", args.invoice_payments)
            || applied == args.invoice_payments.to_string(),
        "the invoice applies {applied}, not the {} payments made",
        args.invoice_payments
    );
    let grown = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    Ok((seconds, grown as f64 / (1024.0 * 1024.0)))
}

/// `count` patients registered at the desk, each with one open bill at the
/// ceiling, so every payment of the run applies to a bill.
async fn setup(server: &Server, admin: &str, count: usize) -> anyhow::Result<Vec<String>> {
    eprintln!("billing: setup: registering {count} patients with a bill each ...");
    let ids: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| async move {
            let body = json!({"name": format!("Bench Payer {i}"), "dob": "1970-01-01",
                              "contactInfo": {"email": format!("payer{i}@example.org")}});
            let (status, reply) = server.post("/api/patients", &body, Some(admin)).await?;
            ensure!(status == 201, "registering patient {i}: {status} {reply}");
            let id = reply["patientId"]
                .as_str()
                .context("no patientId")?
                .to_owned();
            let bill = json!({"patientId": id, "services": [
                {"serviceId": "bench", "description": "Benchmark care", "amount": "1000000.00"}]});
            let (status, reply) = server.post("/api/bills", &bill, Some(admin)).await?;
            ensure!(status == 201, "billing patient {i}: {status} {reply}");
            Ok(id)
        })
        .buffered(8)
        .collect()
        .await;
    ids.into_iter().collect()
}
