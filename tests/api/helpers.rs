//! `spawn_app()` and clients for the black-box tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use medrelay::admin::{CreateUser, create_user};
use medrelay::app::Application;
use medrelay::config::Settings;
use medrelay_protocol::Role;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use crate::availability::{all_day_availability, daily_availability};

pub const ADMIN: (&str, &str) = ("root", "root-password-1");
pub const PASSWORD: &str = "patient-password-1";

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Settings for tests: port 0, a data folder, generous rate limits.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings::load_from(None, Vec::new()).expect("defaults load");
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.server.data_dir = data_dir.to_owned();
    s.server.shutdown_grace_secs = 2;
    s.rate_limit.per_ip_per_sec = 10_000;
    s.rate_limit.per_ip_burst = 10_000;
    s.rate_limit.per_user_per_sec = 10_000;
    s.rate_limit.per_user_burst = 10_000;
    s.calendar.downloads_per_minute = 10_000;
    s.calendar.download_burst = 10_000;
    s.websocket.commands_per_sec = 1_000;
    s.websocket.commands_burst = 1_000;
    s
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let mut s = Settings::load_from(None, Vec::new()).unwrap().log;
        s.level = "debug".into();
        medrelay::telemetry::init_logging(&s);
    }
}

/// Starts a server with default test settings and a bootstrapped admin.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `tweak` adjusts the test settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    create_admin(&settings).await;
    let mut app = start(settings).await;
    app._dir = Some(dir);
    app
}

/// Creates the [`ADMIN`] account offline in `settings`' data folder.
pub async fn create_admin(settings: &Settings) {
    create_user(
        settings,
        CreateUser {
            username: ADMIN.0.into(),
            email: "root@example.org".into(),
            password: ADMIN.1.into(),
            role: Role::Admin,
            time_zone: "UTC".into(),
        },
    )
    .await
    .expect("admin bootstrap");
}

/// Starts a server on exactly these settings (e.g. an existing data folder).
pub async fn start(settings: Settings) -> TestApp {
    init_logs();
    let data_dir = settings.server.data_dir.clone();
    let app = Application::build(settings).await.expect("server builds");
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        data_dir,
        _dir: None,
        stop: Some(stop),
        handle: Some(handle),
    }
}

pub struct Tokens {
    pub token: String,
    pub refresh: String,
}

pub struct Patient {
    pub user_id: String,
    pub patient_id: String,
    pub tokens: Tokens,
}

