//! NATS against a real `nats-server` (JetStream on, a free port, a temp
//! store): events in the stream, commands over request/reply, an outage, a
//! crash, and a board replica.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::ToSpan;
use medrelay::config::{NodeRole, Settings};
use serde_json::{Value, json};

use crate::helpers::*;

/// A `nats-server` child process with JetStream, stopped on drop.
pub struct NatsServer {
    pub port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir: PathBuf| dir.join("nats-server"))
        .find(|p| p.is_file());
    on_path.expect("nats-server is not installed (scripts/test.sh installs it)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let mut server = NatsServer {
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not open its port"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: an outage, not a goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("test client connects")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn with_nats(url: String) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.nats.url = url;
        s.nats.request_timeout_ms = 1_000;
    }
}

/// Every message of the event stream, in stream order: (subject, headers,
/// payload); none while the stream does not exist yet.
async fn stream_messages(nats: &NatsServer) -> Vec<(String, async_nats::HeaderMap, Value)> {
    let js = async_nats::jetstream::new(nats.client().await);
    // The server creates the stream once it has connected; until then
    // there is nothing in it.
    let Ok(stream) = js.get_stream("MEDRELAY_EVENTS").await else {
        return Vec::new();
    };
    let info = stream.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let message = stream.get_raw_message(seq).await.unwrap();
        out.push((
            message.subject.to_string(),
            message.headers,
            serde_json::from_slice(&message.payload).unwrap(),
        ));
    }
    out
}

/// The messages of the stream on `medrelay.evt.schedule.>`.
async fn schedule_events(nats: &NatsServer) -> Vec<Value> {
    stream_messages(nats)
        .await
        .into_iter()
        .filter(|(subject, _, _)| subject.starts_with("medrelay.evt.schedule."))
        .map(|(_, _, payload)| payload)
        .collect()
}

/// A day far enough ahead for the booking rules, and `n` half-hour slots.
fn slots(n: usize) -> Vec<(String, String)> {
    let first = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .unwrap();
    (0..n)
        .map(|i| {
            let day = first.checked_add(((i / 48) as i64).days()).unwrap();
            let minutes = (i % 48) * 30;
            (
                day.to_string(),
                format!("{:02}:{:02}", minutes / 60, minutes % 60),
            )
        })
        .collect()
}

async fn all_day_provider(app: &TestApp, admin: &str, id: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": id, "name": "Dr. Nats", "timeZone": "UTC",
                   "availability": all_day_availability()}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn booking(patient: &str, provider: &str, slot: &(String, String)) -> Value {
    json!({"patientId": patient, "providerId": provider,
           "appointmentDate": slot.0, "timeSlot": slot.1})
}

async fn request(
    client: &async_nats::Client,
    subject: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    request_raw(client, subject, token, body.to_string().into_bytes()).await
}

async fn request_raw(
    client: &async_nats::Client,
    subject: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(token) = token {
        headers.insert("Authorization", format!("Bearer {token}").as_str());
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request_with_headers(subject.to_owned(), headers, body.into()),
    )
    .await
    .expect("a reply within 10 s")
    .expect("a reply, not no-responders");
    serde_json::from_slice(&response.payload).unwrap()
}

/// Waits until the owner subscribed to its command subjects.
async fn commands_ready(client: &async_nats::Client, admin: &str) {
    let ready = eventually(Duration::from_secs(10), || async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {admin}").as_str());
        client
            .request_with_headers(
                "medrelay.cmd.schedule.probe".to_owned(),
                headers,
                b"{}".as_slice().into(),
            )
            .await
            .is_ok()
    })
    .await;
    assert!(ready, "the server never answered on NATS");
}

