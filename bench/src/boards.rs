//! Board fan-out: one doctor's bookings delivered to many subscribers of
//! `board:prov000`, against a raw tokio-tungstenite broadcast of frames of
//! the same size at the same rate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt, stream};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::booking::{self, Plan};
use crate::server::Server;
use crate::stats::{Cores, CpuMeter, Summary, Window, micros_between};
use crate::ws::{self, Holders, Incoming};

/// Tasks that read the subscriber sockets (each holds a share of them).
pub const HOLDER_TASKS: usize = 4;
/// Sockets being opened at once.
const OPEN_CONCURRENCY: usize = 100;
/// How long subscribers keep reading after the last booking was acknowledged
/// (or the last raw frame sent), for deliveries still on their way.
const DRAIN: Duration = Duration::from_secs(1);
/// Slack on top of a phase's planned length before it counts as stuck.
const PHASE_SLACK: Duration = Duration::from_secs(30);

/// How the fan-out phase runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Subscriber sockets.
    pub sockets: usize,
    /// Bookings (or raw frames) per second.
    pub rate: f64,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub seconds: Duration,
}

/// medrelay's side of the fan-out.
#[derive(Debug)]
pub struct Medrelay {
    /// Delivery latency from the booking's ack at the booker.
    pub from_ack: Summary,
    /// Delivery latency from the booking's send at the booker.
    pub from_send: Summary,
    /// Delivery latency from the event's first delivery to any subscriber.
    pub from_first: Summary,
    /// Bookings sent inside the measured window.
    pub bookings: usize,
    /// Deliveries of those bookings that never arrived.
    pub missing: u64,
    /// Deliveries read before the booker read the ack (counted as 0 ms from ack).
    pub before_ack: u64,
    /// Booking replies that were not `ok`.
    pub errors: u64,
    /// The first such reply.
    pub first_error: Option<String>,
    /// Subscriber sockets closed by the server while held.
    pub lost: u64,
    /// Size of one `appointment_booked` frame as received.
    pub frame_bytes: usize,
    /// CPU used while booking and delivering.
    pub cpu: Option<Cores>,
}

/// The raw baseline's side.
#[derive(Debug)]
pub struct Raw {
    /// Delivery latency from the broadcaster's send.
    pub latency: Summary,
    /// Delivery latency from the frame's first delivery to any client.
    pub from_first: Summary,
    /// Frames sent inside the measured window.
    pub frames: usize,
    /// Deliveries of those that never arrived.
    pub missing: u64,
    /// Client sockets lost while held.
    pub lost: u64,
    /// CPU used while broadcasting (the raw server counts as the benchmark's).
    pub cpu: Option<Cores>,
}

/// The appointment of an `appointment_booked` event frame.
fn booked_appointment(text: &str) -> Option<String> {
    let frame: Incoming<'_> = serde_json::from_str(text).ok()?;
    if frame.tag.as_deref() != Some("event") {
        return None;
    }
    let event = frame.event?;
    if event.kind != "appointment_booked" {
        return None;
    }
    event.appointment_id.map(|a| a.into_owned())
}

/// The sequence number of a raw baseline frame.
fn raw_seq(text: &str) -> Option<u64> {
    let frame: Incoming<'_> = serde_json::from_str(text).ok()?;
    if frame.tag.as_deref() != Some("event") {
        return None;
    }
    frame.seq
}

/// Opens `n` sockets with `open` (at most [`OPEN_CONCURRENCY`] at once) and
/// hands each to `holders`.
async fn open_all<K, F, Fut>(holders: &mut Holders<K>, n: usize, open: F) -> anyhow::Result<()>
where
    K: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<ws::Socket>>,
{
    let mut opening = stream::iter(0..n)
        .map(open)
        .buffer_unordered(OPEN_CONCURRENCY);
    let mut opened = 0;
    while let Some(socket) = opening.next().await {
        holders
            .add(socket.with_context(|| format!("opening socket {} of {n}", opened + 1))?)
            .await?;
        opened += 1;
    }
    Ok(())
}

