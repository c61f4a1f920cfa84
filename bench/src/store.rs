//! The `store` benchmark: durable writes, one fsync per write against group commit.
//!
//! Rows, each measured for `--seconds` after `--warmup` seconds, each on a fresh
//! database in its own temporary directory (under `$TMPDIR`, default `/tmp`):
//!
//! 1. **baseline**: plain redb, one writer, one write transaction per row
//!    inserted, committed with redb's default (immediate, fsync'd) durability.
//!    This is what a store without group commit would do.
//! 2. **group commit**: [`Store::write`] from 1, 8, 64 and 256 concurrent tokio
//!    tasks, each looping over one-put batches keyed by the server's own
//!    time-ordered ids (as every record medrelay creates is keyed). The
//!    store's writer thread applies every batch queued at that moment in one
//!    transaction and acknowledges them after its single fsync.
//! 3. **group commit, scattered**: 64 writers, each writing its own contiguous
//!    key range, so one commit dirties up to 64 leaves: the pessimistic case.
//!    Its commits are I/O-bound (about 17 µs more per batch on the development
//!    machine) and it is shown for comparison, not held to the targets.
//!
//! Every write stores the same 100-byte value (the store's 2-byte schema
//! version followed by the record's JSON; the baseline inserts those very
//! bytes). A write counts when it completes inside the measured window; its
//! latency runs from just before the write is issued (after its batch is
//! built) until it is acknowledged as durable.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use medrelay_actors::hub::EventHub;
use medrelay_actors::store::{Record, Store, StoreConfig, Table, WriteBatch, WriteError};
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::figures::Figure;
use crate::stats::{ms, percentile, verdict};

/// Concurrent writers of the group-commit rows.
const WRITER_LEVELS: [usize; 5] = [1, 8, 64, 128, 256];
/// The writer count compared against the baseline and the targets.
const COMPARE_AT: usize = 64;
/// Target throughput at [`COMPARE_AT`] writers.
const TARGET_WRITES_PER_SEC: f64 = 50_000.0;
/// Target speed-up over the baseline at [`COMPARE_AT`] writers.
const TARGET_SPEEDUP: f64 = 10.0;

/// Length of [`BenchRecord::body`]: with the 2-byte schema version and the
/// JSON around it (`{"body":""}`, 11 bytes) every stored value is 100 bytes.
const BODY_LEN: usize = 87;

/// The baseline's table, shaped like the store's record tables.
const BASELINE_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("scratch");

/// Options of the `store` benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds measured per row.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds of warm-up per row before measuring starts.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
}

/// The value every write stores.
#[derive(Debug, Serialize, Deserialize)]
struct BenchRecord {
    body: String,
}

impl Record for BenchRecord {
    const TABLE: Table = Table::Scratch;
    const VERSION: u16 = 1;
}

impl BenchRecord {
    fn new() -> Self {
        Self {
            body: "x".repeat(BODY_LEN),
        }
    }

    /// The bytes the store keeps for this record: the big-endian schema
    /// version, then the JSON serde produces (the body needs no escaping).
    fn encoded(&self) -> Vec<u8> {
        let mut out = Self::VERSION.to_be_bytes().to_vec();
        out.extend_from_slice(format!(r#"{{"body":"{}"}}"#, self.body).as_bytes());
        out
    }
}

/// When a row's measurement starts and ends.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

impl Window {
    fn starting_now(warmup: Duration, measure: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            measure_from,
            until: measure_from + measure,
        }
    }

    /// Whether a write issued at `now` is still worth issuing.
    fn is_open(&self, now: Instant) -> bool {
        now < self.until
    }

    /// Records the latency of a write issued at `started` and acknowledged at
    /// `done`, if it completed inside the measured window.
    fn record(&self, latencies: &mut Vec<u32>, started: Instant, done: Instant) {
        if done >= self.measure_from && done <= self.until {
            let micros = (done - started).as_micros();
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
}

/// Throughput and latency of one row.
#[derive(Debug)]
struct Summary {
    writes_per_sec: f64,
    /// Microseconds; `None` when nothing completed.
    p50: Option<u32>,
    p99: Option<u32>,
}

impl Summary {
    fn new(mut latencies: Vec<u32>, measured: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            writes_per_sec: latencies.len() as f64 / measured.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
        }
    }
}

/// Runs every row, prints the table and returns the figures.
///
/// # Errors
/// When a temporary directory or database cannot be created, or a write fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    let (measure, warmup) = crate::stats::measuring(args.seconds, args.warmup)?;
    let payload = BenchRecord::new().encoded();
    let payload_len = payload.len();

    eprintln!("store: baseline, 1 writer ...");
    let latencies = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        baseline(&dir.path().join("baseline.redb"), warmup, measure, &payload)
    })
    .await??;
    let baseline = Summary::new(latencies, measure);

    let mut rows = Vec::with_capacity(WRITER_LEVELS.len());
    for writers in WRITER_LEVELS {
        eprintln!("store: group commit, {writers} writers ...");
        let latencies = group_commit(writers, Keys::TimeOrdered, warmup, measure).await?;
        rows.push((writers, Summary::new(latencies, measure)));
    }
    eprintln!("store: group commit, {COMPARE_AT} writers, scattered keys ...");
    let latencies = group_commit(COMPARE_AT, Keys::Scattered, warmup, measure).await?;
    let scattered = Summary::new(latencies, measure);

    println!(
        "store: durable writes (payload {payload_len} bytes), {:.1} s per row",
        args.seconds
    );
    println!(
        "{:<25}{:>7}{:>11}{:>10}{:>9}",
        "mode", "writers", "writes/s", "p50 ms", "p99 ms"
    );
    print_row("baseline (1 txn/write)", 1, &baseline);
    for (writers, summary) in &rows {
        print_row("group commit", *writers, summary);
    }
    print_row("group commit, scattered", COMPARE_AT, &scattered);

    let at = |n: usize| {
        rows.iter()
            .find(|(writers, _)| *writers == n)
            .map(|(_, summary)| summary.writes_per_sec)
            .context("no group-commit row to compare")
    };
    let compared = at(COMPARE_AT)?;
    let speedup = compared / baseline.writes_per_sec;
    let alone = at(1)? / baseline.writes_per_sec;
    let weakest = rows
        .iter()
        .map(|(_, summary)| summary.writes_per_sec / baseline.writes_per_sec)
        .fold(f64::INFINITY, f64::min);
    println!("group commit @{COMPARE_AT} vs baseline: {speedup:.1}x; @1: {alone:.2}x");
    println!(
        "targets: >= 50,000 writes/s at {COMPARE_AT} writers: {}; >= 10x baseline: {}; >= baseline at every writer count: {}",
        verdict(compared >= TARGET_WRITES_PER_SEC),
        verdict(speedup >= TARGET_SPEEDUP),
        verdict(weakest >= 1.0),
    );
    Ok(vec![
        Figure::plain("store.baseline", baseline.writes_per_sec, "writes/s", true),
        Figure::at_least("store.group_1_vs_baseline", alone, "x", 1.0),
        Figure::at_least("store.group_weakest_vs_baseline", weakest, "x", 1.0),
        Figure::at_least(
            "store.group_64",
            compared,
            "writes/s",
            TARGET_WRITES_PER_SEC,
        ),
        Figure::at_least("store.group_64_vs_baseline", speedup, "x", TARGET_SPEEDUP),
        Figure::plain("store.group_128", at(128)?, "writes/s", true),
    ])
}

