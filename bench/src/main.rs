//! medrelay benchmarks: each subcommand measures one part of the system and
//! prints its figures as a plain-text table on stdout (progress goes to stderr).
//!
//! Build and run in release mode, on the filesystem the service will use:
//!
//! ```text
//! cargo run --release -p medrelay-bench -- store [--seconds 3] [--warmup 0.5]
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

mod store;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Store(args) => store::run(args).await,
    }
}
