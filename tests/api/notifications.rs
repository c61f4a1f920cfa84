//! Notifications end to end: reminders on every allowed channel, moves,
//! cancellations, opt-outs, Twilio callbacks, a dead SMTP server, in-app
//! delivery to two devices, and process kills around a send.
//!
//! E-mail goes to a real SMTP server on a free port; Twilio and FCM are
//! `wiremock` servers that check each request.

use std::path::Path;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay::config::{Settings, SmtpTls};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, bearer_token, body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

const ACCOUNT: &str = "AC0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-1";
const FROM_NUMBER: &str = "+15550001111";
const PUBLIC_URL: &str = "https://clinic.example.org";
const SMS_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json";
const FCM_SEND: &str = "/v1/projects/demo-clinic/messages:send";
const ACCESS_TOKEN: &str = "ya29.test-access-token";
const WAIT: Duration = Duration::from_secs(10);

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
async fn doctor(app: &TestApp, admin: &str) {
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

fn in_days(days: i64) -> Date {
    Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(days.days())
        .unwrap()
}

fn start_of(date: Date, time: &str) -> Timestamp {
    format!("{date}T{time}:00Z").parse().unwrap()
}

async fn book(app: &TestApp, p: &Patient, date: Date, time: &str) -> String {
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

/// Moves the server's notification clock to a second past `to` (never back).
async fn advance_to(app: &TestApp, admin: &str, to: Timestamp) {
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
async fn notifications(ws: &mut Ws, n: usize) -> Vec<Value> {
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

async fn subscribe_patient(app: &TestApp, p: &Patient, since: Option<u64>) -> Ws {
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let mut cmd = json!({"type": "subscribe", "channel": format!("patient:{}", p.patient_id)});
    if let Some(since) = since {
        cmd["since"] = json!(since);
    }
    let reply = ws.call(cmd).await;
    assert_eq!(reply["ok"], true, "{reply}");
    ws
}

#[tokio::test]
async fn a_reminder_fires_once_per_offset_on_every_allowed_channel() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let alice = patient(&app, "alice", "+4915112345678").await;
    let (status, body) = app
        .post(
            "/api/devices",
            json!({"token": "device-token-alice-1", "platform": "android"}),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut phone = subscribe_patient(&app, &alice, None).await;
    let mut tablet = subscribe_patient(&app, &alice, None).await;

    let date = in_days(3);
    let start = start_of(date, "10:00");
    let appointment = book(&app, &alice, date, "10:00").await;

    // A minute before the 24-hour reminder: nothing yet.
    advance_to(
        &app,
        &admin,
        start - SignedDuration::from_hours(24) - SignedDuration::from_secs(60),
    )
    .await;
    settle().await;
    assert!(providers.smtp.received().is_empty());

    advance_to(&app, &admin, start - SignedDuration::from_hours(24)).await;
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["alice@mail.example.org".to_owned()]);
    assert_eq!(mail.from, "clinic@example.org");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Appointment reminder")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Clinic <clinic@example.org>")
    );
    let body = mail.text();
    assert!(body.contains("Dr. House"), "{body}");
    assert!(body.contains(&format!("{date} at 10:00 (UTC)")), "{body}");
    let message_id = mail.header("Message-ID").unwrap();

    // The same reminder reaches both of Alice's sockets and her phone.
    for ws in [&mut phone, &mut tablet] {
        let seen = notifications(ws, 1).await;
        assert_eq!(seen[0]["event"]["category"], "appointment_reminder");
        assert_eq!(seen[0]["event"]["appointmentId"], appointment);
    }
    assert!(
        eventually(WAIT, || async { providers.pushes().await.len() == 1 }).await,
        "one push"
    );
    let push = &providers.pushes().await[0];
    assert_eq!(push["message"]["token"], "device-token-alice-1");
    assert_eq!(
        push["message"]["notification"]["title"],
        "Appointment reminder"
    );
    // E-mail is Alice's preferred text channel: no SMS.
    assert!(providers.sms_sent().await.is_empty());

    // The delivery report, as Alice sees it (recipient masked) and as an admin.
    let id = message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    // The outcome is recorded just after the server answered.
    assert!(
        eventually(WAIT, || async {
            app.get(&format!("/api/notifications/{id}"), Some(&admin))
                .await
                .1["status"]
                == "sent"
        })
        .await
    );
    let (status, report) = app
        .get(
            &format!("/api/notifications/{id}"),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["channel"], "email");
    assert_eq!(report["recipient"], "a***@mail.example.org");
    assert_eq!(report["status"], "sent");
    let statuses: Vec<&str> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "sent"]);
    let (_, full) = app
        .get(&format!("/api/notifications/{id}"), Some(&admin))
        .await;
    assert_eq!(full["recipient"], "alice@mail.example.org");
    let bob = app.signup_patient("bob").await;
    let (status, _) = app
        .get(&format!("/api/notifications/{id}"), Some(&bob.tokens.token))
        .await;
    assert_eq!(status, 404, "another patient's report is not found");

    // The 2-hour reminder, then nothing more however far the clock moves.
    advance_to(&app, &admin, start - SignedDuration::from_hours(2)).await;
    assert_eq!(providers.smtp.wait_for(2, WAIT).await.len(), 2);
    notifications(&mut phone, 1).await;
    advance_to(&app, &admin, start + SignedDuration::from_hours(48)).await;
    settle().await;
    assert_eq!(providers.smtp.received().len(), 2);
    assert_eq!(providers.pushes().await.len(), 2);

    let (status, stats) = app.get("/api/notifications", Some(&admin)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["byChannel"]["email"]["sent"], 2);
    assert_eq!(stats["byChannel"]["push"]["sent"], 2);
    assert_eq!(stats["byChannel"]["in_app"]["delivered"], 2);
    let (status, _) = app
        .get("/api/notifications", Some(&alice.tokens.token))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_move_replans_reminders_and_a_cancellation_removes_them() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let carol = patient(&app, "carol", "+4915112345679").await;
    let date = in_days(3);
    let moved_to = in_days(5);
    let appointment = book(&app, &carol, date, "10:00").await;
    let doomed = book(&app, &carol, in_days(4), "15:00").await;

    let (status, body) = app
        .put(
            &format!("/api/appointments/{appointment}"),
            json!({"appointmentDate": moved_to.to_string(), "timeSlot": "11:30"}),
            &carol.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The move is announced at once.
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Appointment moved")
    );
    assert!(
        mails[0].text().contains(&format!("{moved_to} at 11:30")),
        "{}",
        mails[0].text()
    );

    let cancelled = app
        .http
        .delete(app.url(&format!("/api/appointments/{doomed}")))
        .bearer_auth(&carol.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let mails = providers.smtp.wait_for(2, WAIT).await;
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("Appointment cancelled")
    );

    // Past both old reminder times and the cancelled visit's first one:
    // nothing fires.
    advance_to(&app, &admin, start_of(in_days(4), "11:00")).await;
    settle().await;
    assert_eq!(
        providers.smtp.received().len(),
        2,
        "no reminder for the old time or the cancelled visit"
    );
    // The new time's first reminder does; the cancelled visit's second does not.
    advance_to(
        &app,
        &admin,
        start_of(moved_to, "11:30") - SignedDuration::from_hours(24),
    )
    .await;
    let mails = providers.smtp.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(
        mails[2].header("Subject").as_deref(),
        Some("Appointment reminder")
    );
    assert!(mails[2].text().contains(&format!("{moved_to} at 11:30")));
    advance_to(&app, &admin, start_of(in_days(4), "14:00")).await;
    settle().await;
    assert_eq!(providers.smtp.received().len(), 3);
}