#[tokio::test]
async fn a_websocket_booking_lands_in_the_stream_with_its_subject_id_and_payload() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let slot = &slots(1)[0];
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let mut cmd = booking(&p.patient_id, "prov001", slot);
    cmd["type"] = json!("book");
    let reply = ws.call(cmd).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let appointment = reply["data"]["appointmentId"].as_str().unwrap().to_owned();

    let arrived = eventually(Duration::from_secs(10), || async {
        !schedule_events(&nats).await.is_empty()
    })
    .await;
    assert!(arrived, "the booking never reached the stream");
    let messages = stream_messages(&nats).await;
    let (subject, headers, payload) = messages
        .iter()
        .find(|(s, _, _)| s.contains(".schedule."))
        .unwrap();
    assert_eq!(subject, "medrelay.evt.schedule.prov001.appointment_booked");
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("board:prov001/1")
    );
    assert_eq!(payload["v"], 1);
    assert_eq!(payload["eventId"], "board:prov001/1");
    assert_eq!(payload["channel"], "board:prov001");
    assert_eq!(payload["seq"], 1);
    assert_eq!(payload["event"]["kind"], "appointment_booked");
    assert_eq!(payload["event"]["appointmentId"], appointment.as_str());
    assert_eq!(payload["event"]["patientId"], p.patient_id.as_str());
    assert_eq!(payload["event"]["slot"]["timeSlot"], slot.1.as_str());
    // Sign-ups are published too; the patient's private channel is not.
    assert!(
        messages
            .iter()
            .any(|(s, _, _)| s == &format!("medrelay.evt.user.{}.user_registered", p.user_id))
    );
    assert!(!messages.iter().any(|(s, _, _)| s.contains(".patient.")));
    // Published events leave the outbox.
    let drained = eventually(Duration::from_secs(5), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained);
}

#[tokio::test]
async fn commands_over_nats_answer_like_the_websocket_and_reach_its_boards() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("bob").await;
    let q = app.signup_patient("carol").await;
    let client = nats.client().await;
    commands_ready(&client, &admin).await;
    let subject = "medrelay.cmd.schedule.prov001";
    let slots = slots(3);

    let mut board = app.ws(Some(&admin)).await;
    let sub = board
        .call(json!({"type": "subscribe", "channel": "board:prov001"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");

    let mut cmd = booking(&p.patient_id, "prov001", &slots[0]);
    cmd["type"] = json!("book");
    cmd["id"] = json!("n1");
    let booked = request(&client, subject, Some(&p.tokens.token), cmd).await;
    assert_eq!(booked["re"], "n1");
    assert_eq!(booked["ok"], true, "{booked}");
    assert_eq!(booked["data"]["status"], "Created");
    let id = booked["data"]["appointmentId"].as_str().unwrap().to_owned();
    let event = board.next_event().await;
    assert_eq!(event["event"]["kind"], "appointment_booked");
    assert_eq!(event["event"]["appointmentId"], id.as_str());

    // The same taken slot, over NATS and over the WebSocket: the same error.
    let mut taken = booking(&q.patient_id, "prov001", &slots[0]);
    taken["type"] = json!("book");
    let over_nats = request(&client, subject, Some(&q.tokens.token), taken.clone()).await;
    let mut ws = app.ws(Some(&q.tokens.token)).await;
    let over_ws = ws.call(taken).await;
    assert_eq!(over_nats["ok"], false);
    assert_eq!(over_nats["error"]["code"], "slot_taken");
    assert_eq!(over_nats["error"], over_ws["error"]);

    // get, reschedule, board, cancel.
    let got = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "get", "appointmentId": id}),
    )
    .await;
    assert_eq!(got["data"]["appointmentId"], id.as_str());
    assert_eq!(got["data"]["timeSlot"], slots[0].1.as_str());
    let moved = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "reschedule", "appointmentId": id,
               "appointmentDate": slots[1].0, "timeSlot": slots[1].1}),
    )
    .await;
    assert_eq!(moved["data"]["status"], "Updated", "{moved}");
    assert_eq!(
        board.next_event().await["event"]["kind"],
        "appointment_rescheduled"
    );
    let snapshot = request(
        &client,
        subject,
        Some(&q.tokens.token),
        json!({"type": "board", "providerId": "prov001",
               "from": slots[1].0, "to": slots[1].0}),
    )
    .await;
    assert_eq!(snapshot["ok"], true, "{snapshot}");
    assert_eq!(snapshot["data"]["patientsShown"], false);
    let booked_slot = snapshot["data"]["snapshot"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["timeSlot"] == slots[1].1.as_str())
        .unwrap()
        .clone();
    assert_eq!(booked_slot["state"], "booked");
    assert!(booked_slot.get("patientId").is_none(), "{booked_slot}");
    // Another patient may not read or cancel it: the gateway's answers.
    let foreign = request(
        &client,
        subject,
        Some(&q.tokens.token),
        json!({"type": "cancel", "appointmentId": id}),
    )
    .await;
    assert_eq!(foreign["error"]["code"], "forbidden");
    let cancelled = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "cancel", "appointmentId": id}),
    )
    .await;
    assert_eq!(cancelled["data"]["status"], "Cancelled");
    assert_eq!(
        board.next_event().await["event"]["kind"],
        "appointment_cancelled"
    );
}

