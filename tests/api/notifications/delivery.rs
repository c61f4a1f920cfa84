//! Provider failures and back-pressure: SMS fallback, forgotten push devices, a full queue.

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, ResponseTemplate};

use super::{
    FCM_SEND, Providers, WAIT, advance_to, book, clinic, field, figures, in_days, notifications,
    patient, register_device, start_of, subscribe_patient,
};
use crate::helpers::*;

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
    // Frank's e-mail failed for good (not expired), after two failed
    // attempts (the third, with max_attempts = 3, gave up).
    let f = figures(&app, &admin).await;
    assert_eq!(
        (&f["email"]["failed"], &f["email"]["expired"]),
        (&json!(1), &json!(0)),
        "{f}"
    );
    assert_eq!(f["email"]["failedAttempts"], 2, "{f}");
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
        register_device(&app, &ines, token, "ios").await;
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
    // The push to the forgotten device failed for good (not expired).
    let f = figures(&app, &admin).await;
    assert_eq!(
        (&f["push"]["failed"], &f["push"]["expired"]),
        (&json!(1), &json!(0)),
        "{f}"
    );
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
async fn a_full_channel_queue_leaves_messages_in_the_store_until_there_is_room() {
    // One message in the e-mail actor's mailbox and one send at a time.
    let app = spawn_app_with(|s| {
        s.notifications.delivery.queue_capacity = 1;
        s.notifications.delivery.concurrency = 1;
    })
    .await;
    let admin = app.admin_token().await;
    // Sent all at once, so that they arrive faster than one send drains.
    let sends = (0..25).map(|i| {
        app.post(
            "/api/notifications/email",
            json!({"to": format!("p{i}@example.org"), "subject": "s", "body": "b"}),
            Some(&admin),
        )
    });
    let mut ids = Vec::new();
    for (status, body) in futures_util::future::join_all(sends).await {
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