#[tokio::test]
async fn an_opt_out_holds_for_reminders_already_scheduled() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let dave = patient(&app, "dave", "+4915112345670").await;
    let (status, defaults) = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&dave.tokens.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(defaults["categories"]["marketing"], false);
    assert_eq!(defaults["channels"]["sms"], true);

    let date = in_days(3);
    book(&app, &dave, date, "09:00").await;
    // After booking: SMS preferred, no e-mail, no in-app; and no 2-hour reminder.
    let mut prefs = defaults.clone();
    prefs["preferredChannel"] = json!("sms");
    prefs["channels"]["email"] = json!(false);
    prefs["channels"]["in_app"] = json!(false);
    let (status, saved) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs.clone(),
            &dave.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let mut ws = subscribe_patient(&app, &dave, None).await;

    advance_to(
        &app,
        &admin,
        start_of(date, "09:00") - SignedDuration::from_hours(24),
    )
    .await;
    assert!(
        eventually(WAIT, || async { providers.sms_sent().await.len() == 1 }).await,
        "one SMS"
    );
    let sms = &providers.sms_sent().await[0];
    assert_eq!(field(sms, "To"), Some("+4915112345670"));
    assert_eq!(field(sms, "From"), Some(FROM_NUMBER));
    assert!(field(sms, "Body").unwrap().contains("Dr. House"), "{sms:?}");
    let callback = field(sms, "StatusCallback").unwrap();
    assert!(
        callback.starts_with(&format!(
            "{PUBLIC_URL}/api/notifications/twilio/status?notificationId=ntf_"
        )),
        "{callback}"
    );
    let request = &providers.twilio.received_requests().await.unwrap()[0];
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );

    // Now out of reminders altogether.
    prefs["categories"]["appointment_reminder"] = json!(false);
    let (status, _) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs,
            &dave.tokens.token,
        )
        .await;
    assert_eq!(status, 200);
    advance_to(
        &app,
        &admin,
        start_of(date, "09:00") - SignedDuration::from_mins(110),
    )
    .await;
    settle().await;
    assert_eq!(providers.sms_sent().await.len(), 1);
    assert!(providers.smtp.received().is_empty(), "e-mail was opted out");
    ws.no_event_within(Duration::from_millis(300)).await;

    // Bad preferences are refused naming the field.
    let (status, body) = app.put("/api/users/me/notification-preferences",
        json!({"channels": {"email": true, "sms": true, "push": true, "in_app": true},
               "categories": {"appointment_reminder": true, "appointment_change": true, "billing": true, "marketing": false},
               "timeZone": "Mars/Olympus"}),
        &dave.tokens.token,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("timeZone")),
        "{body}"
    );
}

