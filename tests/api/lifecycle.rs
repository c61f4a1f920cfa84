//! Restarts, supervision, operations endpoints and graceful shutdown.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn users_and_revocations_survive_a_restart() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    let kept = app.login("alice", PASSWORD).await;
    let (status, _) = app
        .post(
            "/api/auth/logout",
            json!({"token": alice.tokens.token}),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let app = app.restart(|_| {}).await;
    // The user still logs in; a token issued before the restart is still valid
    // (the signing secret is kept in the data folder) ...
    app.login("alice", PASSWORD).await;
    assert_eq!(app.get("/api/auth/me", Some(&kept.token)).await.0, 200);
    let (status, _) = app.refresh(json!(kept.refresh)).await;
    assert_eq!(status, 200);
    // ... and the revocations still hold.
    assert_eq!(
        app.get("/api/auth/me", Some(&alice.tokens.token)).await.0,
        401
    );
    let (status, _) = app.refresh(json!(alice.tokens.refresh)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_panic_in_one_actor_fails_that_request_and_nothing_else() {
    let app = spawn_app().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let admin = app.admin_token().await;

    let (status, body) = app
        .post(
            &format!("/api/test-faults/account-panic/{}", alice.user_id),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        body["error"]["requestId"]
            .as_str()
            .is_some_and(|id| id.starts_with("req_"))
    );

    // Alice's actor was restarted from the store and serves her again ...
    let (status, rotated) = app.refresh(json!(alice.tokens.refresh)).await;
    assert_eq!(status, 200, "{rotated}");
    // ... the used-token state it had written before the panic still holds ...
    let (status, body) = app.refresh(json!(alice.tokens.refresh)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_reused"))
    );
    // ... and everyone else was never affected.
    let (status, _) = app.refresh(json!(bob.tokens.refresh)).await;
    assert_eq!(status, 200);
    let metrics = app.metrics().await;
    let restarts = metrics
        .lines()
        .find(|l| l.starts_with("actor_restarts_total{actor=\"account\"}"))
        .unwrap_or_else(|| panic!("no restart counter in:\n{metrics}"));
    let count: f64 = restarts.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0);
}

#[tokio::test]
async fn health_readiness_gateway_metrics_and_descriptions() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["actors"], "ok");

    let admin = app.admin_token().await;
    app.get("/api/nothing", None).await;
    let (status, body) = app.get("/api/gateway", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "Running");
    assert!(body["metrics"]["requests"].as_u64().unwrap() >= 3);
    assert!(body["metrics"]["errors"].as_u64().unwrap() >= 1);

    let metrics = app.metrics().await;
    for name in [
        "http_requests_total{",
        "http_request_seconds_bucket{",
        "store_commit_batch_size_bucket",
        "store_commit_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // A static scrape token works when configured.
    let app = app
        .restart(|s| s.server.metrics_token = "scrape-secret".to_owned().into())
        .await;
    let response = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("scrape-secreT")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (status, openapi) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/auth/signup",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/doctors",
        "/api/patients/{patientId}",
        "/api/gateway",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (status, schema) = app.get("/api/protocol.schema.json", None).await;
    assert_eq!(status, 200);
    assert!(schema.to_string().contains("subscribe"));
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let mut app = spawn_app().await;
    let token = app.admin_token().await;
    let mut ws = app.ws(Some(&token)).await;
    assert_eq!(ws.call(json!({"type": "ping"})).await["ok"], true);
    let stopping = tokio::spawn(async move {
        app.stop().await;
        app
    });
    assert_eq!(ws.closed().await, close_code(1001));
    let app = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.http.get(app.url("/healthz")).send().await.is_err(),
        "still accepting after shutdown"
    );
}