#[tokio::test]
async fn bad_nats_requests_get_error_replies() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("dave").await;
    let client = nats.client().await;
    commands_ready(&client, &admin).await;
    let subject = "medrelay.cmd.schedule.prov001";
    let mut book = booking(&p.patient_id, "prov001", &slots(1)[0]);
    book["type"] = json!("book");
    book["id"] = json!("b1");

    let missing = request(&client, subject, None, book.clone()).await;
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["re"], "b1");
    assert_eq!(missing["error"]["code"], "unauthorized");
    let forged = request(&client, subject, Some("not.a.jwt"), book.clone()).await;
    assert_eq!(forged["error"]["code"], "unauthorized");
    let mut basic = async_nats::HeaderMap::new();
    basic.insert("Authorization", "Basic dXNlcjpwYXNz");
    let response = client
        .request_with_headers(subject.to_owned(), basic, book.to_string().into())
        .await
        .unwrap();
    let basic: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(basic["error"]["code"], "unauthorized");

    let token = Some(p.tokens.token.as_str());
    let malformed = request_raw(&client, subject, token, b"{not json".to_vec()).await;
    assert_eq!(malformed["error"]["code"], "bad_request");
    let unknown = request(&client, subject, token, json!({"id": "u", "type": "fly"})).await;
    assert_eq!(unknown["error"]["code"], "bad_request");
    assert_eq!(unknown["re"], "u");
    let session = request(&client, subject, token, json!({"type": "ping"})).await;
    assert_eq!(session["error"]["code"], "bad_request");
    let mut elsewhere = book.clone();
    elsewhere["providerId"] = json!("prov002");
    let mismatch = request(&client, subject, token, elsewhere).await;
    assert_eq!(mismatch["error"]["code"], "bad_request");
    assert_eq!(mismatch["error"]["field"], "providerId");
    let mut nobody = book.clone();
    nobody["providerId"] = json!("nobody");
    let missing_doctor = request(&client, "medrelay.cmd.schedule.nobody", token, nobody).await;
    assert_eq!(missing_doctor["error"]["code"], "not_found");
    let huge = request_raw(&client, subject, token, vec![b' '; 70_000]).await;
    assert_eq!(huge["error"]["code"], "payload_too_large");
    // After all that, the real booking still works.
    let ok = request(&client, subject, token, book).await;
    assert_eq!(ok["ok"], true, "{ok}");
}

