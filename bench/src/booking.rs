//! Booking over WebSocket: which slot the k-th booking takes, a closed-loop
//! client (one booking in flight per socket) and a pipelined client fed by a
//! fixed-rate scheduler (several in flight per socket).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use jiff::civil::Date;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::stats::{Window, micros_between};
use crate::ws::{self, Incoming, Socket, next_text, send_text};

/// Doctors `prov000` .. `prov099`.
pub const DOCTORS: u64 = 100;
/// Patients signed up for the benchmark.
pub const PATIENTS: u64 = 200;
/// 5-minute slots in a day.
const SLOTS_PER_DAY: u64 = 24 * 60 / 5;

/// Assigns every booking a slot nobody has booked: the k-th booking of the
/// whole run goes to doctor `k % 100`, patient `k % 200`, slot index
/// `s = k / 100`, that is `s / 288` days after tomorrow (UTC) at `(s % 288) * 5`
/// minutes. A doctor never gets a slot twice, and a patient always sees the
/// same doctor at slot indexes two apart, so never two overlapping
/// appointments. One counter serves every benchmark of the run.
#[derive(Debug)]
pub struct Plan {
    next: AtomicU64,
    patients: Vec<String>,
    /// Tomorrow in UTC: the first day bookings use.
    pub tomorrow: Date,
}

impl Plan {
    /// A plan over `patients` (their `patientId`s, [`PATIENTS`] of them).
    ///
    /// # Errors
    /// When the patient count is wrong or tomorrow cannot be computed.
    pub fn new(patients: Vec<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            patients.len() as u64 == PATIENTS,
            "the plan needs {PATIENTS} patients, got {}",
            patients.len()
        );
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        Ok(Self {
            next: AtomicU64::new(0),
            patients,
            tomorrow: today.tomorrow().context("computing tomorrow")?,
        })
    }

    /// The next k.
    pub fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// `n` values of k that all book doctor `prov000` (multiples of 100), past
    /// every k handed out so far; the counter moves beyond them.
    pub fn reserve_first_doctor(&self, n: u64) -> Vec<u64> {
        let mut start = 0;
        let _ = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                start = k.div_ceil(DOCTORS) * DOCTORS;
                Some(start + n * DOCTORS)
            });
        (0..n).map(|j| start + j * DOCTORS).collect()
    }

    /// The `book` command of booking k, with id `b<k>`.
    ///
    /// # Errors
    /// When the date would overflow (it cannot within the horizon).
    pub fn command(&self, k: u64) -> anyhow::Result<String> {
        let doctor = k % DOCTORS;
        let patient = &self.patients[(k % PATIENTS) as usize];
        let slot = k / DOCTORS;
        let days = i64::try_from(slot / SLOTS_PER_DAY).context("slot index too large")?;
        let date = self
            .tomorrow
            .checked_add(jiff::Span::new().try_days(days)?)
            .context("booking date out of range")?;
        let minutes = (slot % SLOTS_PER_DAY) * 5;
        Ok(format!(
            r#"{{"id":"b{k}","type":"book","patientId":"{patient}","providerId":"prov{doctor:03}","appointmentDate":"{date}","timeSlot":"{:02}:{:02}"}}"#,
            minutes / 60,
            minutes % 60,
        ))
    }
}

/// One acknowledged booking.
#[derive(Debug, Clone)]
pub struct Booked {
    /// When the command was handed to the socket.
    pub sent: Instant,
    /// When its reply was read.
    pub acked: Instant,
    /// The appointment created (`None` when refused).
    pub appointment_id: Option<String>,
}

/// What one booking client saw.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Ack latencies (µs) of bookings acknowledged inside the measured window.
    pub latencies: Vec<u32>,
    /// Every successful booking (kept only when asked for).
    pub booked: Vec<Booked>,
    /// Replies that were not `ok` (anywhere in the run, warm-up included).
    pub errors: u64,
    /// The first of those, for the report.
    pub first_error: Option<String>,
}

