//! Idle connections: the server's resident memory per authenticated,
//! subscribed WebSocket that does nothing.

use std::time::Duration;

use anyhow::{Context, ensure};
use futures_util::{StreamExt, stream};
use tokio::time::{Instant, timeout};

use crate::boards::HOLDER_TASKS;
use crate::booking::DOCTORS;
use crate::server::Server;
use crate::stats::verdict;
use crate::ws::{self, Holders};

/// Sockets being opened at once.
/// Target server memory per idle connection, bytes.
pub const TARGET_IDLE_BYTES: f64 = 16.0 * 1024.0;

const OPEN_CONCURRENCY: usize = 200;
/// Longest wait for one socket to connect and be subscribed.
const PER_SOCKET: Duration = Duration::from_secs(30);
/// How long the sockets sit idle before the second reading.
const SETTLE: Duration = Duration::from_secs(2);

/// What the idle phase measured.
#[derive(Debug)]
pub struct Idle {
    /// Sockets opened and subscribed.
    pub opened: usize,
    /// Of those, still open when the second reading was taken.
    pub held: u64,
    /// Sockets that could not be opened or subscribed.
    pub failed: usize,
    /// The first such failure.
    pub first_failure: Option<String>,
    /// The server's `ws_open_sockets` at the second reading (the measured
    /// sockets and one warm-up socket per board).
    pub server_open: u64,
    /// Server RSS before opening (bytes).
    pub rss_before: u64,
    /// Server RSS after opening and settling (bytes).
    pub rss_after: u64,
    /// Time taken to open and subscribe them all.
    pub open_time: Duration,
    /// Mean size of the subscribe replies (mostly the board snapshot).
    pub reply_bytes: usize,
}

/// Idle sockets expect nothing; every text frame counts as "other".
fn nothing(_: &str) -> Option<()> {
    None
}

