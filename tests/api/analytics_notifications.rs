//! `/api/analytics/notifications`: direct sends and reminders on every
//! channel with known answers per channel and category (delivered, failed
//! for good, sent after a failed attempt, kept for a device), as JSON and
//! CSV; in-app acknowledgements; the same figures after a recount and a
//! restart; who may read the report, and bad queries.
//!
//! Channels without a provider deliver to the outbox folder; SMS goes to a
//! `wiremock` Twilio that refuses one number for good and fails another
//! once.

use crate::analytics_support::{only_admins_read, recount_and_restart};
use jiff::SignedDuration;
use jiff::civil::Date;
use medrelay::config::Settings;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::notifications::{
    ACCOUNT, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL, SMS_PATH, WAIT, advance_to, book, doctor,
    in_days, notifications, start_of, subscribe_patient,
};

/// Twilio refuses it for good (error 21211).
const BAD_NUMBER: &str = "+15550000001";
/// Twilio answers 503 once for it, then takes it.
const FLAKY_NUMBER: &str = "+15550000002";

/// Only the notifications each test makes: no booking confirmations.
fn quiet(s: &mut Settings) {
    s.notifications.confirm_bookings = false;
}

/// [`quiet`], with SMS through the Twilio at `base_url` and quick retries.
fn with_twilio(s: &mut Settings, base_url: &str) {
    quiet(s);
    let n = &mut s.notifications;
    n.public_url = PUBLIC_URL.into();
    n.sms.account_sid = ACCOUNT.into();
    n.sms.auth_token = SecretString::from(AUTH_TOKEN);
    n.sms.from = FROM_NUMBER.into();
    n.sms.base_url = base_url.to_owned();
    n.delivery.backoff_initial_ms = 50;
    n.delivery.backoff_max_ms = 200;
}

/// Whether a message request is to `number`.
fn to(number: &'static str) -> impl Fn(&Request) -> bool + Send + Sync {
    move |r: &Request| form_urlencoded::parse(&r.body).any(|(k, v)| k == "To" && v == number)
}

/// A Twilio that refuses [`BAD_NUMBER`], fails [`FLAKY_NUMBER`] once, and
/// takes everything else.
async fn twilio() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SMS_PATH))
        .and(to(BAD_NUMBER))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "message": "The 'To' number is not a valid phone number.",
            "status": 400})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SMS_PATH))
        .and(to(FLAKY_NUMBER))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SMS_PATH))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(
                json!({"sid": "SM0000000000000000000000000000001", "status": "queued"}),
            ),
        )
        .mount(&server)
        .await;
    server
}

async fn report(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.get(
        &format!("/api/analytics/notifications?{query}"),
        Some(token),
    )
    .await
}

/// A report's figures: the counts in the order of the CSV's columns
/// (notifications, sent, delivered, failed, expired, failedAttempts,
/// acknowledged), then the delivery and acknowledgement rates.
fn figures(counts: [u64; 7], delivery: Value, acknowledgement: Value) -> Value {
    let [
        made,
        sent,
        delivered,
        failed,
        expired,
        attempts,
        acknowledged,
    ] = counts;
    json!({"notifications": made, "sent": sent, "delivered": delivered, "failed": failed,
           "expired": expired, "failedAttempts": attempts, "acknowledged": acknowledged,
           "deliveryRate": delivery, "acknowledgementRate": acknowledgement})
}

/// A report row: `figures` of `channel` and `category` on `period`.
fn row(period: Date, (channel, category): (&str, &str), figures: Value) -> Value {
    let mut row = figures;
    row["period"] = json!(period.to_string());
    row["channel"] = json!(channel);
    row["category"] = json!(category);
    row
}

/// Waits until the report for `query` has `totals`; the report then.
async fn settled(app: &TestApp, admin: &str, query: &str, totals: &Value) -> Value {
    eventually(WAIT, || async {
        report(app, admin, query).await.1["totals"] == *totals
    })
    .await;
    let (status, body) = report(app, admin, query).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totals"], *totals, "{body}");
    body
}