impl ClientStats {
    fn reply(
        &mut self,
        window: &Window,
        booked: Booked,
        ok: bool,
        error: Option<String>,
        keep: bool,
    ) {
        if !ok {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = error;
            }
            return;
        }
        if window.contains(booked.acked) {
            self.latencies
                .push(micros_between(booked.sent, booked.acked));
        }
        if keep {
            self.booked.push(booked);
        }
    }

    /// Merges another client's figures into these.
    pub fn absorb(&mut self, other: ClientStats) {
        self.latencies.extend(other.latencies);
        self.booked.extend(other.booked);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A reply read off a booking socket.
struct Ack {
    re: String,
    ok: bool,
    appointment_id: Option<String>,
    error: Option<String>,
}

fn parse_ack(text: &str) -> anyhow::Result<Option<Ack>> {
    let frame: Incoming<'_> = serde_json::from_str(text).context("a frame that is not JSON")?;
    if frame.tag.as_deref() == Some("event") {
        return Ok(None);
    }
    let Some(re) = frame.re else {
        bail!("a reply without re: {text}");
    };
    Ok(Some(Ack {
        re: re.into_owned(),
        ok: frame.ok == Some(true),
        appointment_id: frame
            .data
            .and_then(|d| d.appointment_id)
            .map(Cow::into_owned),
        error: frame.error.map(|e| e.to_string()),
    }))
}

/// Closed loop: send a booking, wait for its reply, send the next, until the
/// window closes. Returns the socket for reuse.
///
/// # Errors
/// When the socket fails or a reply does not come by `deadline`.
pub async fn closed_loop(
    mut socket: Socket,
    plan: Arc<Plan>,
    window: Window,
    deadline: Instant,
) -> anyhow::Result<(Socket, ClientStats)> {
    let mut stats = ClientStats::default();
    while window.is_open(Instant::now()) {
        let k = plan.next();
        let command = plan.command(k)?;
        let id = format!("b{k}");
        let sent = Instant::now();
        send_text(&mut socket, command, deadline).await?;
        let ack = loop {
            let text = next_text(&mut socket, deadline).await?;
            if let Some(ack) = parse_ack(text.as_str())?
                && ack.re == id
            {
                break ack;
            }
        };
        let booked = Booked {
            sent,
            acked: Instant::now(),
            appointment_id: ack.appointment_id,
        };
        stats.reply(&window, booked, ack.ok, ack.error, false);
    }
    Ok((socket, stats))
}

/// Pipelined client: sends each k the scheduler hands it at once, keeps a
/// FIFO of what is in flight (the server answers each socket in order) and
/// matches replies by `re`. Ends when the scheduler is done and every reply
/// is in. With `keep`, returns every booking made.
///
/// # Errors
/// When the socket fails, a reply matches nothing sent, or `deadline` passes.
pub async fn pipelined(
    mut socket: Socket,
    mut work: mpsc::Receiver<u64>,
    plan: Arc<Plan>,
    window: Window,
    deadline: Instant,
    keep: bool,
) -> anyhow::Result<(Socket, ClientStats)> {
    let mut stats = ClientStats::default();
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut scheduling = true;
    while scheduling || !in_flight.is_empty() {
        tokio::select! {
            k = work.recv(), if scheduling => match k {
                Some(k) => {
                    let command = plan.command(k)?;
                    in_flight.push_back((k, Instant::now()));
                    timeout_at(deadline, socket.send(Message::text(command)))
                        .await
                        .context("sending a booking: deadline passed")?
                        .context("sending a booking")?;
                }
                None => scheduling = false,
            },
            message = timeout_at(deadline, socket.next()), if !in_flight.is_empty() => {
                let acked = Instant::now();
                let text = match message.context("waiting for booking replies: deadline passed")? {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => bail!("the server closed a booking socket: {frame:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e).context("reading a booking reply"),
                    None => bail!("a booking socket ended"),
                };
                let Some(ack) = parse_ack(text.as_str())? else { continue };
                let position = in_flight
                    .iter()
                    .position(|(k, _)| ack.re.strip_prefix('b').and_then(|n| n.parse().ok()) == Some(*k))
                    .with_context(|| format!("a reply to nothing in flight: {}", text.as_str()))?;
                if position != 0 {
                    eprintln!("schedule: reply {} overtook {} earlier booking(s) on its socket", ack.re, position);
                }
                let Some((_, sent)) = in_flight.remove(position) else { continue };
                let booked = Booked { sent, acked, appointment_id: ack.appointment_id };
                stats.reply(&window, booked, ack.ok, ack.error, keep);
            }
        }
    }
    Ok((socket, stats))
}

/// Issues `ks` at `rate` per second from the start of `window` until it
/// closes (or `ks` runs out), round robin over `clients`. A 1 ms timer drives
/// it: each tick hands out every booking whose due time has passed.
/// Returns how many were issued.
///
/// # Errors
/// When a client stops taking work for 10 s.
pub async fn fixed_rate(
    clients: Vec<mpsc::Sender<u64>>,
    mut ks: impl FnMut() -> Option<u64>,
    rate: f64,
    window: Window,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut issued: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(issued as f64 / rate);
        if !window.is_open(due) {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let Some(k) = ks() else { break };
        let client = &clients[(issued % clients.len() as u64) as usize];
        tokio::time::timeout(Duration::from_secs(10), client.send(k))
            .await
            .context("a booking client took no work for 10 s")?
            .map_err(|_| anyhow::anyhow!("a booking client ended early"))?;
        issued += 1;
    }
    Ok(issued)
}

/// Slack on top of a phase's planned length before it counts as stuck.
pub(crate) const PHASE_SLACK: Duration = Duration::from_secs(30);

/// Opens `n` booking sockets, 32 at a time.
pub(crate) async fn open_booking_sockets(
    server: &Server,
    token: &str,
    n: usize,
) -> anyhow::Result<Vec<Socket>> {
    let addr = server.addr;
    stream::iter(0..n)
        .map(|_| ws::connect_medrelay(addr, token))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Waits for every client task; returns their sockets and merged figures.
pub(crate) async fn gather(
    mut tasks: JoinSet<anyhow::Result<(Socket, ClientStats)>>,
) -> anyhow::Result<(Vec<Socket>, ClientStats)> {
    let mut sockets = Vec::with_capacity(tasks.len());
    let mut stats = ClientStats::default();
    while let Some(joined) = tasks.join_next().await {
        let (socket, client) = joined.context("a booking client task failed")??;
        sockets.push(socket);
        stats.absorb(client);
    }
    Ok((sockets, stats))
}

/// Closed-loop bookings from every socket for one window after `warmup`.
pub(crate) async fn full_speed(
    sockets: Vec<Socket>,
    plan: &Arc<Plan>,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<(Vec<Socket>, ClientStats, Window)> {
    let window = Window::starting_now(warmup, measure);
    let deadline = window.until + PHASE_SLACK;
    let mut tasks = JoinSet::new();
    for socket in sockets {
        tasks.spawn(closed_loop(socket, plan.clone(), window, deadline));
    }
    let (sockets, stats) = gather(tasks).await?;
    Ok((sockets, stats, window))
}

/// Sends a close frame on every socket (1 s each at most) and drops them.
pub(crate) async fn close_all(sockets: Vec<Socket>) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        for mut socket in sockets {
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        }
    })
    .await;
}
