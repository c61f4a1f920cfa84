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

/// Every route of patient data: 401 without a token, 403 for each role or
/// owner that may not, the allowed caller let through.
#[tokio::test]
async fn every_patient_data_route_checks_who_asks() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dr = doctor_account(&app, &admin, "drin", "prv_in").await;
    let far = doctor_account(&app, &admin, "drout", "prv_out").await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let date = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    let (status, _) = app
        .post(
            "/api/appointments",
            json!({"patientId": alice.patient_id, "providerId": "prv_in",
                   "appointmentDate": date.to_string(), "timeSlot": "12:00"}),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 201);
    let (_, rec) = app
        .post(
            "/api/records",
            json!({"patientId": alice.patient_id, "date": "2026-11-01", "diagnosis": "Cough"}),
            Some(&dr),
        )
        .await;
    let record = format!("/api/records/{}", rec["recordId"].as_str().unwrap());
    let patient = format!("/api/patients/{}", alice.patient_id);
    let (a, b, d, f) = (
        alice.tokens.token.as_str(),
        bob.tokens.token.as_str(),
        dr.as_str(),
        far.as_str(),
    );
    let new_record =
        json!({"patientId": alice.patient_id, "date": "2026-11-02", "diagnosis": "Cold"});
    let (_, desk) = app
        .post(
            "/api/patients",
            json!({"name": "Desk Only", "contactInfo": {"email": "desk@example.org"}}),
            Some(&admin),
        )
        .await;
    let invite = format!(
        "/api/patients/{}/invite",
        desk["patientId"].as_str().unwrap()
    );
    // (method, path, body, refused callers, allowed caller)
    type Case<'a> = (
        Method,
        String,
        Option<serde_json::Value>,
        Vec<&'a str>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/patients".into(),
            Some(json!({"name": "N"})),
            vec![a],
            d,
        ),
        (Method::GET, patient.clone(), None, vec![b, f], a),
        (
            Method::PUT,
            patient.clone(),
            Some(json!({"address": {"city": "X"}})),
            vec![b, f],
            a,
        ),
        (
            Method::GET,
            format!("{patient}/history"),
            None,
            vec![b, f],
            d,
        ),
        (
            Method::GET,
            format!("{patient}/access-log"),
            None,
            vec![b, d],
            a,
        ),
        (Method::POST, invite, Some(json!({})), vec![a, f], &admin),
        (
            Method::POST,
            "/api/records".into(),
            Some(new_record),
            vec![a, f, &admin],
            d,
        ),
        (Method::GET, record.clone(), None, vec![b, f], a),
        (
            Method::GET,
            format!("{record}/history"),
            None,
            vec![b, f],
            a,
        ),
        (
            Method::GET,
            format!("/api/records?patientId={}", alice.patient_id),
            None,
            vec![b, f],
            d,
        ),
        (
            Method::PUT,
            record.clone(),
            Some(json!({"treatment": "Tea"})),
            vec![a, f],
            d,
        ),
        (Method::GET, "/api/audit".into(), None, vec![a, d], &admin),
    ];
    for (method, path, body, refused, allowed) in cases {
        let send = |token: Option<&str>| {
            let mut req = app.http.request(method.clone(), app.url(&path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let (status, _) = read(send(None).await.unwrap()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        for token in refused {
            let (status, err) = read(send(Some(token)).await.unwrap()).await;
            assert_eq!(status, 403, "{method} {path}: {err}");
        }
        let (status, body) = read(send(Some(allowed)).await.unwrap()).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} as allowed: {status} {body}"
        );
    }
    // Deleting and restoring are for admins alone; their refusals come first.
    for token in [a, d] {
        let response = app
            .http
            .delete(app.url(&patient))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let (status, _) = app
            .post(&format!("{patient}/restore"), json!({}), Some(token))
            .await;
        assert_eq!(status, 403);
    }
    let response = app
        .http
        .delete(app.url(&record))
        .bearer_auth(f)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "not the record's author");
}
