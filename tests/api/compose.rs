//! `docker/compose.yaml`: every `MEDRELAY__` key it sets is one the server
//! accepts, and with them (NATS and Mailpit pointed at this machine) the
//! real binary comes up and reports itself ready. (`scripts/test.sh` also
//! checks the file with `docker-compose config`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::nats_harness::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_medrelay");

/// The `MEDRELAY__` variables the compose file gives the server.
fn compose_env() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/compose.yaml");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("MEDRELAY__"))
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            let value = value.trim().trim_matches('"');
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_compose_files_settings_are_accepted_and_the_server_comes_up() {
    let env = compose_env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    for wired in [
        "MEDRELAY__NATS__URL",
        "MEDRELAY__NOTIFICATIONS__EMAIL__HOST",
        "MEDRELAY__NOTIFICATIONS__EMAIL__PORT",
    ] {
        assert!(keys.contains(&wired), "{wired} not in {keys:?}");
    }
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN);
    server.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    for (key, value) in &env {
        // The compose network's host names are this machine's services here.
        let value = value
            .replace("nats://nats:4222", &nats.url())
            .replace("mailpit", "127.0.0.1");
        server.env(key, value);
    }
    let mut server = server
        .env("MEDRELAY__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let addr = crate::child::bound_address(&mut lines);
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut ready = false;
    while !ready && started.elapsed() < Duration::from_secs(20) {
        let answer = http.get(format!("http://{addr}/readyz")).send().await;
        ready = answer.is_ok_and(|a| a.status() == 200);
        if !ready {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = drain.join();
    assert!(
        ready,
        "the server never reported ready with the compose settings"
    );
}
