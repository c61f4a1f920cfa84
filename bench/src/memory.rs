//! `memory`: what a stranger can make the server hold.
//!
//! The release server (a child process, see [`crate::server`]) is read for
//! its resident memory (`VmRSS`) before and after two floods, each against a
//! stated bound:
//!
//! 1. **Unknown boards.** `--sockets` sockets (40), signed in as the admin,
//!    pipeline `--subscribes` (20,000) subscribes to boards of doctors that do
//!    not exist, spread evenly, each with `since: 0` (so no snapshot is read).
//!    The sockets are still open at the second reading. Each reply's code is
//!    counted, and the hub's channel count read from `/metrics`.
//! 2. **Made-up logins.** `--logins` (100,000) logins with random
//!    60-character usernames, 64 in flight, stopped after `--login-seconds`
//!    (90) if not done. The failed-login table's size is read from
//!    `/metrics`.
//!
//! Both run at a small scale first (warm-up), so that what is built once
//! (connection buffers, allocator arenas, lazily made state) exists before
//! the first reading. Rate limits and per-socket command limits are lifted
//! through the environment, as for every benchmark.
//!
//! `--binary` runs the same floods against another build (an older one, to
//! compare); figures it does not report show as `-`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args as ClapArgs;
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio::time::Instant as Deadline;
use tokio_tungstenite::tungstenite::Message;

use crate::figures::Figure;
use crate::server::{ADMIN_PASSWORD, ADMIN_USER, Server, locate_binary, metric};
use crate::stats::verdict;
use crate::ws::{self, Incoming, Socket};

/// RSS growth allowed for the unknown-board flood: the sockets held open
/// (about 13 KiB each when idle) and allocator slack. Before the fix each
/// subscribe with `since` to an unknown board kept a 1,024-event ring and a
/// task, some 40 KiB, for as long as the socket lived.
const BOARDS_BOUND: u64 = 4 << 20;
/// RSS growth allowed for the made-up logins: allocator slack only, since
/// such a login touches neither the failed-login table nor argon2.
const LOGINS_BOUND: u64 = 4 << 20;
/// Logins in flight at once.
const LOGIN_CONCURRENCY: usize = 64;
/// Longest wait for the replies of one socket's subscribes.
const PER_SOCKET: Duration = Duration::from_secs(60);

/// Options of `memory`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Sockets the unknown-board subscribes are spread over.
    #[arg(long, default_value_t = 40)]
    sockets: usize,
    /// Subscribes to boards of doctors that do not exist, in all.
    #[arg(long, default_value_t = 20_000)]
    subscribes: usize,
    /// Logins with random 60-character usernames.
    #[arg(long, default_value_t = 100_000)]
    logins: usize,
    /// The logins stop after this long (an old build hashes each one).
    #[arg(long, default_value_t = 90)]
    login_seconds: u64,
    /// The medrelay binary (default: next to this one).
    #[arg(long = "server-bin", alias = "binary", value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
}

/// One flood's figures.
struct Phase {
    name: String,
    done: usize,
    replies: BTreeMap<String, usize>,
    took: Duration,
    before: u64,
    after: u64,
    bound: u64,
}

/// Runs both floods and prints their table.
///
/// # Errors
/// When the server cannot start, or a socket or request fails.
pub async fn run(args: Args) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.sockets > 0, "--sockets must be at least 1");
    let binary = locate_binary(args.binary.as_deref())?;
    let server = Server::start(&binary).await?;
    let token = server.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(LOGIN_CONCURRENCY)
        .build()
        .context("building the HTTP client")?;

    eprintln!("memory: warming up");
    drop(unknown_boards(&server, &token, args.sockets, args.sockets * 10, "warm").await?);
    made_up_logins(&server, &http, 1_000, Duration::from_secs(30)).await?;
    settle().await;

    let before = server.rss_bytes()?;
    let started = Instant::now();
    let (sockets, replies) =
        unknown_boards(&server, &token, args.sockets, args.subscribes, "ghost").await?;
    let took = started.elapsed();
    settle().await;
    let boards = Phase {
        name: format!("unknown boards ({} sockets)", args.sockets),
        done: args.subscribes,
        replies,
        took,
        before,
        after: server.rss_bytes()?,
        bound: BOARDS_BOUND,
    };
    let hub_channels = metric(&server.metrics(&token).await?, "hub_channels");
    drop(sockets);
    server
        .wait_sockets_closed(&token, Duration::from_secs(10))
        .await?;

    let before = server.rss_bytes()?;
    let started = Instant::now();
    let limit = Duration::from_secs(args.login_seconds);
    let (done, replies) = made_up_logins(&server, &http, args.logins, limit).await?;
    let took = started.elapsed();
    settle().await;
    let logins = Phase {
        name: "made-up logins (60 chars)".to_owned(),
        done,
        replies,
        took,
        before,
        after: server.rss_bytes()?,
        bound: LOGINS_BOUND,
    };
    let table = metric(&server.metrics(&token).await?, "login_lockout_entries");
    server.stop().await?;

    let growth = |p: &Phase| {
        Figure::at_most(
            "",
            (p.after as f64 - p.before as f64) / 1_048_576.0,
            "MiB",
            mib(p.bound),
        )
    };
    let figures = vec![
        Figure {
            key: "memory.unknown_boards_growth".into(),
            ..growth(&boards)
        },
        Figure {
            key: "memory.made_up_logins_growth".into(),
            ..growth(&logins)
        },
    ];
    print(&[boards, logins], hub_channels, table, args.logins);
    Ok(figures)
}

