//! The `schedule` benchmark: bookings, live boards and idle sockets over
//! WebSocket, against the real release server.
//!
//! # The server under test
//!
//! The `medrelay` binary built next to this one (`target/release/medrelay`,
//! or `--server-bin`) runs as a child process on a temporary data folder
//! (under `$TMPDIR`, default `/tmp`), listening on `127.0.0.1:0`; its address
//! is read from its JSON log. Rate limits, per-socket command limits and the
//! booking notice are lifted through `MEDRELAY__*` variables so that only the
//! server's own costs are measured; see [`crate::server`]. Setup creates an
//! admin offline, then over HTTP 100 doctors `prov000`..`prov099` (5-minute
//! slots, all day, every day, UTC; with `--doctor-accounts` each linked to a
//! doctor account, so that every booking also sends its doctor a notice)
//! and 200 patients by open sign-up (4 at a
//! time; each hashes a password, so setup takes a few seconds). Every socket
//! authenticates as the admin with `Authorization: Bearer` on the upgrade.
//!
//! Every booking takes a slot nobody has booked: the k-th booking of the run
//! goes to doctor `k % 100`, patient `k % 200`, slot `k / 100` counted in
//! 5-minute steps from tomorrow 00:00 UTC (see [`Plan`]), so a refused
//! booking can only mean a bug, and refusals are counted and shown.
//! Sub-benchmarks run in this order, each printing its table when done, and
//! close their sockets before the next one starts.
//!
//! # 1. Booking throughput
//!
//! `--clients` sockets (128) each book over WebSocket (`{"type":"book",...}`
//! → `{"re":..,"ok":true,"data":{"appointmentId":..}}`). The server
//! acknowledges a booking only once it is durable (committed and fsync'd by
//! the group-commit store), so every figure is of durable bookings.
//!
//! - **full speed**: closed loop; each socket sends one booking, waits for
//!   its reply, sends the next. `bookings/s` counts replies read inside the
//!   measured `--seconds` (after `--warmup`); p50/p99 are of their ack
//!   latency, from just before the command is written to the socket until
//!   its reply has been read.
//! - **fixed 2000/s**: open loop; one scheduler issues bookings at exact
//!   1/2000 s intervals (driven by tokio's 1 ms timer: each tick issues every
//!   booking due, 2 per tick) round robin over the same sockets, whatever the
//!   replies do. A socket may have several bookings in flight; it keeps a FIFO
//!   of their send instants and matches each reply by `re`. `bookings/s` is
//!   the achieved rate (replies read inside the window per second); latency
//!   is measured as above, from the actual send.
//!
//! Targets: >= 10,000 bookings/s at full speed; p99 <= 10 ms at 2,000/s.
//!
//! Under the table, for each row (warm-up included): the cores used by the
//! server (and by its `store-writer` thread, which applies and commits every
//! write), by this benchmark and by everything else on the machine (from
//! `/proc`), and the store's commits from the server's `/metrics`: how many,
//! the mean group (bookings per transaction), the mean commit time (apply +
//! fsync), how many took over 10 ms, and the bytes the server wrote to files
//! per booking (`wchar` of `/proc/PID/io`).
//!
//! # 2. Board fan-out
//!
//! `--fanout-sockets` sockets (1,000) subscribe to `board:prov000` (snapshot
//! of tomorrow only). One more socket books prov000 at `--fanout-rate` (100/s,
//! open loop as above), recording each booking's send and ack instants by
//! appointment id; [`HOLDER_TASKS`](crate::boards::HOLDER_TASKS) tasks read
//! all subscriber sockets (each task many sockets) and record when each
//! `appointment_booked` event arrives, in per-task lists merged at the end,
//! matched to its booking by `event.appointmentId`. Only bookings sent inside
//! the measured window count; `deliveries/s` is their deliveries per second
//! of window, `missing` the deliveries that never came.
//!
//! Delivery latency is shown twice: **from booking ack**, from the instant
//! the booker read the booking's reply, and **from booking send**, from the
//! instant the booking was sent (so it includes the durable commit). The
//! server replies once the write is committed, at the moment it publishes the
//! event, so the ack's arrival approximates the commit time and "from ack" is
//! meant as the fan-out alone. The reply takes its own path (through the
//! doctor's actor and the booker's socket), so some events reach subscribers
//! before the booker reads the ack (how many is printed, and whether the ack
//! comes first varies from run to run); those count as 0 ms, so the more
//! there are, the more "from ack" flatters the server, while "from send" is
//! the pessimistic figure. A third figure does without the ack: **from first
//! delivery**, each delivery's delay after the same event first reached any
//! subscriber, i.e. the spread of the fan-out itself; the raw baseline gets
//! the same figure.
//!
//! The **raw baseline** then does the same with no medrelay in the way: a
//! plain tokio-tungstenite server in this process but on its own runtime (one
//! worker thread per core, like the server), with tokio-tungstenite's default
//! settings and no `TCP_NODELAY` (as medrelay's `axum::serve`), one task per
//! socket fed by a `tokio::sync::broadcast` that only writes; the same number
//! of plain clients, read by the same holder tasks; frames of the size of a
//! real `appointment_booked` frame at the same rate, each carrying a sequence
//! number whose send instant the broadcaster records. Its latency runs from
//! that send instant.
//!
//! Target: medrelay's p99 (from ack) <= 1.5x the raw baseline's p99 (from
//! its send). The ratios from send and from first delivery (against the raw
//! baseline's from first delivery) are printed too.
//!
//! # 3. Calendar feed
//!
//! A doctor with 5,000 appointments and their feed downloaded in full and
//! unchanged (304); see [`crate::calendar_feed`]. Target: p99 <= 20 ms.
//!
//! # 3b. Waitlist offers
//!
//! 100 doctors with a waitlisted patient each, their appointments cancelled
//! at 200/s: the time from a cancellation to the `offer_made` event on the
//! waitlisted patient's socket; see [`crate::offers`]. Target: p99 <= 50 ms.
//!
//! # 4. Idle connections
//!
//! After the sockets of the earlier phases are closed (the server's
//! `ws_open_sockets` gauge reads 0), one socket per board is opened and kept
//! (so every doctor's actor and board channel exist before the first
//! reading), and the server's `VmRSS` is read from `/proc/PID/status`. Then
//! `--idle-connections` sockets (10,000) are opened, 200 at a time, socket i
//! subscribed to `board:prov{i % 100}` (snapshot of tomorrow only, reply
//! awaited); they are read (so pings are answered) but send nothing; after
//! 2 s RSS is read again. `bytes/conn` is the RSS increase divided by the
//! sockets still open: everything the server keeps per socket (buffers,
//! tasks, queues, subscriptions) and whatever the allocator keeps after the
//! subscribe replies were sent. The mean subscribe reply size is printed.
//!
//! It is measured twice: on the server that ran the other benchmarks, where
//! memory freed earlier is reused and makes the figure an under-estimate, and
//! then on a fresh server process restarted on the same data folder (same
//! accounts, doctors, appointments; the admin's token stays valid).
//!
//! Target: <= 16 KiB per idle connection (verdict for each row).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::boards;
use crate::booking::{
    self, DOCTORS, PATIENTS, PHASE_SLACK, Plan, close_all, full_speed, gather, open_booking_sockets,
};
use crate::clinic::{Doctors, setup_with};
use crate::figures::Figure;
use crate::idle;
use crate::server::{Commits, Server};
use crate::stats::{Cores, CpuMeter, Summary, Window, cores, ms, verdict};