#[tokio::test]
async fn direct_sends_validate_and_twilio_callbacks_need_a_valid_signature() {
    let providers = Providers::start().await;
    let app = spawn_app_with(|s| providers.apply(s)).await;
    let admin = app.admin_token().await;
    let eve = app.signup_patient("eve").await;

    let (status, _) = app
        .post(
            "/api/notifications/sms",
            json!({"to": "+15551234567", "message": "hi"}),
            Some(&eve.tokens.token),
        )
        .await;
    assert_eq!(status, 403, "patients cannot send");
    for (path, body, bad) in [
        (
            "/api/notifications/sms",
            json!({"to": "5551234567", "message": "hi"}),
            "to",
        ),
        (
            "/api/notifications/sms",
            json!({"to": "+15551234567", "message": ""}),
            "message",
        ),
        (
            "/api/notifications/email",
            json!({"to": "not-an-address", "subject": "s", "body": "b"}),
            "to",
        ),
        (
            "/api/notifications/email",
            json!({"to": "a@example.org", "subject": "x".repeat(201), "body": "b"}),
            "subject",
        ),
        (
            "/api/notifications/push",
            json!({"to": "has space", "title": "t", "message": "m"}),
            "to",
        ),
    ] {
        let (status, reply) = app.post(path, body, Some(&admin)).await;
        assert_eq!(
            (status, reply["error"]["field"].as_str()),
            (422, Some(bad)),
            "{path}: {reply}"
        );
    }

    let (status, accepted) = app
        .post(
            "/api/notifications/sms",
            json!({"to": "+15551234567", "message": "Your results are ready."}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "Queued");
    let id = accepted["notificationId"].as_str().unwrap().to_owned();
    assert!(
        eventually(WAIT, || async {
            app.get(&format!("/api/notifications/{id}"), Some(&admin))
                .await
                .1["status"]
                == "sent"
        })
        .await
    );
    let sms = &providers.sms_sent().await[0];
    assert_eq!(field(sms, "To"), Some("+15551234567"));
    assert_eq!(field(sms, "Body"), Some("Your results are ready."));
    let (_, report) = app
        .get(&format!("/api/notifications/{id}"), Some(&admin))
        .await;
    assert_eq!(
        report["providerMessageId"],
        "SM0000000000000000000000000000001"
    );

    let url = format!("{PUBLIC_URL}/api/notifications/twilio/status?notificationId={id}");
    let params = vec![
        (
            "MessageSid".to_owned(),
            "SM0000000000000000000000000000001".to_owned(),
        ),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
        ("AccountSid".to_owned(), ACCOUNT.to_owned()),
    ];
    let signature = medrelay::notify::providers::twilio_signature(AUTH_TOKEN, &url, &params);
    let callback = |sig: Option<&str>| {
        let mut req = app
            .http
            .post(app.url(&format!(
                "/api/notifications/twilio/status?notificationId={id}"
            )))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter())
                    .finish(),
            );
        if let Some(sig) = sig {
            req = req.header("x-twilio-signature", sig.to_owned());
        }
        req.send()
    };
    assert_eq!(callback(None).await.unwrap().status(), 403);
    assert_eq!(
        callback(Some("bm90IHRoZSBzaWduYXR1cmU="))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        app.get(&format!("/api/notifications/{id}"), Some(&admin))
            .await
            .1["status"],
        "sent"
    );
    assert_eq!(callback(Some(&signature)).await.unwrap().status(), 204);
    let (_, report) = app
        .get(&format!("/api/notifications/{id}"), Some(&admin))
        .await;
    assert_eq!(report["status"], "delivered", "{report}");
}