fn print_row(mode: &str, writers: usize, summary: &Summary) {
    println!(
        "{mode:<25}{writers:>7}{:>11.0}{:>10}{:>9}",
        summary.writes_per_sec,
        ms(summary.p50),
        ms(summary.p99),
    );
}

/// One writer, one fsync'd redb transaction per write; returns the latencies
/// (microseconds) of the commits completed inside the measured window.
fn baseline(
    path: &Path,
    warmup: Duration,
    measure: Duration,
    payload: &[u8],
) -> anyhow::Result<Vec<u32>> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(BASELINE_TABLE)?;
    txn.commit()?;

    let window = Window::starting_now(warmup, measure);
    let mut latencies = Vec::new();
    let mut seq: u64 = 0;
    while window.is_open(Instant::now()) {
        let key = format!("b-{seq:012}");
        seq += 1;
        let started = Instant::now();
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(BASELINE_TABLE)?;
            table.insert(key.as_str(), payload)?;
        }
        txn.commit()?;
        window.record(&mut latencies, started, Instant::now());
    }
    Ok(latencies)
}

/// `writers` tasks writing through one fresh [`Store`]; returns the latencies
/// (microseconds) of the writes acknowledged inside the measured window.
async fn group_commit(
    writers: usize,
    keys: Keys,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Vec<u32>> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let store = Store::open(
        &dir.path().join("store.redb"),
        StoreConfig::default(),
        EventHub::new(16),
    )?;

    let window = Window::starting_now(warmup, measure);
    let mut tasks = JoinSet::new();
    for writer in 0..writers {
        tasks.spawn(write_loop(store.clone(), writer, keys, window));
    }
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        latencies.extend(joined??);
    }

    store.close().await;
    Ok(latencies)
}

/// How the keys of one benchmark row are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// The server's own generated ids (`medrelay_actors::ids::new_id`), which
    /// sort by creation time: every record medrelay creates is keyed this way,
    /// so inserts land at the right edge of the tree.
    TimeOrdered,
    /// One contiguous key range per writer (`w007-000000000042`): each commit
    /// touches up to one leaf per writer. A pessimistic pattern, shown for
    /// comparison.
    Scattered,
}

/// One writer: one-put batches with unique keys until the window closes.
async fn write_loop(
    store: Store,
    writer: usize,
    keys: Keys,
    window: Window,
) -> Result<Vec<u32>, WriteError> {
    let record = BenchRecord::new();
    let mut latencies = Vec::new();
    let mut seq: u64 = 0;
    while window.is_open(Instant::now()) {
        let mut batch = WriteBatch::new();
        let key = match keys {
            Keys::TimeOrdered => medrelay_actors::ids::new_id("bench"),
            Keys::Scattered => format!("w{writer:03}-{seq:012}"),
        };
        batch.put(key, &record);
        seq += 1;
        let started = Instant::now();
        store.write(batch).await?;
        window.record(&mut latencies, started, Instant::now());
    }
    Ok(latencies)
}
