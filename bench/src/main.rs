//! medrelay benchmarks: each subcommand measures one part of the system and
//! prints its figures as a plain-text table on stdout (progress goes to stderr).
//!
//! Build and run in release mode, on the filesystem the service will use:
//!
//! ```text
//! cargo build --release -p medrelay -p medrelay-bench
//! target/release/medrelay-bench all [--quick] [--server-bin PATH] [--record docs/benchmarks.md]
//! cargo run --release -p medrelay-bench -- store [--seconds 3] [--warmup 0.5]
//! cargo run --release -p medrelay-bench -- schedule [--clients 128] [--seconds 5] \
//!     [--fanout-rate 100] [--fanout-sockets 1000] [--idle-connections 10000]
//! cargo run --release -p medrelay-bench -- nats [--seconds 5] [--backlog-seconds 3]
//! cargo run --release -p medrelay-bench -- notify [--pending 1000000] [--burst 10000] \
//!     [--emails 3000] [--booking-seconds 5]
//! cargo run --release -p medrelay-bench -- memory [--sockets 40] [--subscribes 20000] \
//!     [--logins 100000] [--login-seconds 90]
//! cargo run --release -p medrelay-bench -- patients [--clients 32] [--patients 500] \
//!     [--seconds 5] [--warmup 1]
//! cargo run --release -p medrelay-bench -- billing [--clients 32] [--patients 256] \
//!     [--seconds 5] [--warmup 1] [--invoice-payments 100000]
//! cargo run --release -p medrelay-bench -- analytics [--appointments 500000] [--requests 50]
//! ```
//!
//! Every benchmark that starts the server takes `--server-bin PATH` (default:
//! the `medrelay` next to this binary, or in `$CARGO_TARGET_DIR/release`).
//!
//! `all` runs every benchmark in turn (`--quick`: shorter rows and smaller
//! floods, under 3 minutes) and ends with one table: each figure beside its
//! target and beside the figure recorded in `docs/benchmarks.md`, flagging
//! any more than 10% worse. Throughput that drifts with the shared machine
//! is also shown as a ratio to a baseline of the same run.
//!
//! Benchmarks:
//!
//! - `store`: durable writes. A baseline of one fsync'd redb transaction per
//!   write (single writer, plain redb, no group commit) against
//!   [`medrelay_actors::store::Store::write`] with 1, 8, 64 and 256 concurrent
//!   writers, whose batches the store's writer thread groups into one
//!   transaction (one fsync) per group. Every write is acknowledged only once it
//!   is on disk. Reports writes/s and p50/p99 per-write latency, the 64-writer
//!   speed-up over the baseline, and whether the targets (>= 50,000 writes/s at
//!   64 writers, >= 10x baseline) are met. See [`store`].
//! - `schedule`: the release `medrelay` server as a child process, driven
//!   over WebSocket: durable bookings per second at full speed (closed loop)
//!   and ack latency at a fixed 2,000 bookings/s (open loop); board fan-out
//!   latency to 1,000 subscribers against a raw tokio-tungstenite broadcast;
//!   and server memory per idle subscribed connection. Targets: >= 10,000
//!   bookings/s, p99 <= 10 ms at 2,000/s, fan-out p99 <= 1.5x raw, <= 16 KiB
//!   per idle connection. See [`schedule`].
//! - `nats`: bookings over NATS request/reply (1 and 32 clients) against raw
//!   async-nats request/reply to a trivial responder in the same run, and the
//!   outbox's publish rate into JetStream after an outage. Target: booking p50
//!   <= raw p50 + 300 µs. See [`nats`].
//! - `notify`: a store seeded with 1,000,000 pending reminders and a burst
//!   of 10,000 due at one instant: the server's memory against an empty one,
//!   the time to ready and to the first overdue reminder after a start, and
//!   the burst's lateness; then e-mail throughput over SMTP to a local sink
//!   with 1 and 8 pooled connections. Targets: <= 300 MB, reload <= 5 s,
//!   p99 lateness <= 1 s. See [`notify`].
//! - `memory`: the server's resident memory before and after floods a
//!   stranger can send: 20,000 subscribes to boards of doctors that do not
//!   exist over 40 sockets, and 100,000 logins with random 60-character
//!   usernames. Bounds: <= 4 MiB of growth for each. See [`memory`].
//! - `patients`: audited, decrypted reads of a patient (32 clients) beside
//!   plain reads of a route without patient data in the same run, and
//!   medical-record writes. Targets: >= 5,000 audited reads/s, audited p50
//!   <= plain p50 + 1 ms, >= 3,000 record writes/s. See [`patients`].
//! - `billing`: desk payments (32 clients, each with an idempotency key,
//!   each applied to a bill and durable before its answer) through their
//!   payment actors, and the invoice over 100,000 payments. Targets: >= 4,000
//!   payments/s; the invoice in <= 1 s and <= 100 MiB. See [`billing`].

mod analytics;
mod availability;
mod billing;
mod boards;
mod booking;
mod calendar_feed;
mod card_gateway;
mod clinic;
mod figures;
mod idle;
mod memory;
mod nats;
mod notify;
mod offers;
mod patients;
mod schedule;
mod server;
// Shared with the test suite (tests/api), which reads more of each message.
#[allow(dead_code)]
mod smtp_sink;
mod stats;
mod store;
mod ws;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::figures::Figure;