#[tokio::test]
async fn a_dead_smtp_server_fails_over_to_sms_and_spares_the_other_channels() {
    let (mut providers, app, admin) = clinic(|s| {
        s.notifications.delivery.max_attempts = 3;
        s.notifications.delivery.circuit_failures = 2;
        s.notifications.delivery.circuit_open_secs = 60;
    })
    .await;
    providers.smtp.stop();
    let frank = patient(&app, "frank", "+4915112345671").await; // e-mail preferred
    let grace = patient(&app, "grace", "+4915112345672").await;
    let mut prefs = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&grace.tokens.token),
        )
        .await
        .1;
    prefs["preferredChannel"] = json!("sms");
    app.put(
        "/api/users/me/notification-preferences",
        prefs,
        &grace.tokens.token,
    )
    .await;
    let mut grace_ws = subscribe_patient(&app, &grace, None).await;
    let date = in_days(3);
    book(&app, &frank, date, "10:00").await;
    book(&app, &grace, date, "10:30").await;

    advance_to(
        &app,
        &admin,
        start_of(date, "10:30") - SignedDuration::from_hours(24),
    )
    .await;
    // Grace's SMS and in-app go out on time while e-mail is failing.
    notifications(&mut grace_ws, 1).await;
    assert!(
        eventually(WAIT, || async {
            providers
                .sms_sent()
                .await
                .iter()
                .any(|f| field(f, "To") == Some("+4915112345672"))
        })
        .await
    );
    // Frank's e-mail retries, fails for good and falls back to SMS.
    assert!(
        eventually(Duration::from_secs(20), || async {
            providers
                .sms_sent()
                .await
                .iter()
                .any(|f| field(f, "To") == Some("+4915112345671"))
        })
        .await,
        "fallback SMS"
    );
    let (_, stats) = app
        .get("/api/notifications?status=undeliverable", Some(&admin))
        .await;
    assert_eq!(stats["byChannel"]["email"]["undeliverable"], 1, "{stats}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("notification_retries_total{channel=\"email\"}"),
        "retries are counted"
    );
    let frank_email = replaced_by_sms_to(&app, &admin, &providers, "+4915112345671").await;
    assert_eq!(frank_email["status"], "undeliverable");
    let details: Vec<String> = frank_email["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["detail"].as_str().map(str::to_owned))
        .collect();
    assert!(
        details.iter().any(|d| d.contains("circuit open")),
        "{details:?}"
    );
    assert!(
        details.last().unwrap().contains("falling back to sms"),
        "{details:?}"
    );
}

/// The e-mail notification that the SMS to `phone` replaced, through the
/// SMS's callback URL (which names its id) and its `fallbackOf`.
async fn replaced_by_sms_to(
    app: &TestApp,
    admin: &str,
    providers: &Providers,
    phone: &str,
) -> Value {
    let sent = providers.sms_sent().await;
    let sms = sent.iter().find(|f| field(f, "To") == Some(phone)).unwrap();
    let callback = field(sms, "StatusCallback").unwrap();
    let sms_id = callback.rsplit('=').next().unwrap();
    let (_, report) = app
        .get(&format!("/api/notifications/{sms_id}"), Some(admin))
        .await;
    let email_id = report["fallbackOf"]
        .as_str()
        .expect("the SMS is a fallback");
    let (_, email) = app
        .get(&format!("/api/notifications/{email_id}"), Some(admin))
        .await;
    assert_eq!(email["channel"], "email");
    email
}