/// medrelay: `opts.sockets` admin sockets subscribed to `board:prov000`, and
/// one booker socket booking prov000 at `opts.rate`.
///
/// # Errors
/// When a socket cannot be opened or subscribed, or the booker fails.
pub async fn medrelay(
    server: &Server,
    token: &str,
    plan: &Arc<Plan>,
    opts: Options,
) -> anyhow::Result<Medrelay> {
    let planned = opts.warmup + opts.seconds;
    let hold_deadline = Instant::now() + planned + 4 * PHASE_SLACK;
    let mut holders = Holders::start(HOLDER_TASKS, booked_appointment, hold_deadline);
    let addr = server.addr;
    let date = plan.tomorrow;
    eprintln!(
        "schedule: fan-out: opening {} subscribers of board:prov000 ...",
        opts.sockets
    );
    open_all(&mut holders, opts.sockets, |_| async move {
        let mut socket = ws::connect_medrelay(addr, token).await?;
        let deadline = Instant::now() + PHASE_SLACK;
        ws::subscribe(&mut socket, "board:prov000", date, deadline).await?;
        Ok(socket)
    })
    .await?;

    eprintln!(
        "schedule: fan-out: booking prov000 at {}/s for {:.1} s ...",
        opts.rate,
        planned.as_secs_f64()
    );
    let booker = ws::connect_medrelay(addr, token).await?;
    let meter = CpuMeter::start(server.pid());
    let (tx, rx) = mpsc::channel(1024);
    let window = Window::starting_now(opts.warmup, opts.seconds);
    let deadline = window.until + PHASE_SLACK;
    let client = tokio::spawn(booking::pipelined(
        booker,
        rx,
        plan.clone(),
        window,
        deadline,
        true,
    ));
    let count = (opts.rate * planned.as_secs_f64()).ceil() as u64 + 1;
    let mut ks = plan.reserve_first_doctor(count).into_iter();
    booking::fixed_rate(vec![tx], || ks.next(), opts.rate, window).await?;
    let (booker, stats) = client.await.context("the booker task failed")??;
    tokio::time::sleep(DRAIN).await;
    let cpu = meter.cores();
    let held = holders.finish().await?;
    let mut booker = booker;
    let _ = timeout(Duration::from_secs(1), booker.close(None)).await;

    let mut sample = None;
    let mut lost = 0;
    let mut received = Vec::new();
    for h in held {
        ensure!(!h.timed_out, "a subscriber holder reached its deadline");
        sample = sample.or(h.sample);
        lost += h.lost;
        received.extend(h.received);
    }
    let measured: HashMap<String, (Instant, Instant)> = stats
        .booked
        .iter()
        .filter(|b| window.contains(b.sent) && b.sent < window.until)
        .filter_map(|b| Some((b.appointment_id.clone()?, (b.sent, b.acked))))
        .collect();
    let first = first_deliveries(&received);
    let mut from_ack = Vec::with_capacity(measured.len() * opts.sockets);
    let mut from_send = Vec::with_capacity(measured.len() * opts.sockets);
    let mut from_first = Vec::with_capacity(measured.len() * opts.sockets);
    let mut before_ack = 0;
    for (appointment, at) in &received {
        if let Some((sent, acked)) = measured.get(appointment) {
            if at < acked {
                before_ack += 1;
            }
            from_ack.push(micros_between(*acked, *at));
            from_send.push(micros_between(*sent, *at));
            if let Some(first) = first.get(appointment) {
                from_first.push(micros_between(*first, *at));
            }
        }
    }
    let expected = (measured.len() * opts.sockets) as u64;
    Ok(Medrelay {
        missing: expected.saturating_sub(from_ack.len() as u64),
        from_ack: Summary::new(from_ack, window.measured()),
        from_send: Summary::new(from_send, window.measured()),
        from_first: Summary::new(from_first, window.measured()),
        bookings: measured.len(),
        before_ack,
        errors: stats.errors,
        first_error: stats.first_error,
        lost,
        frame_bytes: sample.map_or(0, |s| s.len()),
        cpu,
    })
}

/// When each key was first received, by any socket.
fn first_deliveries<K: std::hash::Hash + Eq + Clone>(
    received: &[(K, Instant)],
) -> HashMap<K, Instant> {
    let mut first: HashMap<K, Instant> = HashMap::new();
    for (key, at) in received {
        first
            .entry(key.clone())
            .and_modify(|t| *t = (*t).min(*at))
            .or_insert(*at);
    }
    first
}

