//! Direct sends by staff, their validation, and signed Twilio status callbacks.

use serde_json::json;

use super::{ACCOUNT, AUTH_TOKEN, PUBLIC_URL, Providers, field, reported_sent};
use crate::helpers::*;

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
    assert!(reported_sent(&app, &admin, &id).await);
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
    let signature = medrelay::delivery::providers::twilio_signature(AUTH_TOKEN, &url, &params);
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