#[tokio::test]
async fn two_devices_get_in_app_notifications_and_a_reconnect_catches_up() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let hana = patient(&app, "hana", "+4915112345673").await;
    let mut phone = subscribe_patient(&app, &hana, None).await;
    let mut tablet = subscribe_patient(&app, &hana, None).await;
    let date = in_days(3);
    let first = book(&app, &hana, date, "08:00").await;
    let second = book(&app, &hana, date, "16:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(24),
    )
    .await;
    let on_phone = notifications(&mut phone, 1).await;
    let on_tablet = notifications(&mut tablet, 1).await;
    assert_eq!(on_phone[0]["seq"], on_tablet[0]["seq"]);
    assert_eq!(on_phone[0]["event"]["appointmentId"], first);
    let seen = on_tablet[0]["seq"].as_u64().unwrap();

    // The tablet goes away; two more notifications arrive meanwhile.
    drop(tablet);
    advance_to(
        &app,
        &admin,
        start_of(date, "16:00") - SignedDuration::from_hours(24),
    )
    .await;
    notifications(&mut phone, 1).await;
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(2),
    )
    .await;
    notifications(&mut phone, 1).await;

    let mut back = subscribe_patient(&app, &hana, Some(seen)).await;
    let missed = notifications(&mut back, 2).await;
    assert_eq!(missed[0]["event"]["appointmentId"], second);
    assert_eq!(missed[1]["event"]["appointmentId"], first);
    back.no_event_within(Duration::from_millis(300)).await;

    // With no provider configured, e-mail went to the outbox folder.
    let outbox = app.data_dir.join("outbox").join("email");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(
        files.len(),
        3,
        "three reminders by e-mail in {}",
        outbox.display()
    );
}

