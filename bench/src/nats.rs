//! `nats`: bookings over NATS request/reply against raw request/reply, and
//! the outbox's publish rate into JetStream.
//!
//! A `nats-server` (JetStream on, a temporary store, a free port) and the
//! release `medrelay` run as child processes. Rows, in one run:
//!
//! - raw async-nats request/reply to a trivial responder in this process
//!   (it answers every request with a 40-byte body): the floor;
//! - `book` over `medrelay.cmd.schedule.<providerId>`, each answered only
//!   once the booking is durable, with the same clients;
//!
//! each with 1 client (latency) and 32 clients (throughput), closed loop.
//! Then the server is restarted against a NATS port where nothing listens,
//! bookings pile up in the outbox, NATS is started, and the time from the
//! first to the last event stored by JetStream gives the publish rate.
//!
//! Target: p50 booking latency over NATS <= raw request/reply p50 + 300 µs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::booking::{self, DOCTORS, Plan};
use crate::booking::{gather, open_booking_sockets};
use crate::clinic::setup;
use crate::figures::Figure;
use crate::server::{Server, locate_binary};
use crate::stats::{Summary, Window, measuring, ms, verdict};

/// Command-line options of `nats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured seconds per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured seconds before each row.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds of WebSocket bookings piled up while NATS is away.
    #[arg(long, default_value_t = 3.0)]
    backlog_seconds: f64,
    /// The `medrelay` binary (default: next to this one).
    #[arg(long = "server-bin", alias = "medrelay", value_name = "PATH")]
    medrelay: Option<PathBuf>,
}

