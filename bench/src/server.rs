//! The server under test: the real release `medrelay` binary as a child
//! process on a temporary data folder, with the limits that would throttle a
//! benchmark lifted.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The admin created offline before the server starts.
pub const ADMIN_USER: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Longest wait for the server to log its address, for `admin create-user`,
/// and for one HTTP request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a graceful exit after SIGTERM before the child is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings overridden through the environment (`MEDRELAY__SECTION__KEY`):
/// JSON logs (the bound address is read from them) and limits far above
/// anything the benchmarks do.
const ENV: [(&str, &str); 17] = [
    ("MEDRELAY__LOG__FORMAT", "json"),
    ("MEDRELAY__LOG__LEVEL", "warn,medrelay::app=info"),
    ("MEDRELAY__RATE_LIMIT__PER_IP_PER_SEC", "1000000"),
    ("MEDRELAY__RATE_LIMIT__PER_IP_BURST", "1000000"),
    ("MEDRELAY__RATE_LIMIT__PER_USER_PER_SEC", "1000000"),
    ("MEDRELAY__RATE_LIMIT__PER_USER_BURST", "1000000"),
    ("MEDRELAY__CALENDAR__DOWNLOADS_PER_MINUTE", "1000000"),
    ("MEDRELAY__CALENDAR__DOWNLOAD_BURST", "1000000"),
    ("MEDRELAY__WEBSOCKET__COMMANDS_PER_SEC", "1000000"),
    ("MEDRELAY__WEBSOCKET__COMMANDS_BURST", "1000000"),
    ("MEDRELAY__WEBSOCKET__MAX_CONNECTIONS", "20000"),
    ("MEDRELAY__WEBSOCKET__OUTBOUND_QUEUE", "4096"),
    ("MEDRELAY__SCHEDULE__MIN_NOTICE_MINUTES", "0"),
    ("MEDRELAY__SCHEDULE__HORIZON_DAYS", "3650"),
    ("MEDRELAY__AUTH__ACCESS_TTL_SECS", "86400"),
    ("MEDRELAY__AUTH__REFRESH_TTL_SECS", "86400"),
    ("MEDRELAY__AUTH__HASH_CONCURRENCY", "2"),
];

/// A running `medrelay serve` and an HTTP client for it.
pub struct Server {
    binary: PathBuf,
    child: Child,
    /// The address it listens on (loopback).
    pub addr: SocketAddr,
    http: reqwest::Client,
    /// Removed when the server is dropped, after the child has exited.
    data_dir: tempfile::TempDir,
    /// Settings beyond [`ENV`], kept for restarts.
    extra_env: Vec<(String, String)>,
}

/// Where the `medrelay` binary is: `explicit`, else next to this benchmark's
/// own executable (both live in `target/release`), else in
/// `$CARGO_TARGET_DIR/release`.
pub fn locate_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.is_file(), "no medrelay binary at {}", path.display());
        return Ok(path.to_owned());
    }
    let mut candidates = vec![
        std::env::current_exe()
            .context("locating the benchmark's own executable")?
            .with_file_name("medrelay"),
    ];
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join("medrelay"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no medrelay binary at {}; build it first: cargo build --release -p medrelay -p medrelay-bench",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

/// The environment the child gets: ours without any `MEDRELAY__*` or
/// `RUST_LOG` (they would change the settings under test), plus [`ENV`].
fn command(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("MEDRELAY__") || k == "RUST_LOG")
        {
            cmd.env_remove(key);
        }
    }
    cmd.envs(ENV);
    cmd
}

/// Starts `medrelay serve` on `dir` and the thread reading its log; the
/// receiver gets the bound address.
fn spawn_serve(
    binary: &Path,
    dir: &Path,
    extra_env: &[(String, String)],
) -> anyhow::Result<(Child, oneshot::Receiver<SocketAddr>)> {
    let mut serve = command(binary);
    serve.envs(extra_env.iter().map(|(k, v)| (k, v)));
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = serve
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("no stderr pipe from medrelay");
    };
    let (addr_tx, addr_rx) = oneshot::channel();
    let reader = std::thread::Builder::new()
        .name("medrelay-log".into())
        .spawn(move || drain_log(stderr, addr_tx));
    if let Err(e) = reader {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e).context("starting the log reader thread");
    }
    Ok((child, addr_rx))
}

impl Server {
    /// Creates the admin offline, starts `medrelay serve` on port 0 and waits
    /// for the log line naming the bound address.
    ///
    /// # Errors
    /// When the binary fails to run, exits, or logs no address within 30 s.
    pub async fn start(binary: &Path) -> anyhow::Result<Server> {
        Self::start_with(binary, Vec::new()).await
    }