#[tokio::test]
async fn killed_before_a_reminder_fell_due_or_during_its_send_delivers_it_exactly_once() {
    let mut smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = test_settings(&data);
    create_admin(&settings).await;
    let http = reqwest::Client::new();

    // The next 5-minute slot at least 2 minutes ahead; its reminder due in
    // 15 s, time enough to start, book and kill before it.
    let now = Timestamp::now();
    let slot = Timestamp::from_second((now.as_second() + 120 + 299) / 300 * 300).unwrap();
    let due = now + SignedDuration::from_secs(15);
    let lead = slot.duration_since(due);
    let config = dir.path().join("medrelay.toml");
    write_config(&config, lead, smtp.addr().port());
    let env = [("MEDRELAY_CONFIG", config.to_str().unwrap())];

    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let token = login(&http, &base, ADMIN).await;
    let client = Client {
        http: &http,
        base: &base,
    };
    client
        .post(
            "/api/providers",
            json!({"providerId": "prv_house", "name": "Dr. House", "timeZone": "UTC",
        "slotMinutes": 5, "availability": all_day_availability()}),
            &token,
        )
        .await;
    let (patient_token, patient_id) = client.signup("ivan").await;
    let date = slot.to_zoned(jiff::tz::TimeZone::UTC);
    let (status, body) = client.post_status("/api/appointments", json!({"patientId": patient_id, "providerId": "prv_house",
        "appointmentDate": date.date().to_string(), "timeSlot": date.strftime("%H:%M").to_string()}), &patient_token).await;
    assert_eq!(status, 201, "{body}");
    // Killed before the reminder is due; it falls due while the server is down.
    assert!(
        Timestamp::now() < due,
        "set-up took too long to test a kill before the due time"
    );
    server.kill();
    assert!(smtp.received().is_empty());
    let left = due.duration_since(Timestamp::now()) + SignedDuration::from_secs(1);
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
    let server = Process::start(&data, &env);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "sent after the restart");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1, "and only once");
    server.kill();

    // Now a send that is under way when the server dies: the SMTP server
    // never answers, the process is killed mid-send, and the restart sends
    // it once more with the same Message-ID.
    let port = smtp.addr();
    smtp.stop();
    let silent = bind_again(port).await;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream); // accepted, never greeted
        }
    });
    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let token = login(&http, &base, ADMIN).await;
    let (status, accepted) = client
        .post_status(
            "/api/notifications/email",
            json!({"to": "ivan@example.org", "subject": "Lab results", "body": "Ready."}),
            &token,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["notificationId"].as_str().unwrap().to_owned();
    assert!(
        eventually(WAIT, || async {
            client
                .get(&format!("/api/notifications/{id}"), &token)
                .await["attempts"]
                == 1
        })
        .await,
        "the send began"
    );
    server.kill();
    hold.abort();
    let smtp = SmtpSink::start_on(port).await;
    let server = Process::start(&data, &env);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Message-ID"),
        Some(format!("<{id}@medrelay>"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let token = login(&http, &base, ADMIN).await;
    let report = client
        .get(&format!("/api/notifications/{id}"), &token)
        .await;
    assert_eq!(report["status"], "sent", "{report}");
    assert_eq!(report["attempts"], 2, "{report}");
    server.kill();
}

/// Binds `addr` again once the previous listener on it is gone.
async fn bind_again(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} stayed in use");
}

fn write_config(file: &Path, lead: SignedDuration, smtp_port: u16) {
    std::fs::write(
        file,
        format!(
            "[schedule]\nmin_notice_minutes = 1\n\n[notifications]\nreminder_offsets = [\"{}s\"]\n\n\
             [notifications.email]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\n\
             [notifications.delivery]\nsend_timeout_secs = 60\n",
            lead.as_secs()
        ),
    )
    .unwrap();
}

async fn login(http: &reqwest::Client, base: &str, (user, password): (&str, &str)) -> String {
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    read(r).await.1["token"].as_str().unwrap().to_owned()
}

struct Client<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl Client<'_> {
    async fn post_status(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
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

    async fn post(&self, path: &str, body: Value, token: &str) -> Value {
        let (status, body) = self.post_status(path, body, token).await;
        assert!(status < 300, "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str, token: &str) -> Value {
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

    async fn signup(&self, username: &str) -> (String, String) {
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

#[tokio::test]
async fn a_device_the_provider_no_longer_knows_is_removed() {
    let (providers, app, admin) = clinic(|_| {}).await;
    Mock::given(method("POST"))
        .and(path(FCM_SEND))
        .and(body_partial_json(
            json!({"message": {"token": "device-gone"}}),
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                         "errorCode": "UNREGISTERED"}]}})))
        .with_priority(1)
        .mount(&providers.fcm)
        .await;
    let ines = patient(&app, "ines", "+4915112345674").await;
    for token in ["device-gone", "device-kept"] {
        let (status, body) = app
            .post(
                "/api/devices",
                json!({"token": token, "platform": "ios"}),
                Some(&ines.tokens.token),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let date = in_days(3);
    book(&app, &ines, date, "10:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "10:00") - SignedDuration::from_hours(24),
    )
    .await;
    assert!(
        eventually(WAIT, || async {
            let (_, devices) = app.get("/api/devices", Some(&ines.tokens.token)).await;
            devices
                .as_array()
                .is_some_and(|d| d.len() == 1 && d[0]["token"] == "device-kept")
        })
        .await,
        "the unregistered device is forgotten"
    );
    advance_to(
        &app,
        &admin,
        start_of(date, "10:00") - SignedDuration::from_hours(2),
    )
    .await;
    assert_eq!(providers.smtp.wait_for(2, WAIT).await.len(), 2);
    assert!(
        eventually(WAIT, || async { providers.pushes().await.len() == 3 }).await,
        "two pushes for the first reminder, one for the second"
    );
    let gone = providers
        .pushes()
        .await
        .iter()
        .filter(|p| p["message"]["token"] == "device-gone")
        .count();
    assert_eq!(gone, 1);
    let (_, stats) = app.get("/api/notifications", Some(&admin)).await;
    assert_eq!(stats["byChannel"]["push"]["undeliverable"], 1, "{stats}");
    // Removing a device by hand; someone else's is not found.
    let (status, _) = read(
        app.http
            .delete(app.url("/api/devices/device-kept"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let removed = app
        .http
        .delete(app.url("/api/devices/device-kept"))
        .bearer_auth(&ines.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
}

#[tokio::test]
async fn a_reminder_due_in_quiet_hours_waits_for_their_end() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let jon = patient(&app, "jon", "+4915112345675").await;
    // 10:00 UTC is 19:00 in Tokyo: inside 18:00-20:00 there.
    let mut prefs = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&jon.tokens.token),
        )
        .await
        .1;
    prefs["quietHours"] = json!({"start": "18:00", "end": "20:00"});
    prefs["timeZone"] = json!("Asia/Tokyo");
    let (status, body) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs,
            &jon.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let date = in_days(3);
    book(&app, &jon, date, "10:00").await;
    let due = start_of(date, "10:00") - SignedDuration::from_hours(24);
    advance_to(&app, &admin, due).await;
    settle().await;
    assert!(
        providers.smtp.received().is_empty(),
        "held during quiet hours"
    );
    advance_to(&app, &admin, due + SignedDuration::from_hours(1)).await;
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    // Shown in Jon's zone: 19:00 on the appointment's Tokyo date.
    let local = start_of(date, "10:00").to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    assert!(
        mails[0]
            .text()
            .contains(&format!("{} at 19:00 (Asia/Tokyo)", local.date())),
        "{}",
        mails[0].text()
    );
}

#[tokio::test]
async fn reminders_that_fell_due_after_the_appointment_began_expire() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let kim = patient(&app, "kim", "+4915112345676").await;
    let date = in_days(3);
    book(&app, &kim, date, "10:00").await;
    // Down, and back only after the appointment began.
    let app = app.restart(|_| {}).await;
    let admin = app.admin_token().await;
    advance_to(&app, &admin, start_of(date, "11:00")).await;
    assert!(
        eventually(WAIT, || async {
            let (_, stats) = app.get("/api/notifications", Some(&admin)).await;
            stats["byChannel"]["email"]["expired"] == 2
                && stats["byChannel"]["in_app"]["expired"] == 2
        })
        .await,
        "both reminders recorded as expired"
    );
    let (_, stats) = app.get("/api/notifications", Some(&admin)).await;
    assert_eq!(stats["total"], 4, "{stats}");
    let outbox = app.data_dir.join("outbox").join("email");
    let sent = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sent, 0, "nothing was sent");
}

/// Acknowledges `seq` on the patient's own channel.
async fn ack(ws: &mut Ws, p: &Patient, seq: u64) -> Value {
    ws.call(json!({"type": "ack", "channel": format!("patient:{}", p.patient_id), "seq": seq}))
        .await
}

async fn report(app: &TestApp, p: &Patient, notification: &Value) -> Value {
    let id = notification["event"]["notificationId"].as_str().unwrap();
    let (status, body) = app
        .get(&format!("/api/notifications/{id}"), Some(&p.tokens.token))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn acknowledged_notifications_are_delivered_and_a_new_device_gets_only_the_rest() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let kim = patient(&app, "kim", "+4915112345674").await;
    let lee = patient(&app, "lee", "+4915112345675").await;
    let date = in_days(3);
    let first = book(&app, &kim, date, "08:00").await;
    let second = book(&app, &kim, date, "16:00").await;

    // The first reminder fires while none of Kim's devices is connected.
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(24),
    )
    .await;
    settle().await;

    // Her phone connects afresh: the reply counts one unacknowledged
    // notification, and it follows the reply.
    let mut phone = app.ws(Some(&kim.tokens.token)).await;
    let reply = phone
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["unacknowledged"], 1, "{reply}");
    let missed = notifications(&mut phone, 1).await;
    assert_eq!(missed[0]["event"]["appointmentId"], first);
    let first_seq = missed[0]["seq"].as_u64().unwrap();
    assert_eq!(report(&app, &kim, &missed[0]).await["status"], "sent");

    // The second one arrives live: delivered at once.
    advance_to(
        &app,
        &admin,
        start_of(date, "16:00") - SignedDuration::from_hours(24),
    )
    .await;
    let live = notifications(&mut phone, 1).await;
    assert_eq!(live[0]["event"]["appointmentId"], second);
    let live_report = report(&app, &kim, &live[0]).await;
    assert_eq!(live_report["status"], "delivered", "{live_report}");

    // Acknowledging the first makes it delivered.
    let acked = ack(&mut phone, &kim, first_seq).await;
    assert_eq!(acked["ok"], true, "{acked}");
    assert_eq!(acked["data"]["acknowledged"], 1);
    assert_eq!(acked["data"]["unacknowledged"], 1);
    let first_report = report(&app, &kim, &missed[0]).await;
    assert_eq!(first_report["status"], "delivered", "{first_report}");

    // Wrong seq, wrong channel: refused, and nothing changes.
    let ahead = ack(&mut phone, &kim, live[0]["seq"].as_u64().unwrap() + 50).await;
    assert_eq!(ahead["ok"], false);
    assert_eq!(ahead["error"]["field"], "seq", "{ahead}");
    let foreign = phone
        .call(json!({"type": "ack", "channel": format!("patient:{}", lee.patient_id), "seq": 1}))
        .await;
    assert_eq!(foreign["error"]["code"], "forbidden", "{foreign}");

    // A new tablet is sent only what no device has acknowledged.
    let mut tablet = app.ws(Some(&kim.tokens.token)).await;
    let reply = tablet
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["data"]["unacknowledged"], 1, "{reply}");
    let owed = notifications(&mut tablet, 1).await;
    assert_eq!(owed[0]["event"]["appointmentId"], second);
    tablet.no_event_within(Duration::from_millis(300)).await;
    let all = ack(&mut tablet, &kim, owed[0]["seq"].as_u64().unwrap()).await;
    assert_eq!(all["data"]["unacknowledged"], 0, "{all}");
    phone.no_event_within(Duration::from_millis(100)).await;
    drop((phone, tablet));

    // The acknowledgement is kept across a restart.
    let app = app.restart(|_| {}).await;
    let kim_tokens = app.login("kim", PASSWORD).await;
    let mut laptop = app.ws(Some(&kim_tokens.token)).await;
    let reply = laptop
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["data"]["unacknowledged"], 0, "{reply}");
    laptop.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_patient_session_that_panics_is_restarted_with_its_devices() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let mia = patient(&app, "mia", "+4915112345676").await;
    let ned = patient(&app, "ned", "+4915112345677").await;
    let mut phone = subscribe_patient(&app, &mia, None).await;
    let mut tablet = subscribe_patient(&app, &mia, None).await;
    let mut other = subscribe_patient(&app, &ned, None).await;
    let date = in_days(3);
    book(&app, &mia, date, "09:00").await;
    book(&app, &ned, date, "09:30").await;

    let (status, body) = app
        .post(
            &format!("/api/test-faults/session-panic/{}", mia.patient_id),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 500, "{body}");

    // Both of Mia's sockets still get the next notification, once, and
    // Ned's session never noticed.
    advance_to(
        &app,
        &admin,
        start_of(date, "09:30") - SignedDuration::from_hours(24),
    )
    .await;
    let on_phone = notifications(&mut phone, 1).await;
    let on_tablet = notifications(&mut tablet, 1).await;
    assert_eq!(on_phone[0]["seq"], on_tablet[0]["seq"]);
    let for_ned = notifications(&mut other, 1).await;
    assert_eq!(for_ned[0]["event"]["kind"], "notification");
    assert_eq!(
        report(&app, &mia, &on_phone[0]).await["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["detail"],
        "2 device(s) connected"
    );
    // The counter is the test process's: at least this restart.
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("actor_restarts_total{actor=\"patient_session\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_full_channel_queue_leaves_messages_in_the_store_until_there_is_room() {
    // One message in the e-mail actor's mailbox and one send at a time.
    let app = spawn_app_with(|s| {
        s.notifications.delivery.queue_capacity = 1;
        s.notifications.delivery.concurrency = 1;
    })
    .await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (status, body) = app
            .post(
                "/api/notifications/email",
                json!({"to": format!("p{i}@example.org"), "subject": "s", "body": "b"}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["notificationId"].as_str().unwrap().to_owned());
    }
    // Some did not fit; the sweep hands them over as room appears.
    assert!(
        app.metrics()
            .await
            .contains("notification_queue_full_total{channel=\"email\"}")
    );
    let all_delivered = eventually(WAIT, || async {
        let mut done = 0;
        for id in &ids {
            let (_, report) = app
                .get(&format!("/api/notifications/{id}"), Some(&admin))
                .await;
            if report["status"] == "delivered" {
                done += 1;
            }
        }
        done == ids.len()
    })
    .await;
    assert!(all_delivered, "not every queued e-mail was delivered");
    let outbox = app.data_dir.join("outbox").join("email");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), ids.len());
}
