//! Notifications end to end: reminders on every allowed channel, moves,
//! cancellations, opt-outs, Twilio callbacks, a dead SMTP server, in-app
//! delivery to two devices, and process kills around a send.
//!
//! E-mail goes to a real SMTP server on a free port; Twilio and FCM are
//! `wiremock` servers that check each request.
//!
//! This module holds the shared set-up (providers, a clinic, clock moves);
//! the tests are in its submodules.

mod billing;
mod delivery;
mod doctors;
mod in_app;
mod invitations;
mod offers;
mod preferences;
mod reminders;
mod restarts;
mod twilio;

use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay::config::{Settings, SmtpTls};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, bearer_token, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

pub const ACCOUNT: &str = "AC0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-auth-token-1";
pub const FROM_NUMBER: &str = "+15550001111";
pub const PUBLIC_URL: &str = "https://clinic.example.org";
pub const SMS_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json";
const FCM_SEND: &str = "/v1/projects/demo-clinic/messages:send";
const ACCESS_TOKEN: &str = "ya29.test-access-token";
pub const WAIT: Duration = Duration::from_secs(10);

/// The providers a test's server talks to.
struct Providers {
    smtp: SmtpSink,
    twilio: MockServer,
    fcm: MockServer,
    _keys: tempfile::TempDir,
    key_file: String,
}

impl Providers {
    async fn start() -> Providers {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SMS_PATH))
            .and(basic_auth(ACCOUNT, AUTH_TOKEN))
            .respond_with(ResponseTemplate::new(201).set_body_json(
                json!({"sid": "SM0000000000000000000000000000001", "status": "queued"}),
            ))
            .mount(&twilio)
            .await;
        let fcm = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}),
            ))
            .mount(&fcm)
            .await;
        Mock::given(method("POST"))
            .and(path(FCM_SEND))
            .and(bearer_token(ACCESS_TOKEN))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"name": "projects/demo-clinic/messages/0:1"})),
            )
            .mount(&fcm)
            .await;
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("service-account.json");
        std::fs::write(
            &key_file,
            json!({
                "type": "service_account",
                "project_id": "demo-clinic",
                "private_key_id": "key-1",
                "private_key": include_str!("../fixtures/fcm-test-key.pem"),
                "client_email": "medrelay@demo-clinic.iam.gserviceaccount.com",
                "token_uri": format!("{}/token", fcm.uri()),
            })
            .to_string(),
        )
        .unwrap();
        Providers {
            smtp: SmtpSink::start().await,
            twilio,
            fcm,
            key_file: key_file.to_str().unwrap().to_owned(),
            _keys: keys,
        }
    }

    fn apply(&self, s: &mut Settings) {
        let n = &mut s.notifications;
        n.public_url = PUBLIC_URL.into();
        n.email.host = "127.0.0.1".into();
        n.email.port = self.smtp.addr().port();
        n.email.tls = SmtpTls::None;
        n.email.from = "Clinic <clinic@example.org>".into();
        n.sms.account_sid = ACCOUNT.into();
        n.sms.auth_token = SecretString::from(AUTH_TOKEN);
        n.sms.from = FROM_NUMBER.into();
        n.sms.base_url = self.twilio.uri();
        n.push.project_id = "demo-clinic".into();
        n.push.service_account_file = self.key_file.clone();
        n.push.base_url = self.fcm.uri();
        n.delivery.backoff_initial_ms = 50;
        n.delivery.backoff_max_ms = 200;
        n.delivery.send_timeout_secs = 5;
        // The tests here count the messages of reminders and notices; the
        // tests of booking confirmations turn them back on.
        n.confirm_bookings = false;
    }

    async fn sms_sent(&self) -> Vec<Vec<(String, String)>> {
        self.twilio
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == SMS_PATH)
            .map(form)
            .collect()
    }

    async fn pushes(&self) -> Vec<Value> {
        self.fcm
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == FCM_SEND)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

