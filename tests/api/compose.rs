//! `docker/compose.yaml`: every `MEDRELAY__` key it sets is one the server
//! accepts, and with them (NATS and Mailpit pointed at this machine) the
//! real binary comes up and reports itself ready. (`scripts/test.sh` also
//! checks the file with `docker-compose config`.)

use std::time::Duration;

use crate::helpers::{Process, eventually};
use crate::nats_harness::NatsServer;

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
    // The compose network's host names are this machine's services here.
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(key, value)| {
            let value = value
                .replace("nats://nats:4222", &nats.url())
                .replace("mailpit", "127.0.0.1");
            (key, value)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Process::start(dir.path(), &pairs);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/readyz", server.addr);
    let ready = eventually(Duration::from_secs(20), || {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(url).send().await.is_ok_and(|a| a.status() == 200) }
    })
    .await;
    assert!(
        ready,
        "the server never reported ready with the compose settings"
    );
}