/// Benchmarks for medrelay; prints its figures as tables.
#[derive(Debug, Parser)]
#[command(name = "medrelay-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One benchmark per subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Durable writes: one fsync per write against the store's group commit.
    Store(store::Args),
    /// Bookings, board fan-out and idle sockets over WebSocket against the server.
    Schedule(schedule::Args),
    /// Bookings over NATS request/reply against raw request/reply; outbox publish rate.
    Nats(nats::Args),
    /// Pending reminders: memory, reload, burst lateness; e-mail throughput over SMTP.
    Notify(notify::Args),
    /// Server memory across floods of unknown-board subscribes and made-up logins.
    Memory(memory::Args),
    /// Audited, decrypted patient reads against plain reads; record writes.
    Patients(patients::Args),
    /// Desk and card payments through their payment actors; the invoice.
    Billing(billing::Args),
    /// The appointments report over a year of seeded history.
    Analytics(analytics::Args),
    /// Every benchmark in turn, then one summary against targets and the record.
    All(AllArgs),
}

/// Options of `all`.
#[derive(Debug, clap::Args)]
struct AllArgs {
    /// Shorter rows and smaller floods: under 3 minutes.
    #[arg(long)]
    quick: bool,
    /// The medrelay binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// The record to compare with.
    #[arg(long, value_name = "FILE", default_value = "docs/benchmarks.md")]
    record: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::All(args) => all(args).await,
        command => one(command).await.map(drop),
    }
}

async fn one(command: Command) -> anyhow::Result<Vec<Figure>> {
    match command {
        Command::Store(args) => store::run(args).await,
        Command::Schedule(args) => schedule::run(args).await,
        Command::Nats(args) => nats::run(args).await,
        Command::Notify(args) => notify::run(args).await,
        Command::Memory(args) => memory::run(args).await,
        Command::Patients(args) => patients::run(args).await,
        Command::Billing(args) => billing::run(args).await,
        Command::Analytics(args) => analytics::run(args).await,
        Command::All(_) => anyhow::bail!("`all` does not nest"),
    }
}

/// The command line of each benchmark under `all`, full or quick.
fn plan(quick: bool) -> [&'static [&'static str]; 8] {
    if quick {
        [
            &["store", "--seconds", "1", "--warmup", "0.3"],
            &[
                "schedule",
                "--seconds",
                "2",
                "--warmup",
                "0.5",
                "--fanout-sockets",
                "300",
                "--idle-connections",
                "1000",
            ],
            &[
                "nats",
                "--seconds",
                "2",
                "--warmup",
                "0.5",
                "--backlog-seconds",
                "1",
            ],
            &[
                "notify",
                "--pending",
                "200000",
                "--burst",
                "2000",
                "--emails",
                "300",
                "--booking-seconds",
                "2",
            ],
            &[
                "memory",
                "--subscribes",
                "5000",
                "--logins",
                "20000",
                "--login-seconds",
                "30",
            ],
            &[
                "patients",
                "--seconds",
                "2",
                "--warmup",
                "0.5",
                "--patients",
                "200",
            ],
            &[
                "billing",
                "--seconds",
                "2",
                "--warmup",
                "0.5",
                "--invoice-payments",
                "20000",
            ],
            &[
                "analytics",
                "--appointments",
                "50000",
                "--payments",
                "20000",
                "--requests",
                "20",
            ],
        ]
    } else {
        [
            &["store"],
            &["schedule"],
            &["nats"],
            &["notify"],
            &["memory"],
            &["patients"],
            &["billing"],
            &["analytics"],
        ]
    }
}

/// Runs every benchmark and prints the summary.
async fn all(args: AllArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut figures = Vec::new();
    for line in plan(args.quick) {
        let mut argv = vec!["medrelay-bench".to_owned()];
        argv.extend(line.iter().map(|s| (*s).to_owned()));
        if let Some(bin) = &args.server_bin
            && line[0] != "store"
        {
            argv.push("--server-bin".into());
            argv.push(bin.display().to_string());
        }
        eprintln!("all: {} ...", argv[1..].join(" "));
        println!();
        let cli = Cli::try_parse_from(&argv)?;
        figures.extend(one(cli.command).await?);
    }
    derive_ratios(&mut figures);
    let recorded = figures::recorded(&args.record);
    println!();
    println!(
        "summary ({}, {:.0} s; recorded: {})",
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        args.record.display()
    );
    let worse = figures::print_summary(&figures, &recorded);
    if worse > 0 {
        println!(
            "{worse} figure(s) more than 10% worse than the record: a regression to fix or to explain"
        );
    }
    Ok(())
}

/// Ratios to a baseline of the same run, steadier than absolute figures on
/// a shared machine.
fn derive_ratios(figures: &mut Vec<Figure>) {
    let get = |key: &str| figures.iter().find(|f| f.key == key).map(|f| f.value);
    if let (Some(bookings), Some(group)) = (get("schedule.bookings"), get("store.group_128")) {
        figures.push(Figure::plain(
            "schedule.bookings_vs_group_128",
            bookings / group,
            "x",
            true,
        ));
    }
}