fn form(r: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&r.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The providers, a server using them (after `tweak`), the admin's token,
/// and a doctor open around the clock.
async fn clinic(tweak: impl FnOnce(&mut Settings)) -> (Providers, TestApp, String) {
    let providers = Providers::start().await;
    let app = spawn_app_with(|s| {
        providers.apply(s);
        tweak(s);
    })
    .await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    (providers, app, admin)
}

/// A doctor open around the clock, in UTC.
pub async fn doctor(app: &TestApp, admin: &str) {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "prv_house", "name": "Dr. House", "timeZone": "UTC",
                   "availability": all_day_availability()}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A patient with an e-mail address and a phone number.
async fn patient(app: &TestApp, username: &str, phone: &str) -> Patient {
    app.signup_patient_with(
        username,
        json!({"name": format!("Patient {username}"),
               "contactInfo": {"phone": phone, "email": format!("{username}@mail.example.org")}}),
    )
    .await
}

pub fn in_days(days: i64) -> Date {
    Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(days.days())
        .unwrap()
}

pub fn start_of(date: Date, time: &str) -> Timestamp {
    format!("{date}T{time}:00Z").parse().unwrap()
}

pub async fn book(app: &TestApp, p: &Patient, date: Date, time: &str) -> String {
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": p.patient_id, "providerId": "prv_house",
                   "appointmentDate": date.to_string(), "timeSlot": time}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["appointmentId"].as_str().unwrap().to_owned()
}

/// Registers a push device for `p`.
async fn register_device(app: &TestApp, p: &Patient, token: &str, platform: &str) {
    let (status, body) = app
        .post(
            "/api/devices",
            json!({"token": token, "platform": platform}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Whether notification `id`'s report, read by `admin`, says `sent` within
/// [`WAIT`].
async fn reported_sent(app: &TestApp, admin: &str, id: &str) -> bool {
    eventually(WAIT, || async {
        app.get(&format!("/api/notifications/{id}"), Some(admin))
            .await
            .1["status"]
            == "sent"
    })
    .await
}

/// Moves the server's notification clock to a second past `to` (never back).
pub async fn advance_to(app: &TestApp, admin: &str, to: Timestamp) {
    let to = to + SignedDuration::from_secs(1);
    let (status, body) = app
        .post(
            "/api/test-faults/clock",
            json!({"to": to.to_string()}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

/// Long enough for anything due to have fired: the scheduler looks at least
/// once a second, and a send to the local providers takes milliseconds.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Waits until the patient socket sees `n` notification events and returns them.
pub async fn notifications(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let event = tokio::time::timeout(WAIT, ws.next_event())
            .await
            .expect("a notification event in time");
        if event["event"]["kind"] == "notification" {
            seen.push(event);
        }
    }
    seen
}

pub async fn subscribe_patient(app: &TestApp, p: &Patient, since: Option<u64>) -> Ws {
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let mut cmd = json!({"type": "subscribe", "channel": format!("patient:{}", p.patient_id)});
    if let Some(since) = since {
        cmd["since"] = json!(since);
    }
    let reply = ws.call(cmd).await;
    assert_eq!(reply["ok"], true, "{reply}");
    ws
}

/// The notifications report (`GET /api/analytics/notifications`) over every
/// clinic day a test's notifications can be made on: yesterday to 30 days
/// ahead, by UTC days (the tests' clinic zone, the default). A record
/// counts on the day of the notification clock it was made by, and tests
/// move that clock days ahead to fire reminders.
fn report_path() -> String {
    format!(
        "/api/analytics/notifications?from={}&to={}",
        in_days(-1),
        in_days(30)
    )
}

/// The counted figures of a report row.
const FIGURES: [&str; 7] = [
    "notifications",
    "sent",
    "delivered",
    "failed",
    "expired",
    "failedAttempts",
    "acknowledged",
];

/// What became of the notifications of [`report_path`], read by `admin`:
/// channel → its [`FIGURES`] summed over categories and days. A channel
/// with no notifications is absent.
async fn figures(app: &TestApp, admin: &str) -> Value {
    let (status, report) = app.get(&report_path(), Some(admin)).await;
    assert_eq!(status, 200, "{report}");
    let mut sums = json!({});
    for row in report["rows"].as_array().unwrap() {
        let channel = row["channel"].as_str().unwrap();
        for name in FIGURES {
            let have = sums[channel][name].as_u64().unwrap_or(0);
            let more = row[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {row}"));
            sums[channel][name] = json!(have + more);
        }
    }
    sums
}

/// Notifications made on all channels, from [`figures`].
fn made(figures: &Value) -> u64 {
    figures
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["notifications"].as_u64().unwrap())
        .sum()
}

/// [`FIGURES`] as a test expects them, in that order.
fn counted(values: [u64; 7]) -> Value {
    FIGURES
        .iter()
        .zip(values)
        .map(|(name, v)| ((*name).to_owned(), json!(v)))
        .collect::<serde_json::Map<String, Value>>()
        .into()
}