/// A `nats-server` child process.
struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start(port: u16) -> anyhow::Result<NatsServer> {
        let store = tempfile::tempdir()?;
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| "nats-server".into());
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (apt install nats-server)", bin.display()))?;
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NatsServer {
            child,
            port,
            _store: store,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One row's figures.
struct Row {
    summary: Summary,
    errors: u64,
}

/// Makes the subject and payload of the next request.
type MakeRequest = Arc<dyn Fn() -> anyhow::Result<(String, Vec<u8>)> + Send + Sync>;

/// Closed-loop requests from `clients` tasks for the window.
async fn closed_loop(
    client: &async_nats::Client,
    clients: usize,
    window: Window,
    headers: async_nats::HeaderMap,
    request: MakeRequest,
) -> anyhow::Result<Row> {
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (client, headers, request) = (client.clone(), headers.clone(), request.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while window.is_open(Instant::now()) {
                let (subject, payload) = request()?;
                let sent = Instant::now();
                let reply = client
                    .request_with_headers(subject, headers.clone(), payload.into())
                    .await
                    .context("a request failed")?;
                let done = Instant::now();
                let ok = !reply.payload.starts_with(br#"{"ok":false"#)
                    && !reply.payload.windows(11).any(|w| w == br#""ok":false"#);
                if !ok {
                    errors += 1;
                }
                if window.contains(sent) {
                    latencies.push(crate::stats::micros_between(sent, done));
                }
            }
            anyhow::Ok((latencies, errors))
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.context("a client task panicked")??;
        latencies.extend(l);
        errors += e;
    }
    Ok(Row {
        summary: Summary::new(latencies, window.measured()),
        errors,
    })
}

/// Runs the benchmark and prints its tables.
///
/// # Errors
/// When a process cannot be started or a request fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    let (measure, warmup) = measuring(args.seconds, args.warmup)?;
    let binary = locate_binary(args.medrelay.as_deref())?;
    let nats = NatsServer::start(free_port()?)?;
    let server =
        Server::start_with(&binary, vec![("MEDRELAY__NATS__URL".into(), nats.url())]).await?;
    let (token, patients) = setup(&server).await?;
    let plan = Arc::new(Plan::new(patients)?);
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(nats.url())
        .await?;

    // The trivial responder.
    let mut echo = client.subscribe("bench.echo").await?;
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                let _ = responder
                    .publish(
                        reply,
                        br#"{"ok":true,"data":{"pong":true}}"#.as_slice().into(),
                    )
                    .await;
            }
        }
    });
    client.flush().await?;
    let mut auth = async_nats::HeaderMap::new();
    auth.insert("Authorization", format!("Bearer {token}").as_str());
    let raw: MakeRequest =
        Arc::new(|| Ok(("bench.echo".to_owned(), br#"{"type":"ping"}"#.to_vec())));
    let plan_ref = plan.clone();
    let book: MakeRequest = Arc::new(move || {
        let k = plan_ref.next();
        let subject = format!("medrelay.cmd.schedule.prov{:03}", k % DOCTORS);
        Ok((subject, plan_ref.command(k)?.into_bytes()))
    });
    // Wait until the server answers commands.
    let started = std::time::Instant::now();
    loop {
        let probe = client
            .request_with_headers(
                "medrelay.cmd.schedule.prov000".to_owned(),
                auth.clone(),
                br#"{"type":"get","appointmentId":"apt_probe"}"#.as_slice().into(),
            )
            .await;
        if probe.is_ok() {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "medrelay never answered on NATS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!(
        "nats: request/reply, closed loop ({:.1} s per row after {:.1} s warm-up)",
        measure.as_secs_f64(),
        warmup.as_secs_f64()
    );
    println!(
        "{:<32} {:>7} {:>10} {:>8} {:>8} {:>7}",
        "mode", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut p50 = Vec::new();
    for clients in [1usize, 32] {
        for (name, request) in [
            ("raw request/reply (responder)", raw.clone()),
            ("book over NATS (durable)", book.clone()),
        ] {
            eprintln!("nats: {name}, {clients} clients ...");
            let window = Window::starting_now(warmup, measure);
            let row = closed_loop(&client, clients, window, auth.clone(), request).await?;
            println!(
                "{:<32} {:>7} {:>10.0} {:>8} {:>8} {:>7}",
                name,
                clients,
                row.summary.per_sec,
                ms(row.summary.p50),
                ms(row.summary.p99),
                row.errors
            );
            if clients == 1 {
                p50.push(row.summary.p50.unwrap_or(u32::MAX));
            }
        }
    }
    let (raw_p50, book_p50) = (p50[0], p50[1]);
    let overhead = i64::from(book_p50) - i64::from(raw_p50);
    println!(
        "1 client: booking p50 = raw p50 + {overhead} µs; target <= raw p50 + 300 µs: {}",
        verdict(overhead <= 300)
    );
    drop(server);

    let rate = publish_rate(&binary, &args).await?;
    Ok(vec![
        Figure::plain("nats.raw_p50", f64::from(raw_p50), "µs", false),
        Figure::plain("nats.book_p50", f64::from(book_p50), "µs", false),
        Figure::at_most("nats.book_p50_minus_raw", overhead as f64, "µs", 300.0),
        Figure::plain("nats.outbox_publish", rate, "events/s", true),
    ])
}

/// Bookings pile up while NATS is away, then NATS starts: events per second
/// from the first to the last event JetStream stored.
async fn publish_rate(binary: &std::path::Path, args: &Args) -> anyhow::Result<f64> {
    let port = free_port()?;
    let url = format!("nats://127.0.0.1:{port}");
    let server = Server::start_with(binary, vec![("MEDRELAY__NATS__URL".into(), url)]).await?;
    let (token, patients) = setup(&server).await?;
    let plan = Arc::new(Plan::new(patients)?);
    eprintln!(
        "nats: outbox: booking for {:.1} s with NATS away ...",
        args.backlog_seconds
    );
    let sockets = open_booking_sockets(&server, &token, 64).await?;
    let window = Window::starting_now(
        Duration::ZERO,
        Duration::from_secs_f64(args.backlog_seconds),
    );
    let deadline =
        Instant::now() + Duration::from_secs_f64(args.backlog_seconds) + Duration::from_secs(30);
    let mut tasks = JoinSet::new();
    for socket in sockets {
        tasks.spawn(booking::closed_loop(socket, plan.clone(), window, deadline));
    }
    let (_sockets, stats) = gather(tasks).await?;
    // Every acknowledged booking of the window (none were measured out).
    let booked = stats.latencies.len();
    ensure!(booked > 0, "no bookings were made: {:?}", stats.first_error);

    let nats = NatsServer::start(port)?;
    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    eprintln!("nats: outbox: {booked} bookings queued; NATS is up, waiting for the stream ...");
    let started = std::time::Instant::now();
    let stream = loop {
        if let Ok(stream) = js.get_stream("MEDRELAY_EVENTS").await {
            let info = stream.get_info().await?;
            if info.state.messages as usize >= booked {
                break stream;
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the stream did not receive the backlog within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Let the publisher finish the signups' events too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = stream.get_info().await?;
    let first = stream.get_raw_message(info.state.first_sequence).await?;
    let last = stream.get_raw_message(info.state.last_sequence).await?;
    let span = (last.time - first.time).as_seconds_f64();
    let events = info.state.messages;
    println!();
    println!("nats: outbox -> JetStream (backlog published after NATS came back, windowed acks)");
    let rate = events as f64 / span.max(1e-6);
    println!(
        "{events} events ({booked} bookings + sign-ups) stored in {span:.2} s: {rate:.0} events/s"
    );
    Ok(rate)
}
