//! Who may call what: 401 without a token, 403 for the wrong role or owner.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_protected_route_answers_401_and_403() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let admin = app.admin_token().await;
    let doctor_body = json!({"username": "drx", "email": "x@example.org", "password": PASSWORD, "role": "doctor"});
    let bob_record = format!("/api/patients/{}", bob.patient_id);

    // (method, path, body, who is refused with 403, who is allowed)
    type Case<'a> = (
        Method,
        &'a str,
        Option<serde_json::Value>,
        Option<&'a str>,
        &'a str,
    );
    let routes: Vec<Case> = vec![
        (Method::GET, "/api/auth/me", None, None, &alice.tokens.token),
        (Method::GET, "/api/doctors", None, None, &alice.tokens.token),
        (
            Method::GET,
            &bob_record,
            None,
            Some(&alice.tokens.token),
            &bob.tokens.token,
        ),
        (
            Method::GET,
            "/api/gateway",
            None,
            Some(&alice.tokens.token),
            &admin,
        ),
        (
            Method::GET,
            "/metrics",
            None,
            Some(&alice.tokens.token),
            &admin,
        ),
        (
            Method::POST,
            "/api/auth/signup",
            Some(doctor_body),
            Some(&alice.tokens.token),
            &admin,
        ),
    ];
    for (method, path, body, forbidden, allowed) in routes {
        let send = |token: Option<&str>| {
            let mut req = app.http.request(method.clone(), app.url(path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let response = send(None).await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path} without a token");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (_, err) = read(response).await;
        assert_eq!(err["error"]["code"], "unauthorized", "{method} {path}");
        let (status, _) = read(send(Some("garbage")).await.unwrap()).await;
        assert_eq!(status, 401, "{method} {path} with a garbage token");
        if let Some(token) = forbidden {
            let (status, err) = read(send(Some(token)).await.unwrap()).await;
            assert_eq!(status, 403, "{method} {path} as the wrong user: {err}");
            assert_eq!(err["error"]["code"], "forbidden");
        }
        let status = send(Some(allowed)).await.unwrap().status().as_u16();
        assert!(
            status == 200 || status == 201,
            "{method} {path} as allowed caller: {status}"
        );
    }
}

#[tokio::test]
async fn patients_cannot_probe_other_patient_ids() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    // Unknown and malformed ids look the same to a patient as someone else's.
    let (status, _) = app
        .get("/api/patients/pat_doesnotexist", Some(&alice.tokens.token))
        .await;
    assert_eq!(status, 403);
    let admin = app.admin_token().await;
    let (status, body) = app
        .get("/api/patients/pat_doesnotexist", Some(&admin))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app.get("/api/patients/a.b", Some(&admin)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("patientId"))
    );
}

#[tokio::test]
async fn requests_over_the_ip_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.rate_limit.per_ip_per_sec = 1;
        s.rate_limit.per_ip_burst = 3;
    })
    .await;
    let mut limited = None;
    for _ in 0..10 {
        let response = app.http.get(app.url("/api/doctors")).send().await.unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("rate limit never applied");
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = read(response).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    // Health checks are never limited.
    assert_eq!(app.get("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn requests_over_the_user_limit_get_429() {
    let app = spawn_app_with(|s| {
        s.rate_limit.per_user_per_sec = 1;
        s.rate_limit.per_user_burst = 2;
    })
    .await;
    let p = app.signup_patient("gina").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get("/api/auth/me", Some(&p.tokens.token)).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}