/// The open-loop booking rate.
const FIXED_RATE: f64 = 2_000.0;
/// Target full-speed bookings per second.
const TARGET_BOOKINGS_PER_SEC: f64 = 10_000.0;
/// Target p99 ack latency at [`FIXED_RATE`], microseconds.
const TARGET_P99_AT_FIXED_US: u32 = 10_000;
/// Target ratio of medrelay's fan-out p99 to the raw baseline's, both from
/// first delivery (the measure that does not depend on acks).
const TARGET_FANOUT_RATIO: f64 = 1.5;
/// Longest the idle phase may take to open its sockets.
const IDLE_LIMIT: Duration = Duration::from_secs(300);

/// Options of the `schedule` benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Booking sockets (booking throughput).
    #[arg(long, default_value_t = 128)]
    clients: usize,
    /// Seconds measured per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of warm-up per row before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Bookings per second on the fanned-out board.
    #[arg(long, default_value_t = 100.0)]
    fanout_rate: f64,
    /// Subscribers of the fanned-out board (and clients of the raw baseline).
    #[arg(long, default_value_t = 1000)]
    fanout_sockets: usize,
    /// Idle sockets opened in the last phase.
    #[arg(long, default_value_t = 10_000)]
    idle_connections: usize,
    /// Link every doctor to an account, so that each booking also sends
    /// the doctor a notice (what a clinic whose doctors have logins pays).
    #[arg(long)]
    doctor_accounts: bool,
    /// The medrelay binary (default: next to this one, or $CARGO_TARGET_DIR/release).
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
}