/// A raw frame of exactly `size` bytes (when `size` allows) carrying `seq`.
fn raw_frame(seq: u64, size: usize) -> String {
    let head = format!(r#"{{"type":"event","channel":"raw","seq":{seq},"pad":""#);
    let tail = r#""}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// The raw baseline server: accepts every connection on `listener` with
/// tokio-tungstenite's defaults (as axum does) and no `TCP_NODELAY` (as
/// medrelay's `axum::serve` does), and writes every frame of `frames` to
/// every socket from one task per socket. It never reads its sockets: the
/// clients send nothing.
async fn raw_server(
    listener: std::net::TcpListener,
    frames: broadcast::Sender<Utf8Bytes>,
    upgraded: Arc<AtomicUsize>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut sockets = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: let sockets close first.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut rx = frames.subscribe();
        let upgraded = upgraded.clone();
        sockets.spawn(async move {
            let Ok(Ok(mut socket)) = timeout(
                Duration::from_secs(10),
                tokio_tungstenite::accept_async(tcp),
            )
            .await
            else {
                return;
            };
            upgraded.fetch_add(1, Ordering::AcqRel);
            loop {
                match rx.recv().await {
                    Ok(text) => {
                        if socket.send(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// The raw baseline: `opts.sockets` plain clients of a tokio-tungstenite
/// server in this process (on its own runtime) that broadcasts `frame_bytes`-byte frames at
/// `opts.rate`.
///
/// # Errors
/// When the server cannot listen or a client cannot connect.
pub async fn raw(frame_bytes: usize, opts: Options, server_pid: u32) -> anyhow::Result<Raw> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("binding the raw baseline server")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (frames, _) = broadcast::channel(1024);
    let upgraded = Arc::new(AtomicUsize::new(0));
    // Its own runtime with as many worker threads as medrelay's (one per
    // core), as if it were its own process, so it does not share threads
    // with the clients.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("raw-server")
        .enable_all()
        .build()
        .context("starting the raw server's runtime")?;
    runtime.spawn(raw_server(listener, frames.clone(), upgraded.clone()));
    let result = raw_clients(addr, &frames, &upgraded, frame_bytes, opts, server_pid).await;
    runtime.shutdown_background();
    result
}

/// The raw baseline's clients and broadcaster (see [`raw`]).
async fn raw_clients(
    addr: SocketAddr,
    frames: &broadcast::Sender<Utf8Bytes>,
    upgraded: &AtomicUsize,
    frame_bytes: usize,
    opts: Options,
    server_pid: u32,
) -> anyhow::Result<Raw> {
    let planned = opts.warmup + opts.seconds;
    let hold_deadline = Instant::now() + planned + 4 * PHASE_SLACK;
    let mut holders = Holders::start(HOLDER_TASKS, raw_seq, hold_deadline);
    eprintln!(
        "schedule: raw baseline: opening {} sockets to {addr} ...",
        opts.sockets
    );
    open_all(&mut holders, opts.sockets, |_| ws::connect_plain(addr)).await?;
    let ready_by = Instant::now() + PHASE_SLACK;
    while upgraded.load(Ordering::Acquire) < opts.sockets {
        if Instant::now() >= ready_by {
            bail!(
                "the raw server upgraded only {} sockets",
                upgraded.load(Ordering::Acquire)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    eprintln!(
        "schedule: raw baseline: broadcasting {frame_bytes}-byte frames at {}/s for {:.1} s ...",
        opts.rate,
        planned.as_secs_f64()
    );
    let meter = CpuMeter::start(server_pid);
    let window = Window::starting_now(opts.warmup, opts.seconds);
    let start = Instant::now();
    let mut sent_at: Vec<Instant> = Vec::new();
    loop {
        let seq = sent_at.len() as u64;
        let due = start + Duration::from_secs_f64(seq as f64 / opts.rate);
        if !window.is_open(due) {
            break;
        }
        tokio::time::sleep_until(due).await;
        let frame = Utf8Bytes::from(raw_frame(seq, frame_bytes));
        sent_at.push(Instant::now());
        let _ = frames.send(frame);
    }
    tokio::time::sleep(DRAIN).await;
    let cpu = meter.cores();
    let held = holders.finish().await?;

    let mut lost = 0;
    let mut received = Vec::new();
    for h in held {
        ensure!(!h.timed_out, "a raw client holder reached its deadline");
        lost += h.lost;
        received.extend(h.received);
    }
    let first = first_deliveries(&received);
    let mut latencies = Vec::new();
    let mut from_first = Vec::new();
    for (seq, at) in &received {
        if let Some(sent) = usize::try_from(*seq).ok().and_then(|s| sent_at.get(s))
            && window.contains(*sent)
            && *sent < window.until
        {
            latencies.push(micros_between(*sent, *at));
            if let Some(first) = first.get(seq) {
                from_first.push(micros_between(*first, *at));
            }
        }
    }
    let frames_measured = sent_at
        .iter()
        .filter(|s| window.contains(**s) && **s < window.until)
        .count();
    let expected = (frames_measured * opts.sockets) as u64;
    Ok(Raw {
        missing: expected.saturating_sub(latencies.len() as u64),
        latency: Summary::new(latencies, window.measured()),
        from_first: Summary::new(from_first, window.measured()),
        frames: frames_measured,
        lost,
        cpu,
    })
}