    /// [`Server::start`] with more settings (`MEDRELAY__SECTION__KEY`, value).
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_with(
        binary: &Path,
        extra_env: Vec<(String, String)>,
    ) -> anyhow::Result<Server> {
        let data_dir = tempfile::tempdir().context("creating a temporary data folder")?;
        Self::start_in(binary, data_dir, extra_env).await
    }

    /// [`Server::start_with`] on a data folder prepared beforehand (a store
    /// seeded offline).
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_in(
        binary: &Path,
        data_dir: tempfile::TempDir,
        extra_env: Vec<(String, String)>,
    ) -> anyhow::Result<Server> {
        let dir = data_dir.path().to_owned();

        let mut create = command(binary);
        create
            .args(["admin", "create-user", "--data-dir"])
            .arg(&dir)
            .args(["--username", ADMIN_USER, "--role", "admin"])
            .args(["--password", ADMIN_PASSWORD])
            .stdin(Stdio::null());
        let mut create = tokio::process::Command::from(create);
        create.kill_on_drop(true);
        let output = tokio::time::timeout(START_TIMEOUT, create.output())
            .await
            .context("medrelay admin create-user took over 30 s")?
            .with_context(|| format!("running {}", binary.display()))?;
        ensure!(
            output.status.success(),
            "medrelay admin create-user failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );

        // From here on, dropping the server kills the child.
        let (child, addr_rx) = spawn_serve(binary, &dir, &extra_env)?;
        let mut server = Server {
            binary: binary.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(START_TIMEOUT)
                .build()
                .context("building the HTTP client")?,
            data_dir,
            extra_env,
        };
        server.addr = server.wait_for_address(addr_rx).await?;
        Ok(server)
    }

    /// Stops the server (SIGTERM) and starts a new one on the same data
    /// folder: the same accounts, doctors and appointments, and tokens still
    /// valid, in a process that has done nothing yet.
    ///
    /// # Errors
    /// As [`Server::stop`] and [`Server::start`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.terminate().await?;
        let (child, addr_rx) = spawn_serve(&self.binary, self.data_dir.path(), &self.extra_env)?;
        self.child = child;
        self.addr = self.wait_for_address(addr_rx).await?;
        Ok(())
    }