impl TestApp {
    /// A client for a server this process does not own (its `stop` does
    /// nothing).
    pub fn attached(addr: SocketAddr, data_dir: &Path) -> TestApp {
        TestApp {
            addr,
            http: reqwest::Client::new(),
            data_dir: data_dir.to_owned(),
            _dir: None,
            stop: None,
            handle: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server gracefully and waits until it released the data folder.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    /// Stops this server and starts a new one on the same data folder.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        self.stop().await;
        let mut settings = test_settings(&self.data_dir);
        tweak(&mut settings);
        let mut next = start(settings).await;
        next._dir = self._dir.take();
        next
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn put(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        read(
            self.http
                .delete(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    /// `POST /api/auth/refresh` with `token` as the refresh token.
    pub async fn refresh(&self, token: Value) -> (u16, Value) {
        self.post("/api/auth/refresh", json!({ "refreshToken": token }), None)
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let (status, body) = self
            .post(
                "/api/auth/login",
                json!({"username": username, "password": password}),
                None,
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        Tokens {
            token: body["token"].as_str().unwrap().into(),
            refresh: body["refreshToken"].as_str().unwrap().into(),
        }
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN.0, ADMIN.1).await.token
    }

    pub async fn signup_patient(&self, username: &str) -> Patient {
        self.signup_patient_with(username, json!({})).await
    }

    /// Signs up a patient with more fields (`name`, `contactInfo`, ...) and logs in.
    pub async fn signup_patient_with(&self, username: &str, extra: Value) -> Patient {
        let mut request = json!({"username": username, "email": format!("{username}@example.org"),
                                 "password": PASSWORD, "name": "Pat Ient"});
        for (k, v) in extra.as_object().expect("extra fields are an object") {
            request[k] = v.clone();
        }
        let (status, body) = self.post("/api/auth/signup", request, None).await;
        assert_eq!(status, 201, "signup {username}: {body}");
        let tokens = self.login(username, PASSWORD).await;
        Patient {
            user_id: body["userId"].as_str().unwrap().into(),
            patient_id: body["patientId"].as_str().unwrap().into(),
            tokens,
        }
    }

    /// Connects to `/ws` with the subprotocol, and a bearer header if given.
    pub async fn ws(&self, token: Option<&str>) -> Ws {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "medrelay.v1".parse().unwrap());
        if let Some(t) = token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connects");
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "medrelay.v1"
        );
        Ws {
            stream,
            events: VecDeque::new(),
            next_id: 0,
        }
    }

    /// The Prometheus text, read as admin.
    pub async fn metrics(&self) -> String {
        let token = self.admin_token().await;
        self.http
            .get(self.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The value of an unlabelled series in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The raw body of a GET that must answer 200 (amounts read as text: JSON
/// numbers through `serde_json::Value` would turn `60.00` into `60.0`).
pub async fn get_text(app: &TestApp, path: &str, token: &str) -> String {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"))
    };
    (status, body)
}

/// A WebSocket client that keeps pushed events aside while waiting for replies.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    events: VecDeque<Value>,
    next_id: u64,
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.stream
            .send(Message::Text(text.into().into()))
            .await
            .unwrap();
    }

    /// Sends a command with a fresh id and returns its reply.
    pub async fn call(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        command["id"] = json!(id);
        self.send_text(command.to_string()).await;
        self.reply_to(&id).await
    }

    /// Waits for the reply with `re == id`, keeping events for later.
    pub async fn reply_to(&mut self, id: &str) -> Value {
        loop {
            let frame = self
                .next_frame()
                .await
                .unwrap_or_else(|e| panic!("socket ended while waiting for {id}: {e:?}"));
            if frame["type"] == "event" {
                self.events.push_back(frame);
            } else if frame["re"] == id {
                return frame;
            } else {
                panic!("unexpected frame while waiting for {id}: {frame}");
            }
        }
    }

    /// The next non-event frame (a reply with or without `re`).
    pub async fn next_reply(&mut self) -> Value {
        loop {
            let frame = self.next_frame().await.expect("socket open");
            if frame["type"] == "event" {
                self.events.push_back(frame);
            } else {
                return frame;
            }
        }
    }

    pub async fn next_event(&mut self) -> Value {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let frame = self.next_frame().await.expect("socket open");
        assert_eq!(frame["type"], "event", "expected an event, got {frame}");
        frame
    }

    /// Asserts no event arrives within `wait`.
    pub async fn no_event_within(&mut self, wait: Duration) {
        assert!(self.events.is_empty(), "buffered events: {:?}", self.events);
        if let Ok(frame) = tokio::time::timeout(wait, self.next_frame()).await {
            panic!("unexpected frame: {frame:?}");
        }
    }

    async fn next_frame(&mut self) -> Result<Value, Ended> {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("no frame within 10 s");
            match message {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Closed(frame.map_or(1005, |f| u16::from(f.code))));
                }
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => return Err(Ended::Dropped),
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> Ended {
        loop {
            match self.next_frame().await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    }
}

pub fn close_code(code: u16) -> Ended {
    Ended::Closed(code)
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub use crate::child::*;

/// Logs in over plain HTTP at `base` (e.g. a [`Process`]) and returns the token.
pub async fn login(http: &reqwest::Client, base: &str, (user, password): (&str, &str)) -> String {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    read(r).await.1["token"].as_str().unwrap().to_owned()
}

/// A plain HTTP client for the server at `base` (e.g. a [`Process`]).
pub struct Client<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a str,
}

impl Client<'_> {
    pub async fn post_status(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
        read(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value, token: &str) -> Value {
        let (status, body) = self.post_status(path, body, token).await;
        assert!(status < 300, "{path}: {status} {body}");
        body
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        read(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    }

    pub async fn signup(&self, username: &str) -> (String, String) {
        let (status, body) = read(
            self.http
                .post(format!("{}/api/auth/signup", self.base))
                .json(
                    &json!({"username": username, "email": format!("{username}@example.org"),
                              "password": PASSWORD, "name": "Ivan"}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let patient = body["patientId"].as_str().unwrap().to_owned();
        (
            login(self.http, self.base, (username, PASSWORD)).await,
            patient,
        )
    }
}

/// A doctor account `username` owning provider `provider`, open all day in
/// UTC; returns its token.
pub async fn doctor_account(app: &TestApp, admin: &str, username: &str, provider: &str) -> String {
    doctor_account_in(app, admin, (username, provider, "UTC")).await
}

/// [`doctor_account`] with its schedule in time zone `zone`.
pub async fn doctor_account_in(
    app: &TestApp,
    admin: &str,
    (username, provider, zone): (&str, &str, &str),
) -> String {
    let (status, body) = app
        .post(
            "/api/auth/signup",
            json!({"username": username, "email": format!("{username}@example.org"),
                   "password": PASSWORD, "role": "doctor", "providerId": provider,
                   "name": format!("Dr. {username}"), "timeZone": zone}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .put(
            &format!("/api/providers/{provider}"),
            json!({"availability": all_day_availability()}),
            admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.login(username, PASSWORD).await.token
}

/// Every file at the top of `dir` (not its sub-folders), with its bytes:
/// where a stopped server keeps its store, redo log and keys.
pub fn files_at_top_of(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    files
}

/// Whether `bytes` hold `text` anywhere.
pub fn contains(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}