#[tokio::test]
async fn an_outage_loses_nothing_and_duplicates_nothing() {
    let mut nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    const DOCTORS: usize = 5;
    const PER_DOCTOR: usize = 100;
    let mut patients = Vec::new();
    for d in 0..DOCTORS {
        all_day_provider(&app, &admin, &format!("prov{d}")).await;
        patients.push(app.signup_patient(&format!("outage{d}")).await.patient_id);
    }
    let published = eventually(Duration::from_secs(10), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(published);
    let before = stream_messages(&nats).await.len();

    nats.kill();
    let down = eventually(Duration::from_secs(10), || async {
        let (status, ready) = app.get("/readyz", None).await;
        status == 200 && ready["status"] == "degraded" && ready["checks"]["nats"] == "disconnected"
    })
    .await;
    assert!(down, "readyz did not report NATS as away");

    let slots = slots(PER_DOCTOR);
    let bookings = (0..DOCTORS).map(|d| {
        let (app, admin, patient, slots) = (&app, &admin, &patients[d], &slots);
        async move {
            for slot in slots {
                let body = booking(patient, &format!("prov{d}"), slot);
                let (status, reply) = app.post("/api/appointments", body, Some(admin)).await;
                assert_eq!(status, 201, "a booking failed while NATS was down: {reply}");
            }
        }
    });
    futures_util::future::join_all(bookings).await;
    let (_, ready) = app.get("/readyz", None).await;
    assert_eq!(ready["checks"]["outboxPending"], DOCTORS * PER_DOCTOR);

    nats.resume();
    let drained = eventually(Duration::from_secs(60), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["status"] == "ready" && ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained, "the outbox did not drain after NATS came back");

    let messages = stream_messages(&nats).await;
    assert_eq!(messages.len() - before, DOCTORS * PER_DOCTOR);
    let new: Vec<&Value> = messages[before..].iter().map(|(_, _, p)| p).collect();
    let ids: HashSet<&str> = new.iter().map(|p| p["eventId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), DOCTORS * PER_DOCTOR, "a duplicated event");
    let mut per_board: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for payload in &new {
        assert_eq!(payload["event"]["kind"], "appointment_booked");
        per_board
            .entry(payload["channel"].as_str().unwrap())
            .or_default()
            .push(payload["seq"].as_u64().unwrap());
    }
    assert_eq!(per_board.len(), DOCTORS);
    for (board, seqs) in per_board {
        let expected: Vec<u64> = (1..=PER_DOCTOR as u64).collect();
        assert_eq!(seqs, expected, "{board} out of order or with gaps");
    }
}

#[tokio::test]
async fn a_crash_while_publishing_leaves_each_event_once_in_the_stream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut settings = test_settings(&data);
    settings.nats.url = nats.url();
    create_admin(&settings).await;
    let http = reqwest::Client::new();
    let server = Process::start(&data, &[("MEDRELAY__NATS__URL", nats.url().as_str())]);
    let base = format!("http://{}", server.addr);
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["token"].as_str().unwrap().to_owned();
    let provider = json!({"providerId": "crash", "name": "Dr. Crash", "timeZone": "UTC",
                          "availability": all_day_availability()});
    let created = http
        .post(format!("{base}/api/providers"))
        .bearer_auth(&admin)
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let signup: Value = http
        .post(format!("{base}/api/auth/signup"))
        .json(&json!({"username": "crashpat", "email": "c@example.org",
                      "password": PASSWORD, "name": "C"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient = signup["patientId"].as_str().unwrap().to_owned();

    // Book in four parallel streams and kill the server in the middle of
    // it: events are being published and acknowledged all the while.
    let slots = slots(400);
    let booked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = slots
        .chunks(100)
        .map(|chunk| {
            let (http, base, admin, patient) =
                (http.clone(), base.clone(), admin.clone(), patient.clone());
            let chunk = chunk.to_vec();
            let booked = booked.clone();
            tokio::spawn(async move {
                for slot in &chunk {
                    let body = booking(&patient, "crash", slot);
                    let Ok(response) = http
                        .post(format!("{base}/api/appointments"))
                        .bearer_auth(&admin)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() == 201 {
                        booked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let started = eventually(Duration::from_secs(30), || async {
        booked.load(std::sync::atomic::Ordering::SeqCst) >= 150
    })
    .await;
    assert!(started);
    server.kill();
    for writer in writers {
        let _ = writer.await;
    }

    // Restart on the same data: the rest of the outbox is published.
    let server = Process::start(&data, &[("MEDRELAY__NATS__URL", nats.url().as_str())]);
    let base = format!("http://{}", server.addr);
    let drained = eventually(Duration::from_secs(30), || async {
        let ready: Value = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained, "the outbox did not drain after the restart");
    let head: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = head["token"].as_str().unwrap();
    let list: Value = http
        .get(format!("{base}/api/appointments?providerId=crash"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = list
        .as_array()
        .or_else(|| list["appointments"].as_array())
        .map(Vec::len)
        .expect("an appointment list");
    server.kill();

    let events = schedule_events(&nats).await;
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| e["channel"] == "board:crash")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    // Every committed booking (acknowledged or not when the process died) is
    // in the stream exactly once, in order.
    assert_eq!(
        seqs.len(),
        stored,
        "stream holds {} events for {stored} bookings",
        seqs.len()
    );
    let expected: Vec<u64> = (1..=stored as u64).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn a_board_replica_serves_the_owners_boards_with_the_same_seqs() {
    let nats = NatsServer::start();
    let owner = spawn_app_with(with_nats(nats.url())).await;
    let admin = owner.admin_token().await;
    all_day_provider(&owner, &admin, "prov001").await;
    let p = owner.signup_patient("erin").await;
    let slots = slots(6);
    let book = |i: usize| booking(&p.patient_id, "prov001", &slots[i]);
    let (status, _) = owner.post("/api/appointments", book(0), Some(&admin)).await;
    assert_eq!(status, 201);

    // The replica shares the owner's signing key, nothing else.
    let replica_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        owner.data_dir.join("jwt.secret"),
        replica_dir.path().join("jwt.secret"),
    )
    .unwrap();
    let mut settings = test_settings(replica_dir.path());
    with_nats(nats.url())(&mut settings);
    settings.nats.role = NodeRole::BoardReplica;
    let replica = start(settings).await;

    // The REST API is the owner's.
    let (status, body) = replica.get("/api/doctors", Some(&admin)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    let from = &slots[0].0;
    let mut doctor_view = replica.ws(Some(&admin)).await;
    let sub = doctor_view
        .call(json!({"type": "subscribe", "channel": "board:prov001", "from": from, "to": from}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    assert_eq!(sub["data"]["seq"], 1);
    let mut patient_view = replica.ws(Some(&p.tokens.token)).await;
    let sub = patient_view
        .call(json!({"type": "subscribe", "channel": "board:prov001"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    // Channels other than boards belong to the owner.
    let users = doctor_view
        .call(json!({"type": "subscribe", "channel": "users"}))
        .await;
    assert_eq!(users["error"]["code"], "unavailable");

    for i in 1..4 {
        let (status, _) = owner.post("/api/appointments", book(i), Some(&admin)).await;
        assert_eq!(status, 201);
    }
    for seq in 2..=4 {
        let event = doctor_view.next_event().await;
        assert_eq!(event["seq"], seq);
        assert_eq!(event["event"]["patientId"], p.patient_id.as_str());
        let event = patient_view.next_event().await;
        assert_eq!(event["seq"], seq);
        assert!(event["event"].get("patientId").is_none(), "{event}");
    }

    // A board that reconnects to the replica with `since` gets what it missed.
    drop(patient_view);
    for i in 4..6 {
        let (status, _) = owner.post("/api/appointments", book(i), Some(&admin)).await;
        assert_eq!(status, 201);
    }
    assert_eq!(doctor_view.next_event().await["seq"], 5);
    assert_eq!(doctor_view.next_event().await["seq"], 6);
    let mut again = replica.ws(Some(&p.tokens.token)).await;
    let resumed = again
        .call(json!({"type": "subscribe", "channel": "board:prov001", "since": 4}))
        .await;
    assert_eq!(resumed["data"]["replayed"], 2, "{resumed}");
    assert_eq!(resumed["data"]["resync"], false);
    assert_eq!(again.next_event().await["seq"], 5);
    assert_eq!(again.next_event().await["seq"], 6);

    // Writes go to the owner.
    let refused = again
        .call(json!({"type": "cancel", "appointmentId": "apt_x"}))
        .await;
    assert_eq!(refused["error"]["code"], "unavailable");

    // A token the owner does not accept is refused there too.
    let mut stranger = replica.ws(None).await;
    let auth = stranger
        .call(json!({"type": "auth", "token": "forged.token.value"}))
        .await;
    assert_eq!(auth["error"]["code"], "unauthorized");
}