    async fn wait_for_address(
        &mut self,
        addr_rx: oneshot::Receiver<SocketAddr>,
    ) -> anyhow::Result<SocketAddr> {
        let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => bail!(
                "medrelay exited before logging its address ({:?})",
                self.child.try_wait()
            ),
            Err(_) => bail!("medrelay logged no address within 30 s"),
        };
        ensure!(
            addr.ip().is_loopback(),
            "medrelay listens on {addr}, not on loopback"
        );
        Ok(addr)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Resident memory of the server process (`VmRSS`), in bytes.
    ///
    /// # Errors
    /// When `/proc/PID/status` cannot be read or has no `VmRSS` line.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_of(self.pid()).with_context(|| format!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// `POST path` with a JSON body; returns the status and the JSON answer.
    ///
    /// # Errors
    /// When the request fails or the answer is not JSON.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, body, token).await
    }

    /// `PUT path` with a JSON body, as `token`; returns the status and the
    /// JSON answer.
    ///
    /// # Errors
    /// When the request fails or the answer is not JSON.
    pub async fn put(&self, path: &str, body: &Value, token: &str) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, path, body, Some(token))
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let what = format!("{method} {path}");
        let mut request = self.http.request(method, self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| what.clone())?;
        let status = response.status().as_u16();
        let text = response.text().await.with_context(|| what.clone())?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("{what}: status {status}, body is not JSON: {text}"))?;
        Ok((status, body))
    }

    /// Logs in; returns the access token.
    ///
    /// # Errors
    /// When the login is refused or fails.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .post(
                "/api/auth/login",
                &json!({"username": username, "password": password}),
                None,
            )
            .await?;
        ensure!(status == 200, "login {username}: {status} {body}");
        body["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("login {username}: no token in {body}"))
    }

    /// The Prometheus text of `GET /metrics`, read as `token`'s admin.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn metrics(&self, token: &str) -> anyhow::Result<String> {
        self.http
            .get(self.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()
            .context("GET /metrics")?
            .text()
            .await
            .context("GET /metrics")
    }

    /// The server's `ws_open_sockets` gauge (absent, and so 0, until the
    /// first socket opens).
    ///
    /// # Errors
    /// When `/metrics` cannot be read.
    pub async fn open_sockets(&self, token: &str) -> anyhow::Result<u64> {
        let text = self.metrics(token).await?;
        let value = metric(&text, "ws_open_sockets").unwrap_or(0.0);
        Ok(value.max(0.0) as u64)
    }

    /// The store's commit counters (`store_commit_*` histograms), or `None`
    /// when `/metrics` cannot be read or has none yet.
    pub async fn commits(&self, token: &str) -> Option<Commits> {
        let text = self.metrics(token).await.ok()?;
        let groups = metric(&text, "store_commit_batch_size_count")?;
        Some(Commits {
            groups,
            batches: metric(&text, "store_commit_batch_size_sum")?,
            seconds: metric(&text, "store_commit_seconds_sum")?,
            over_10ms: metric(&text, r#"store_commit_seconds_bucket{le="0.01"}"#)
                .map(|within| groups - within),
        })
    }

    /// Waits (up to `limit`) until the server reports no open WebSocket;
    /// returns how many are still open.
    ///
    /// # Errors
    /// When `/metrics` cannot be read.
    pub async fn wait_sockets_closed(&self, token: &str, limit: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let open = self.open_sockets(token).await?;
            if open == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(open);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits for a graceful exit (killing the child after
    /// 20 s).
    ///
    /// # Errors
    /// When the signal cannot be sent or the child cannot be waited for.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.terminate().await
    }

    /// [`Server::stop`], keeping the data folder for the caller to read.
    ///
    /// # Errors
    /// As [`Server::stop`].
    pub async fn stop_keeping_data(mut self) -> anyhow::Result<tempfile::TempDir> {
        self.terminate().await?;
        let empty = tempfile::tempdir().context("creating a temporary folder")?;
        Ok(std::mem::replace(&mut self.data_dir, empty))
    }

    async fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        let mut kill = tokio::process::Command::new("kill");
        kill.args(["-TERM", &pid]).kill_on_drop(true);
        let status = tokio::time::timeout(START_TIMEOUT, kill.status())
            .await
            .context("kill -TERM took over 30 s")?
            .context("running kill -TERM")?;
        ensure!(status.success(), "kill -TERM {pid} failed: {status}");
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for medrelay")? {
                eprintln!("bench: medrelay stopped ({status})");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!("bench: medrelay did not stop within 20 s of SIGTERM; killing it");
                self.child.kill().context("killing medrelay")?;
                self.child.wait().context("waiting for medrelay")?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Still running only when the benchmark failed before `stop`.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the server's JSON log lines until it exits: sends the bound address
/// once (from the line whose `fields.addr` is set) and echoes warnings,
/// errors and anything that is not JSON (a panic) to our stderr.
fn drain_log(stderr: std::process::ChildStderr, addr_tx: oneshot::Sender<SocketAddr>) {
    let mut addr_tx = Some(addr_tx);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            eprintln!("medrelay: {line}");
            continue;
        };
        if let Some(addr) = entry["fields"]["addr"]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
            continue;
        }
        if matches!(entry["level"].as_str(), Some("WARN" | "ERROR")) {
            eprintln!("medrelay: {line}");
        }
    }
}

/// The value of an unlabelled series in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The store's group-commit counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Commits {
    /// Transactions committed.
    pub groups: f64,
    /// Write batches (one per booking) in them.
    pub batches: f64,
    /// Seconds spent applying and committing them (fsync included).
    pub seconds: f64,
    /// Transactions that took over 10 ms.
    pub over_10ms: Option<f64>,
}

impl Commits {
    /// `N commits, mean group X bookings, mean commit Y ms[, Z KiB written
    /// per booking]` since `before`; `written` is what the server wrote to
    /// files meanwhile.
    pub fn since(&self, before: &Commits, written: Option<f64>) -> String {
        let groups = self.groups - before.groups;
        let batches = self.batches - before.batches;
        if groups <= 0.0 || batches <= 0.0 {
            return "no commits".to_owned();
        }
        let mut out = format!(
            "{groups:.0} commits, mean group {:.1} bookings, mean commit {:.2} ms",
            batches / groups,
            (self.seconds - before.seconds) * 1_000.0 / groups
        );
        if let (Some(after), Some(before)) = (self.over_10ms, before.over_10ms) {
            out.push_str(&format!(", {:.0} over 10 ms", after - before));
        }
        if let Some(written) = written {
            out.push_str(&format!(
                ", {:.1} KiB written per booking",
                written / batches / 1024.0
            ));
        }
        out
    }
}

/// Resident memory of process `pid` (`VmRSS`), in bytes, if readable.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())?;
    Some(kib * 1024)
}
