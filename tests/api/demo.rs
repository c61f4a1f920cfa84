//! `serve --demo`: the real binary seeds a clinic through its own API,
//! prints where to look and how to sign in, and with `--demo-traffic`
//! keeps boards moving; its temporary folder goes when it stops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

struct Demo {
    child: Child,
    summary: Vec<String>,
}

impl Demo {
    fn start(extra: &[&str]) -> Demo {
        let mut child = Command::new(BIN)
            .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("MEDRELAY__LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read on a thread of its own, so a demo that hangs fails the test
        // instead of hanging it.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo {
            child,
            summary: Vec::new(),
        };
        let mut rules = 0;
        while rules < 3 {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the demo printed its summary within a minute");
            rules += usize::from(line.starts_with("====="));
            demo.summary.push(line);
        }
        demo
    }

    /// The second column of the summary line that starts with `label`.
    fn value(&self, label: &str) -> String {
        self.line(label)
            .split_whitespace()
            .nth(label.split_whitespace().count())
            .unwrap()
            .to_owned()
    }

    fn line(&self, starts: &str) -> &str {
        self.summary
            .iter()
            .map(|l| l.trim_start())
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no {starts:?} line in {:#?}", self.summary))
    }

    /// A login's password: `role  username  password ...`.
    fn password(&self, role: &str) -> (String, String) {
        let words: Vec<&str> = self.line(&format!("{role} ")).split_whitespace().collect();
        (words[1].to_owned(), words[2].to_owned())
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM: the graceful path a terminal's Ctrl-C takes.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Demo {
    /// A failed test leaves no demo running (nor its folder growing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_demo_seeds_a_clinic_through_the_api_and_keeps_boards_moving() {
    let demo = Demo::start(&["--demo-traffic"]);
    let base = demo.value("Server");
    let folder = PathBuf::from(demo.value("Data folder"));
    assert!(folder.exists());
    let addr = base.trim_start_matches("http://").parse().unwrap();
    let app = TestApp::attached(addr, &folder);

    // The printed logins work; the admin sees doctors in two zones and a
    // week of appointments.
    let (user, password) = demo.password("admin");
    let admin = app.login(&user, &password).await.token;
    let (status, doctors) = app.get("/api/providers", Some(&admin)).await;
    assert_eq!(status, 200, "{doctors}");
    let doctors = doctors["doctors"].as_array().unwrap().clone();
    assert!(doctors.len() >= 3, "{doctors:?}");
    let zones: std::collections::BTreeSet<_> =
        doctors.iter().map(|d| d["timeZone"].to_string()).collect();
    assert_eq!(zones.len(), 2, "{zones:?}");
    let mut booked = 0;
    for d in &doctors {
        let id = d["providerId"].as_str().unwrap();
        let (status, list) = app
            .get(&format!("/api/appointments?providerId={id}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{list}");
        booked += list["appointments"].as_array().unwrap().len();
    }
    assert!(booked >= 20, "{booked} appointments");
    let (doctor, doctor_password) = demo.password("doctor");
    app.login(&doctor, &doctor_password).await;
    let (patient, patient_password) = demo.password("patient");
    app.login(&patient, &patient_password).await;

    // A printed screen link opens its board (the display token in the
    // fragment works on the socket), and the traffic moves it.
    let screen = demo
        .summary
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.contains("#token=")))
        .unwrap()
        .to_owned();
    let (page, token) = screen.split_once("#token=").unwrap();
    let provider = page.rsplit('/').next().unwrap();
    let html = app.http.get(page).send().await.unwrap();
    assert_eq!(html.status(), 200);
    let mut ws = app.ws(Some(token)).await;
    let sub = ws
        .call(json!({"type": "subscribe", "channel": format!("board:{provider}")}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    let mut all = app.ws(Some(&admin)).await;
    for d in &doctors {
        let channel = format!("board:{}", d["providerId"].as_str().unwrap());
        all.call(json!({"type": "subscribe", "channel": channel}))
            .await;
    }
    let moved = tokio::time::timeout(Duration::from_secs(32), all.next_event())
        .await
        .is_ok();
    assert!(moved, "no board changed in 32 s of demo traffic");

    assert!(demo.stop().success());
    assert!(!folder.exists(), "the temporary folder outlived the demo");
}

#[tokio::test]
async fn a_given_data_folder_is_kept_after_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("clinic");
    let demo = Demo::start(&["--data-dir", data.to_str().unwrap()]);
    assert_eq!(PathBuf::from(demo.value("Data folder")), data);
    assert!(demo.stop().success());
    assert!(data.join("medrelay.redb").exists());
}

#[tokio::test]
async fn demo_options_are_refused_where_they_do_not_belong() {
    // Traffic only with --demo.
    let out = Command::new(BIN)
        .args(["serve", "--demo-traffic"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--demo"));
    // A demo never seeds over an existing clinic.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("medrelay.redb"), b"").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("empty data folder"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