/// Runs setup and the three benchmarks, printing a table after each, and
/// returns the figures.
///
/// # Errors
/// When the server cannot be started or set up, or a benchmark fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    let (measure, warmup) = crate::stats::measuring(args.seconds, args.warmup)?;
    ensure!(
        args.fanout_rate.is_finite() && args.fanout_rate > 0.0,
        "--fanout-rate must be positive"
    );
    ensure!(
        args.clients > 0 && args.fanout_sockets > 0 && args.idle_connections > 0,
        "--clients, --fanout-sockets and --idle-connections must be positive"
    );

    let binary = crate::server::locate_binary(args.server_bin.as_deref())?;
    eprintln!("schedule: starting {} ...", binary.display());
    let server = Server::start(&binary).await?;
    eprintln!(
        "schedule: medrelay (pid {}) listening on {}",
        server.pid(),
        server.addr
    );
    let setup_started = Instant::now();
    let doctors = if args.doctor_accounts {
        Doctors::WithAccounts
    } else {
        Doctors::ProfilesOnly
    };
    let (token, patients) = setup_with(&server, doctors).await?;
    let plan = Arc::new(Plan::new(patients.clone())?);
    let rss_setup = server.rss_bytes()?;
    eprintln!(
        "schedule: setup took {:.1} s ({DOCTORS} doctors, {PATIENTS} patients); server RSS {:.1} MiB",
        setup_started.elapsed().as_secs_f64(),
        idle::mib(rss_setup)
    );

    let run = Run {
        server: &server,
        token: &token,
        plan: &plan,
        args: &args,
        warmup,
        measure,
    };
    let (full, fixed_p99) = bookings(run).await?;
    println!();
    let fanout_ratio = fanout(run).await?;
    println!();
    let feed = crate::calendar_feed::run(&server, &token, &patients).await?;
    println!();
    let offers = crate::offers::run(&server, &token, &patients).await?;
    println!();
    let idle_run = async |server: &Server| {
        idle::run(
            server,
            &token,
            plan.tomorrow,
            args.idle_connections,
            IDLE_LIMIT,
        )
        .await
    };
    let used = idle_run(&server).await?;
    wait_sockets_closed(&server, &token, "before the restart").await?;
    eprintln!("schedule: idle: restarting medrelay on the same data for a fresh process ...");
    let mut server = server;
    server.restart().await?;
    eprintln!(
        "schedule: medrelay (pid {}) listening on {}",
        server.pid(),
        server.addr
    );
    let fresh = idle_run(&server).await?;
    idle::print(&used, &fresh, rss_setup);

    wait_sockets_closed(&server, &token, "at shutdown").await?;
    server.stop().await?;
    let mut figures = vec![
        Figure::at_least("schedule.bookings", full, "/s", TARGET_BOOKINGS_PER_SEC),
        Figure::at_most(
            "schedule.p99_at_2000",
            fixed_p99.map_or(f64::INFINITY, |p| f64::from(p) / 1000.0),
            "ms",
            f64::from(TARGET_P99_AT_FIXED_US) / 1000.0,
        ),
        Figure::at_most(
            "schedule.fanout_p99_vs_raw",
            fanout_ratio.unwrap_or(f64::INFINITY),
            "x",
            TARGET_FANOUT_RATIO,
        ),
    ];
    figures.extend(feed);
    figures.extend(offers);
    if let Some(bytes) = idle::per_connection(&fresh) {
        figures.push(Figure::at_most(
            "schedule.idle_socket",
            bytes / 1024.0,
            "KiB",
            idle::TARGET_IDLE_BYTES / 1024.0,
        ));
    }
    Ok(figures)
}

/// What the booking and fan-out benchmarks run against: the server, the
/// admin's token, the booking plan, the arguments and the row durations.
#[derive(Clone, Copy)]
struct Run<'a> {
    server: &'a Server,
    token: &'a str,
    plan: &'a Arc<Plan>,
    args: &'a Args,
    warmup: Duration,
    measure: Duration,
}