/// Lets the server finish what it was doing before a reading.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Opens `sockets` sockets and pipelines `total` subscribes (with
/// `since: 0`) to boards of doctors that do not exist over them; returns
/// the sockets, still open, and the count of each reply code.
async fn unknown_boards(
    server: &Server,
    token: &str,
    sockets: usize,
    total: usize,
    tag: &str,
) -> anyhow::Result<(Vec<Socket>, BTreeMap<String, usize>)> {
    let mut held = Vec::with_capacity(sockets);
    let mut replies = BTreeMap::new();
    for s in 0..sockets {
        let mut socket = ws::connect_medrelay(server.addr, token).await?;
        let n = total / sockets + usize::from(s < total % sockets);
        let deadline = Deadline::now() + PER_SOCKET;
        for i in 0..n {
            let command = json!({"id": format!("s{i}"), "type": "subscribe",
                "channel": format!("board:{tag}-{s}-{i}"), "since": 0});
            socket
                .feed(Message::text(command.to_string()))
                .await
                .context("sending a subscribe")?;
        }
        socket.flush().await.context("sending the subscribes")?;
        let mut answered = 0;
        while answered < n {
            let text = ws::next_text(&mut socket, deadline).await?;
            let frame: Incoming<'_> =
                serde_json::from_str(text.as_str()).context("a frame that is not JSON")?;
            if frame.re.is_none() {
                continue;
            }
            let code = match (frame.ok, &frame.error) {
                (Some(true), _) => "ok".to_owned(),
                (_, Some(error)) => error["code"].as_str().unwrap_or("?").to_owned(),
                _ => "?".to_owned(),
            };
            *replies.entry(code).or_insert(0) += 1;
            answered += 1;
        }
        held.push(socket);
    }
    Ok((held, replies))
}

/// Up to `n` logins with random 60-character usernames, `LOGIN_CONCURRENCY`
/// at a time, for at most `limit`; returns how many were answered and the
/// count of each status.
async fn made_up_logins(
    server: &Server,
    http: &reqwest::Client,
    n: usize,
    limit: Duration,
) -> anyhow::Result<(usize, BTreeMap<String, usize>)> {
    let url = server.url("/api/auth/login");
    let stop = Instant::now() + limit;
    let statuses: Vec<Option<u16>> = stream::iter(0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                if Instant::now() >= stop {
                    return Ok(None);
                }
                let name: String = medrelay_actors::ids::random_bytes(30)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let response = http
                    .post(&url)
                    .json(&json!({"username": name, "password": "not-the-password"}))
                    .send()
                    .await
                    .context("POST /api/auth/login")?;
                let status = response.status().as_u16();
                response.bytes().await.context("reading a login reply")?;
                anyhow::Ok(Some(status))
            }
        })
        .buffer_unordered(LOGIN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut counts = BTreeMap::new();
    for status in statuses.iter().flatten() {
        *counts.entry(status.to_string()).or_insert(0) += 1;
    }
    Ok((statuses.iter().flatten().count(), counts))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn print(phases: &[Phase], hub_channels: Option<f64>, table: Option<f64>, logins_asked: usize) {
    let shown = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    println!("memory: server RSS across floods a stranger can send");
    println!(
        "{:<30} {:>8} {:>8}  {:<28} {:>10} {:>10} {:>9} {:>7}  verdict",
        "flood", "sent", "secs", "replies", "RSS before", "RSS after", "growth", "bound"
    );
    for p in phases {
        let replies = p
            .replies
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let growth = p.after as f64 - p.before as f64;
        println!(
            "{:<30} {:>8} {:>8.1}  {:<28} {:>6.1} MiB {:>6.1} MiB {:>+5.1} MiB {:>3} MiB  {}",
            p.name,
            p.done,
            p.took.as_secs_f64(),
            replies,
            mib(p.before),
            mib(p.after),
            growth / 1_048_576.0,
            p.bound >> 20,
            verdict(p.after <= p.before + p.bound)
        );
    }
    println!(
        "hub channels after the unknown boards (sockets still open): {}",
        shown(hub_channels)
    );
    println!(
        "failed-login table after the made-up logins: {} entries",
        shown(table)
    );
    if let Some(logins) = phases.get(1)
        && logins.done < logins_asked
    {
        println!(
            "made-up logins stopped at the time limit: {} of {logins_asked}",
            logins.done
        );
    }
}
