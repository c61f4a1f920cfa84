//! A patient registered at the desk claims a login with a one-time code
//! sent by e-mail (to a real SMTP server).

use std::time::Duration;

use medrelay::config::SmtpTls;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

async fn clinic_with_mail() -> (TestApp, SmtpSink, String) {
    let smtp = SmtpSink::start().await;
    let port = smtp.addr().port();
    let app = spawn_app_with(|s| {
        let n = &mut s.notifications;
        n.public_url = "https://portal.example.org".into();
        n.email.host = "127.0.0.1".into();
        n.email.port = port;
        n.email.tls = SmtpTls::None;
        n.email.from = "Clinic <clinic@example.org>".into();
    })
    .await;
    let admin = app.admin_token().await;
    (app, smtp, admin)
}

fn signup(username: &str, token: &str) -> Value {
    json!({"username": username, "email": format!("{username}@example.org"),
           "password": PASSWORD, "inviteToken": token})
}

#[tokio::test]
async fn an_invited_patient_claims_their_record_once() {
    let (app, smtp, admin) = clinic_with_mail().await;
    let (status, body) = app
        .post(
            "/api/patients",
            json!({"name": "Desk Registered", "dob": "1980-02-02",
                   "contactInfo": {"email": "desk.patient@example.org"}}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["patientId"].as_str().unwrap().to_owned();
    let (status, sent) = app
        .post(
            &format!("/api/patients/{id}/invite"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["channel"], "email");

    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let text = mails[0].text();
    assert!(
        !text.contains("Desk Registered"),
        "the message names no one: {text}"
    );
    let token = text
        .split("?invite=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned();

    // Profile fields do not go with an invitation; a made-up code fails.
    let mut with_name = signup("claimer", &token);
    with_name["name"] = json!("Someone Else");
    let (status, body) = app.post("/api/auth/signup", with_name, None).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("name"))
    );
    let (status, body) = app
        .post("/api/auth/signup", signup("claimer", "made-up"), None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("inviteToken"))
    );

    let (status, body) = app
        .post("/api/auth/signup", signup("claimer", &token), None)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["patientId"],
        id.as_str(),
        "linked to the desk record, not a new one"
    );
    let me = app.login("claimer", PASSWORD).await;
    let (status, own) = app
        .get(&format!("/api/patients/{id}"), Some(&me.token))
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["name"], "Desk Registered");
    assert_eq!(own["dob"], "1980-02-02");

    // Once only; and the record has a login now.
    let (status, body) = app
        .post("/api/auth/signup", signup("second", &token), None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("inviteToken"))
    );
    let (status, _) = app
        .post(
            &format!("/api/patients/{id}/invite"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 409);
    // The claim is in the patient's audit trail.
    let (_, audit) = app
        .get(&format!("/api/audit?patientId={id}"), Some(&admin))
        .await;
    let claimed =
        audit["entries"].as_array().unwrap().iter().any(|e| {
            e["action"] == "U" && e["entity"]["detail"] == "login claimed with an invitation"
        });
    assert!(claimed, "{audit}");
    let (_, list) = app
        .get("/api/patients?name=Desk%20Registered", Some(&admin))
        .await;
    assert_eq!(
        list["patients"].as_array().unwrap().len(),
        1,
        "one record, not two"
    );
}

#[tokio::test]
async fn only_staff_in_care_invite_and_only_by_email_or_sms() {
    let (app, _smtp, admin) = clinic_with_mail().await;
    let (_, body) = app
        .post("/api/patients", json!({"name": "No Contact"}), Some(&admin))
        .await;
    let id = body["patientId"].as_str().unwrap().to_owned();
    let path = format!("/api/patients/{id}/invite");
    let alice = app.signup_patient("alice").await;
    let dr = doctor_account(&app, &admin, "drfar", "prv_far").await;
    let (status, _) = app.post(&path, json!({}), Some(&alice.tokens.token)).await;
    assert_eq!(status, 403);
    let (status, _) = app.post(&path, json!({}), Some(&dr)).await;
    assert_eq!(status, 403);
    let (status, body) = app.post(&path, json!({}), Some(&admin)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("channel")),
        "{body}"
    );
    let (status, body) = app
        .post(&path, json!({"channel": "push"}), Some(&admin))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("channel")),
        "{body}"
    );
    let (status, _) = app
        .post("/api/patients/pat_nobody/invite", json!({}), Some(&admin))
        .await;
    assert_eq!(status, 404);
}