/// Waits up to 10 s for the server's sockets to close; warns of any still
/// open `when`.
async fn wait_sockets_closed(server: &Server, token: &str, when: &str) -> anyhow::Result<()> {
    let open = server
        .wait_sockets_closed(token, Duration::from_secs(10))
        .await?;
    if open > 0 {
        eprintln!("schedule: {open} sockets still open {when}");
    }
    Ok(())
}

/// One measured phase: the server's CPU and the store's commits from
/// [`Phase::start`] to [`Phase::end`].
struct Phase {
    commits_before: Option<Commits>,
    meter: CpuMeter,
}

impl Phase {
    /// Reads the store's commits, then starts the CPU meter.
    async fn start(server: &Server, token: &str) -> Self {
        let commits_before = server.commits(token).await;
        Self {
            commits_before,
            meter: CpuMeter::start(server.pid()),
        }
    }

    /// Stops the CPU meter, then describes the commits since the start.
    async fn end(self, server: &Server, token: &str) -> (Option<Cores>, String) {
        let cpu = self.meter.cores();
        let commits = match (self.commits_before, server.commits(token).await) {
            (Some(before), Some(after)) => after.since(&before, cpu.and_then(|c| c.written)),
            _ => "-".to_owned(),
        };
        (cpu, commits)
    }
}

/// Benchmark 1: full speed (closed loop), then a fixed 2,000/s (open loop).
/// Returns bookings/s at full speed and the p99 ack (µs) at the fixed rate.
async fn bookings(run: Run<'_>) -> anyhow::Result<(f64, Option<u32>)> {
    let Run {
        server,
        token,
        plan,
        args,
        warmup,
        measure,
    } = run;
    eprintln!("schedule: bookings: opening {} sockets ...", args.clients);
    let sockets = open_booking_sockets(server, token, args.clients).await?;

    eprintln!("schedule: bookings: full speed (closed loop) ...");
    let phase = Phase::start(server, token).await;
    let (sockets, full, window) = full_speed(sockets, plan, warmup, measure).await?;
    let (full_cpu, full_commits) = phase.end(server, token).await;
    let full_errors = (full.errors, full.first_error.clone());
    let full = Summary::new(full.latencies, window.measured());

    eprintln!("schedule: bookings: fixed {FIXED_RATE}/s (open loop) ...");
    let phase = Phase::start(server, token).await;
    let window = Window::starting_now(warmup, measure);
    let deadline = window.until + PHASE_SLACK;
    let mut tasks = JoinSet::new();
    let mut work = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let (tx, rx) = mpsc::channel(1024);
        work.push(tx);
        tasks.spawn(booking::pipelined(
            socket,
            rx,
            plan.clone(),
            window,
            deadline,
            false,
        ));
    }
    let issued = booking::fixed_rate(work, || Some(plan.next()), FIXED_RATE, window).await;
    let (sockets, fixed) = gather(tasks).await?;
    let (fixed_cpu, fixed_commits) = phase.end(server, token).await;
    issued?;
    close_all(sockets).await;
    let fixed_errors = (fixed.errors, fixed.first_error.clone());
    let fixed = Summary::new(fixed.latencies, window.measured());

    println!(
        "schedule: booking throughput ({} clients, {DOCTORS} doctors, {:.1} s per row after {:.1} s warm-up)",
        args.clients,
        measure.as_secs_f64(),
        warmup.as_secs_f64()
    );
    println!(
        "{:<20}{:>11}{:>9}{:>9}{:>9}",
        "mode", "bookings/s", "p50 ms", "p99 ms", "errors"
    );
    for (mode, summary, (errors, _)) in [
        ("full speed", &full, &full_errors),
        ("fixed 2000/s", &fixed, &fixed_errors),
    ] {
        println!(
            "{mode:<20}{:>11.0}{:>9}{:>9}{:>9}",
            summary.per_sec,
            ms(summary.p50),
            ms(summary.p99),
            errors
        );
    }
    for (mode, (_, first)) in [
        ("full speed", &full_errors),
        ("fixed 2000/s", &fixed_errors),
    ] {
        if let Some(first) = first {
            println!("first refused booking ({mode}): {first}");
        }
    }
    println!(
        "cpu (cores, warm-up included): full speed: {}; fixed 2000/s: {}",
        cores(full_cpu),
        cores(fixed_cpu)
    );
    println!("store (warm-up included): full speed: {full_commits}; fixed 2000/s: {fixed_commits}");
    println!(
        "targets: >= 10,000 bookings/s: {}; p99 <= 10 ms at 2,000/s: {}",
        verdict(full.per_sec >= TARGET_BOOKINGS_PER_SEC),
        verdict(fixed.p99.is_some_and(|p| p <= TARGET_P99_AT_FIXED_US)),
    );
    Ok((full.per_sec, fixed.p99))
}