#[tokio::test]
async fn each_channel_and_category_is_counted_by_what_became_of_its_notifications() {
    let sms = twilio().await;
    let sms_url = sms.uri();
    let app = spawn_app_with(|s| with_twilio(s, &sms_url)).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let today = in_days(0);

    // Direct sends, made today: two e-mails and a push to the outbox
    // folder, an SMS Twilio refuses, and one it takes at the second attempt.
    for (path, body) in [
        (
            "/api/notifications/email",
            json!({"to": "one@example.org", "subject": "s", "body": "b"}),
        ),
        (
            "/api/notifications/email",
            json!({"to": "two@example.org", "subject": "s", "body": "b"}),
        ),
        (
            "/api/notifications/push",
            json!({"to": "device-token-1", "title": "t", "message": "m"}),
        ),
        (
            "/api/notifications/sms",
            json!({"to": BAD_NUMBER, "message": "m"}),
        ),
        (
            "/api/notifications/sms",
            json!({"to": FLAKY_NUMBER, "message": "m"}),
        ),
    ] {
        let (status, reply) = app.post(path, body, Some(&admin)).await;
        assert_eq!(status, 202, "{path}: {reply}");
    }

    // Reminders by e-mail and in-app: Ann's phone is connected, Ben has no
    // device. They are made on the day the notification clock shows.
    let ann = app.signup_patient("ann").await;
    let ben = app.signup_patient("ben").await;
    let mut phone = subscribe_patient(&app, &ann, None).await;
    let date = in_days(3);
    book(&app, &ann, date, "10:00").await;
    book(&app, &ben, date, "11:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "11:00") - SignedDuration::from_hours(24),
    )
    .await;
    notifications(&mut phone, 1).await;
    let day = in_days(2);

    let query = format!("from={today}&to={date}&groupBy=day");
    let (null, one) = (Value::Null, json!(1.0));
    // made 9, sent 8, delivered 6 (of 9: 0.6667), 1 refused, 1 failed
    // attempt; none acknowledged of the 1 in-app delivered.
    let totals = figures([9, 8, 6, 1, 0, 1, 0], json!(0.6667), json!(0.0));
    let body = settled(&app, &admin, &query, &totals).await;
    assert_eq!(
        body["rows"],
        json!([
            row(
                today,
                ("email", "direct"),
                figures([2, 2, 2, 0, 0, 0, 0], one.clone(), null.clone())
            ),
            row(
                today,
                ("push", "direct"),
                figures([1, 1, 1, 0, 0, 0, 0], one.clone(), null.clone())
            ),
            // One refused for good; one sent after a failed attempt (Twilio
            // sends no delivery receipt here).
            row(
                today,
                ("sms", "direct"),
                figures([2, 1, 0, 1, 0, 1, 0], json!(0.0), null.clone())
            ),
            row(
                day,
                ("email", "appointment_reminder"),
                figures([2, 2, 2, 0, 0, 0, 0], one.clone(), null.clone())
            ),
            // Delivered to Ann's live phone; kept (sent) for Ben's next
            // connection.
            row(
                day,
                ("in_app", "appointment_reminder"),
                figures([2, 2, 1, 0, 0, 0, 0], json!(0.5), json!(0.0))
            ),
        ]),
        "{body}"
    );
    assert_eq!(
        (
            &body["from"],
            &body["to"],
            &body["groupBy"],
            &body["timeZone"]
        ),
        (
            &json!(today.to_string()),
            &json!(date.to_string()),
            &json!("day"),
            &json!("UTC")
        )
    );

    // The same table as CSV.
    let response = app
        .http
        .get(app.url(&format!("/api/analytics/notifications?{query}")))
        .bearer_auth(&admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "period,channel,category,notifications,sent,delivered,failed,expired,\
         failedAttempts,acknowledged,deliveryRate,acknowledgementRate"
    );
    assert_eq!(lines[3], format!("{today},sms,direct,2,1,0,1,0,1,0,0,"));
    assert_eq!(
        lines[5],
        format!("{day},in_app,appointment_reminder,2,2,1,0,0,0,0,0.5,0")
    );
    assert_eq!(lines[6], "total,,,9,8,6,1,0,1,0,0.6667,0");
    assert_eq!(
        lines.len(),
        8,
        "five rows, the total and the final line break"
    );

    // By month: the same five channels and categories (in one month or
    // two), the same totals.
    let months = format!("from={today}&to={date}&groupBy=month");
    let (_, by_month) = report(&app, &admin, &months).await;
    assert_eq!(by_month["rows"].as_array().unwrap().len(), 5, "{by_month}");
    assert_eq!(by_month["totals"], totals, "{by_month}");

    // A recount offline agrees; a restart keeps the figures.
    drop(phone);
    let (app, admin, _) = recount_and_restart(app, |s| with_twilio(s, &sms_url)).await;
    assert_eq!(report(&app, &admin, &query).await, (200, body));
}

