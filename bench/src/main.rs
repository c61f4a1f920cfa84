//! medrelay benchmarks: each subcommand measures one part of the system and
//! prints its figures as a plain-text table on stdout (progress goes to stderr).
//!
//! Build and run in release mode, on the filesystem the service will use:
//!
//! ```text
//! cargo run --release -p medrelay-bench -- store [--seconds 3] [--warmup 0.5]
//! cargo build --release -p medrelay -p medrelay-bench   # schedule runs the server binary
//! cargo run --release -p medrelay-bench -- schedule [--clients 128] [--seconds 5] \
//!     [--fanout-rate 100] [--fanout-sockets 1000] [--idle-connections 10000]
//! cargo run --release -p medrelay-bench -- nats [--seconds 5] [--backlog-seconds 3]
//! cargo run --release -p medrelay-bench -- notify [--pending 1000000] [--burst 10000] [--emails 3000]
//! cargo run --release -p medrelay-bench -- memory [--sockets 40] [--subscribes 20000] \
//!     [--logins 100000] [--login-seconds 90] [--binary PATH]
//! ```
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

mod boards;
mod booking;
mod idle;
mod memory;
mod nats;
mod notify;
mod schedule;
mod server;
// Shared with the test suite (tests/api), which reads more of each message.
#[allow(dead_code)]
mod smtp_sink;
mod stats;
mod store;
mod ws;

use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Store(args) => store::run(args).await,
        Command::Schedule(args) => schedule::run(args).await,
        Command::Nats(args) => nats::run(args).await,
        Command::Notify(args) => notify::run(args).await,
        Command::Memory(args) => memory::run(args).await,
    }
}