/// Benchmark 2: medrelay's board fan-out, then the raw baseline. Returns
/// medrelay's p99 over the raw server's, both from first delivery.
async fn fanout(run: Run<'_>) -> anyhow::Result<Option<f64>> {
    let Run {
        server,
        token,
        args,
        ..
    } = run;
    let opts = boards::Options {
        sockets: args.fanout_sockets,
        rate: args.fanout_rate,
        warmup: run.warmup,
        seconds: run.measure,
    };
    let medrelay = boards::medrelay(server, token, run.plan, opts).await?;
    ensure!(
        medrelay.frame_bytes > 0,
        "no appointment_booked event reached any subscriber"
    );
    wait_sockets_closed(server, token, "after medrelay's fan-out").await?;
    let raw = boards::raw(medrelay.frame_bytes, opts, server.pid()).await?;

    println!(
        "schedule: board fan-out ({} subscribers of board:prov000, {} bookings/s, {:.1} s after {:.1} s warm-up; event frames of {} bytes)",
        args.fanout_sockets,
        args.fanout_rate,
        run.measure.as_secs_f64(),
        run.warmup.as_secs_f64(),
        medrelay.frame_bytes
    );
    println!(
        "{:<34}{:>13}{:>9}{:>9}{:>9}",
        "mode", "deliveries/s", "p50 ms", "p99 ms", "missing"
    );
    for (mode, summary, missing) in [
        (
            "medrelay, from booking ack",
            &medrelay.from_ack,
            medrelay.missing,
        ),
        (
            "medrelay, from booking send",
            &medrelay.from_send,
            medrelay.missing,
        ),
        (
            "medrelay, from first delivery",
            &medrelay.from_first,
            medrelay.missing,
        ),
        (
            "raw tokio-tungstenite, from send",
            &raw.latency,
            raw.missing,
        ),
        ("raw, from first delivery", &raw.from_first, raw.missing),
    ] {
        println!(
            "{mode:<34}{:>13.0}{:>9}{:>9}{:>9}",
            summary.per_sec,
            ms(summary.p50),
            ms(summary.p99),
            missing
        );
    }
    let deliveries = medrelay.bookings * args.fanout_sockets;
    println!(
        "note: medrelay acknowledges a booking once it is committed, as it publishes the event; \
         \"from booking ack\" starts when the booker reads that ack, an approximation of the commit time; \
         {} of {deliveries} deliveries arrived before their ack and count as 0 ms",
        medrelay.before_ack,
    );
    if medrelay.before_ack * 10 > deliveries as u64 {
        println!(
            "note: over 10% of the events beat their ack, so \"from booking ack\" under-states the fan-out \
             in this run; \"from first delivery\" (each event's delay after it first reached any \
             subscriber) compares the fan-out alone with the raw server's"
        );
    }
    println!(
        "measured: {} bookings ({} refused), {} raw frames; sockets lost: medrelay {}, raw {}",
        medrelay.bookings, medrelay.errors, raw.frames, medrelay.lost, raw.lost
    );
    println!(
        "cpu (cores, warm-up included): medrelay: {}; raw (server in bench): {}",
        cores(medrelay.cpu),
        cores(raw.cpu)
    );
    if let Some(first) = &medrelay.first_error {
        println!("first refused booking: {first}");
    }
    let ratio_of = |m: Option<u32>, r: Option<u32>| match (m, r) {
        (Some(m), Some(r)) if r > 0 => Some(f64::from(m) / f64::from(r)),
        _ => None,
    };
    let show = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
    let ratio = ratio_of(medrelay.from_ack.p99, raw.latency.p99);
    println!(
        "medrelay p99 / raw p99: {} from ack, {} from send, {} from first delivery",
        show(ratio),
        show(ratio_of(medrelay.from_send.p99, raw.latency.p99)),
        show(ratio_of(medrelay.from_first.p99, raw.from_first.p99)),
    );
    let from_first = ratio_of(medrelay.from_first.p99, raw.from_first.p99);
    println!(
        "targets: medrelay p99 <= 1.5x raw p99, from first delivery: {}",
        verdict(from_first.is_some_and(|r| r <= TARGET_FANOUT_RATIO))
    );
    Ok(from_first)
}