/// Cleo's phone is connected when two reminders fire and acknowledges the
/// first; the report query covering them, and the report then.
async fn two_reminders_one_acknowledged() -> (TestApp, String, String, Value) {
    let app = spawn_app_with(quiet).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let cleo = app.signup_patient("cleo").await;
    let mut phone = subscribe_patient(&app, &cleo, None).await;
    let date = in_days(3);
    book(&app, &cleo, date, "10:00").await;
    book(&app, &cleo, date, "11:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "11:00") - SignedDuration::from_hours(24),
    )
    .await;
    let seen = notifications(&mut phone, 2).await;
    let first = seen[0]["seq"].as_u64().unwrap();
    let ack = json!({"type": "ack", "channel": format!("patient:{}", cleo.patient_id),
                     "seq": first});
    let acked = phone.call(ack.clone()).await;
    assert_eq!(
        (&acked["ok"], &acked["data"]["acknowledged"]),
        (&json!(true), &json!(1)),
        "{acked}"
    );

    // Both delivered live, one acknowledged: 0.5; the two e-mails too.
    let query = format!("from={}&to={date}", in_days(0));
    let totals = figures([4, 4, 4, 0, 0, 0, 1], json!(1.0), json!(0.5));
    let body = settled(&app, &admin, &query, &totals).await;
    let day = in_days(2);
    assert_eq!(
        body["rows"],
        json!([
            row(
                day,
                ("email", "appointment_reminder"),
                figures([2, 2, 2, 0, 0, 0, 0], json!(1.0), Value::Null)
            ),
            row(
                day,
                ("in_app", "appointment_reminder"),
                figures([2, 2, 2, 0, 0, 0, 1], json!(1.0), json!(0.5))
            ),
        ]),
        "{body}"
    );

    // Acknowledging the same again changes nothing.
    let again = phone.call(ack).await;
    assert_eq!(
        (&again["ok"], &again["data"]["acknowledged"]),
        (&json!(true), &json!(0)),
        "{again}"
    );
    assert_eq!(report(&app, &admin, &query).await, (200, body.clone()));
    (app, admin, query, body)
}

#[tokio::test]
async fn in_app_acknowledgements_are_counted_once() {
    let (_app, _admin, _query, body) = two_reminders_one_acknowledged().await;
    assert_eq!(body["totals"]["acknowledged"], 1, "{body}");
    assert_eq!(body["totals"]["acknowledgementRate"], 0.5, "{body}");
}

#[tokio::test]
async fn a_recount_finds_the_live_figures_and_a_restart_keeps_them() {
    let (app, _admin, query, before) = two_reminders_one_acknowledged().await;
    let (app, admin, _) = recount_and_restart(app, quiet).await;
    assert_eq!(report(&app, &admin, &query).await, (200, before));
}

#[tokio::test]
async fn only_admins_read_the_report_and_bad_queries_name_their_field() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let january = "from=2026-01-01&to=2026-01-31";
    let path = format!("/api/analytics/notifications?{january}");
    only_admins_read(&app, &admin, &path).await;

    // Nothing sent then: no rows, and rates with nothing to divide by are null.
    let (status, empty) = report(&app, &admin, january).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["rows"], json!([]), "{empty}");
    assert_eq!(
        empty["totals"],
        figures([0; 7], Value::Null, Value::Null),
        "{empty}"
    );

    for (query, field) in [
        ("to=2026-01-31", "from"),
        ("from=2026-02-01&to=2026-01-31", "from"),
        ("from=2026-01-01", "to"),
        ("from=2026-01-01&to=2026-01-31&groupBy=year", "groupBy"),
    ] {
        let (status, body) = report(&app, &admin, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}
