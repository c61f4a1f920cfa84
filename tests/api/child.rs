//! The medrelay binary as a child process, for tests that kill it
//! (SIGKILL) or measure it from the outside.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{TestApp, create_admin, test_settings};

/// Checkpoints far apart: a kill lands between two, so a restart has to
/// replay the redo log (for [`Process::start`]).
pub const FAR_CHECKPOINTS: [(&str, &str); 1] =
    [("MEDRELAY__STORE__CHECKPOINT_INTERVAL_MS", "600000")];

/// A data folder (inside the returned temporary one) that holds the admin
/// account, for a [`Process`] to serve.
pub async fn data_with_admin() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_admin(&test_settings(&data)).await;
    (dir, data)
}

/// The medrelay binary as a child process (so that it can be killed), with
/// extra `MEDRELAY__*` variables.
pub struct Process {
    child: std::process::Child,
    pub addr: String,
}

/// The server binary the tests start.
pub const BIN: &str = env!("CARGO_BIN_EXE_medrelay");

/// The address a server that logs JSON on `lines` (its stderr) reports it
/// bound, read within 20 s.
pub fn bound_address(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the server did not report its address"
        );
        let line = lines.next().expect("the server exited at start").unwrap();
        let log: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = log["fields"]["addr"].as_str() {
            return addr.to_owned();
        }
    }
}

impl Process {
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Process {
        use std::io::BufRead;
        let mut command = std::process::Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("MEDRELAY__LOG__FORMAT", "json")
            .env("MEDRELAY__RATE_LIMIT__PER_IP_PER_SEC", "100000")
            .env("MEDRELAY__RATE_LIMIT__PER_IP_BURST", "100000")
            .env("MEDRELAY__RATE_LIMIT__PER_USER_PER_SEC", "100000")
            .env("MEDRELAY__RATE_LIMIT__PER_USER_BURST", "100000")
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = bound_address(&mut lines);
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Process { child, addr }
    }

    /// The server's resident memory (`VmRSS` of `/proc/PID/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse().ok())
            .expect("a VmRSS line");
        kib * 1024
    }

    /// A client for this server (its `stop` does nothing; use [`Process::kill`]).
    pub fn app(&self, data: &Path) -> TestApp {
        TestApp::attached(self.addr.parse().expect("a socket address"), data)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    /// A test that fails before `kill` does not leave its server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
