//! Measuring windows, latency percentiles and table helpers shared by the
//! benchmarks.

use std::time::Duration;

use anyhow::Context;

use tokio::time::Instant;

/// When one measurement starts and ends (after a warm-up).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the measured part.
    pub measure_from: Instant,
    /// End of the measured part; nothing new is issued after it.
    pub until: Instant,
}

impl Window {
    /// A window starting `warmup` from now and lasting `measure`.
    pub fn starting_now(warmup: Duration, measure: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            measure_from,
            until: measure_from + measure,
        }
    }

    /// Whether an operation issued at `now` is still worth issuing.
    pub fn is_open(&self, now: Instant) -> bool {
        now < self.until
    }

    /// Whether `at` falls inside the measured part.
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.measure_from && at <= self.until
    }

    /// Length of the measured part.
    pub fn measured(&self) -> Duration {
        self.until - self.measure_from
    }
}

/// Microseconds from `from` to `to` (0 when `to` is earlier), saturating at `u32::MAX`.
pub fn micros_between(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u32::MAX)
}

/// Throughput and latency percentiles of one row.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Completed operations per second of measured time.
    pub per_sec: f64,
    /// Microseconds; `None` when nothing completed.
    pub p50: Option<u32>,
    /// Microseconds; `None` when nothing completed.
    pub p99: Option<u32>,
}

impl Summary {
    /// Summarises `latencies` (microseconds) completed during `measured`.
    pub fn new(mut latencies: Vec<u32>, measured: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            per_sec: latencies.len() as f64 / measured.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
        }
    }
}

/// Checks `--seconds` and `--warmup` and turns them into durations
/// (measured, warm-up).
///
/// # Errors
/// When either is not a finite, non-negative number (or `seconds` is zero).
pub fn measuring(seconds: f64, warmup: f64) -> anyhow::Result<(Duration, Duration)> {
    anyhow::ensure!(
        seconds.is_finite() && seconds > 0.0,
        "--seconds must be a positive number of seconds"
    );
    anyhow::ensure!(
        warmup.is_finite() && warmup >= 0.0,
        "--warmup must be zero or a positive number of seconds"
    );
    Ok((
        Duration::from_secs_f64(seconds),
        Duration::from_secs_f64(warmup),
    ))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// Microseconds as milliseconds with two decimals, `-` when absent.
pub fn ms(micros: Option<u32>) -> String {
    match micros {
        Some(us) => format!("{:.2}", f64::from(us) / 1_000.0),
        None => "-".to_owned(),
    }
}

/// `PASS` or `MISS`.
pub fn verdict(met: bool) -> &'static str {
    if met { "PASS" } else { "MISS" }
}

/// CPU time used by a process (`/proc/PID/stat`, or this process), and by
/// the whole machine (`/proc/stat`), in seconds.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    server: f64,
    /// The server's `store-writer` thread.
    writer: Option<f64>,
    bench: f64,
    machine: f64,
    /// Bytes the server passed to write calls (`wchar` in `/proc/PID/io`).
    written: Option<f64>,
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

fn process_cpu(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name: state ppid ... utime (14th) stime (15th).
    let rest = stat
        .rsplit_once(')')
        .with_context(|| format!("malformed {path}"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("malformed {path}"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SEC)
}

/// Bytes `pid` has passed to `write`-like calls (`wchar` of `/proc/PID/io`).
fn process_written(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time of the server's thread named `name`, if there is one.
fn thread_cpu(pid: u32, name: &str) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let tid = task.file_name().into_string().ok()?;
        process_cpu(&format!("{pid}/task/{tid}")).ok()
    })
}

fn machine_busy_cpu() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse::<f64>())
        .collect::<Result<_, _>>()
        .context("malformed /proc/stat")?;
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    Ok((total - idle) / TICKS_PER_SEC)
}

/// Measures the CPU the server, this benchmark and everything else on the
/// machine used between [`CpuMeter::start`] and [`CpuMeter::cores`].
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    server_pid: u32,
    start: Option<CpuSample>,
}

/// Average cores busy over a measured stretch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cores {
    /// The server process.
    pub server: f64,
    /// Its store writer thread (which applies and commits every write).
    pub writer: Option<f64>,
    /// This benchmark process (clients, and the raw baseline's server).
    pub bench: f64,
    /// Everything else on the machine.
    pub others: f64,
    /// Bytes the server wrote (write calls; its log and sockets included).
    pub written: Option<f64>,
}

impl CpuMeter {
    fn sample(server_pid: u32) -> anyhow::Result<CpuSample> {
        Ok(CpuSample {
            at: Instant::now(),
            server: process_cpu(&server_pid.to_string())?,
            writer: thread_cpu(server_pid, "store-writer"),
            bench: process_cpu("self")?,
            machine: machine_busy_cpu()?,
            written: process_written(server_pid),
        })
    }

    /// Starts measuring (CPU figures are left out when `/proc` is unreadable).
    pub fn start(server_pid: u32) -> Self {
        Self {
            server_pid,
            start: Self::sample(server_pid).ok(),
        }
    }

    /// Average cores used since `start`.
    pub fn cores(&self) -> Option<Cores> {
        let start = self.start?;
        let end = Self::sample(self.server_pid).ok()?;
        let wall = (end.at - start.at).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let server = (end.server - start.server) / wall;
        let bench = (end.bench - start.bench) / wall;
        let machine = (end.machine - start.machine) / wall;
        let writer = match (start.writer, end.writer) {
            (Some(a), Some(b)) => Some((b - a) / wall),
            _ => None,
        };
        let written = match (start.written, end.written) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Some(Cores {
            server,
            writer,
            written,
            bench,
            others: (machine - server - bench).max(0.0),
        })
    }
}

/// `server 1.23 (store writer 0.65), bench 0.45, others 0.10` (cores), or `-`.
pub fn cores(c: Option<Cores>) -> String {
    match c {
        Some(c) => format!(
            "server {:.2}{}, bench {:.2}, others {:.2}",
            c.server,
            c.writer
                .map_or_else(String::new, |w| format!(" (store writer {w:.2})")),
            c.bench,
            c.others
        ),
        None => "-".to_owned(),
    }
}