/// Opens one warm-up socket per board, reads the server's RSS, opens `n`
/// admin sockets, socket `i` subscribed to `board:prov{i % 100}` (a one-day
/// snapshot of `date`), waits 2 s and reads the RSS again.
///
/// # Errors
/// When RSS or `/metrics` cannot be read, or the phase takes over `limit`.
pub async fn run(
    server: &Server,
    token: &str,
    date: jiff::civil::Date,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Idle> {
    let still_open = server
        .wait_sockets_closed(token, Duration::from_secs(10))
        .await?;
    if still_open > 0 {
        eprintln!("schedule: idle: {still_open} sockets of earlier phases still open");
    }
    let addr = server.addr;
    // One socket per board first, kept open through the measurement: every
    // doctor's actor is loaded (its appointments in memory) and every board
    // channel exists before the first reading, so the difference is the
    // idle sockets alone.
    let warm = Holders::start(1, nothing, Instant::now() + limit);
    for doctor in 0..DOCTORS {
        let deadline = Instant::now() + PER_SOCKET;
        let mut socket = ws::connect_medrelay(addr, token).await?;
        ws::subscribe(
            &mut socket,
            &format!("board:prov{doctor:03}"),
            date,
            deadline,
        )
        .await?;
        timeout(PER_SOCKET, warm.sender(0).send(socket))
            .await
            .context("the warm-up holder is stuck")?
            .map_err(|_| anyhow::anyhow!("the warm-up holder ended early"))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss_bytes()?;
    let holders = Holders::start(HOLDER_TASKS, nothing, Instant::now() + limit);
    eprintln!("schedule: idle: opening {n} subscribed sockets, {OPEN_CONCURRENCY} at a time ...");
    let started = Instant::now();
    let opening = stream::iter(0..n)
        .map(|i| {
            let to_holder = holders.sender(i);
            async move {
                let deadline = Instant::now() + PER_SOCKET;
                let mut socket = ws::connect_medrelay(addr, token).await?;
                let channel = format!("board:prov{:03}", i as u64 % DOCTORS);
                let reply_bytes = ws::subscribe(&mut socket, &channel, date, deadline).await?;
                timeout(PER_SOCKET, to_holder.send(socket))
                    .await
                    .context("a holder task is stuck")?
                    .map_err(|_| anyhow::anyhow!("a holder task ended early"))?;
                Ok(reply_bytes)
            }
        })
        .buffer_unordered(OPEN_CONCURRENCY);
    let results: Vec<anyhow::Result<usize>> = timeout(limit, opening.collect())
        .await
        .context("opening the idle sockets took too long")?;
    let open_time = started.elapsed();
    let mut opened = 0;
    let mut failed = 0;
    let mut first_failure = None;
    let mut reply_bytes = 0;
    for result in results {
        match result {
            Ok(bytes) => {
                opened += 1;
                reply_bytes += bytes;
            }
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    eprintln!(
        "schedule: idle: {opened} open in {:.1} s ({failed} failed); holding {} s ...",
        open_time.as_secs_f64(),
        SETTLE.as_secs()
    );
    tokio::time::sleep(SETTLE).await;
    let rss_after = server.rss_bytes()?;
    let server_open = server.open_sockets(token).await?;
    eprintln!("schedule: idle: closing ...");
    let held = holders.finish().await?;
    warm.finish().await?;
    let mut lost = 0;
    for h in &held {
        ensure!(!h.timed_out, "an idle holder reached its deadline");
        lost += h.lost;
    }
    Ok(Idle {
        opened,
        held: (opened as u64).saturating_sub(lost),
        failed,
        first_failure,
        server_open,
        rss_before,
        rss_after,
        open_time,
        reply_bytes: reply_bytes.checked_div(opened).unwrap_or(0),
    })
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Bytes of RSS per held connection.
pub fn per_connection(idle: &Idle) -> Option<f64> {
    (idle.held > 0)
        .then(|| idle.rss_after.saturating_sub(idle.rss_before) as f64 / idle.held as f64)
}

/// The idle-connection table of the `schedule` benchmark.
pub fn print(used: &Idle, fresh: &Idle, rss_setup: u64) {
    println!(
        "schedule: idle connections ({} sockets, each subscribed to one of {DOCTORS} boards, idle 2 s)",
        used.opened + used.failed,
    );
    println!(
        "{:<30}{:>8}{:>8}{:>12}{:>12}{:>12}",
        "server", "held", "open s", "RSS before", "RSS after", "bytes/conn"
    );
    for (name, idle) in [
        ("after the other benchmarks", used),
        ("fresh (restarted, same data)", fresh),
    ] {
        println!(
            "{name:<30}{:>8}{:>8.1}{:>8.1} MiB{:>8.1} MiB{:>12}",
            idle.held,
            idle.open_time.as_secs_f64(),
            mib(idle.rss_before),
            mib(idle.rss_after),
            per_connection(idle).map_or_else(|| "-".to_owned(), |b| format!("{b:.0}"))
        );
        if idle.failed > 0 || idle.server_open != idle.held + DOCTORS {
            println!(
                "  {} failed to open; the server reports {} open sockets ({} measured + {DOCTORS} warm-up expected)",
                idle.failed, idle.server_open, idle.held
            );
        }
        if let Some(first) = &idle.first_failure {
            println!("  first failure: {first}");
        }
    }
    println!(
        "subscribe replies (one-day board snapshots) of {} bytes on average; server RSS right after setup: {:.1} MiB",
        fresh.reply_bytes,
        mib(rss_setup)
    );
    println!(
        "note: memory the server freed in earlier phases and reuses makes the first row an under-estimate"
    );
    let verdicts: Vec<String> = [("after the other benchmarks", used), ("fresh", fresh)]
        .iter()
        .map(|(name, idle)| {
            format!(
                "{} ({name})",
                verdict(per_connection(idle).is_some_and(|b| b <= TARGET_IDLE_BYTES))
            )
        })
        .collect();
    println!(
        "targets: <= 16 KiB per idle connection: {}",
        verdicts.join(", ")
    );
}
