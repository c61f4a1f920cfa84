//! Malformed input on every route gets a JSON 4xx, never a 500 or a panic.

use serde_json::json;

use crate::helpers::*;

const JSON_ROUTES: [&str; 4] = [
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
];

#[tokio::test]
async fn malformed_bodies_get_clear_4xx_on_every_json_route() {
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 4096).await;
    for path in JSON_ROUTES {
        let raw = |body: Vec<u8>, content_type: &str| {
            app.http
                .post(app.url(path))
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
            (b"{".to_vec(), "application/json", 400, "bad_request"),
            (b"[1,2]".to_vec(), "application/json", 400, "bad_request"),
            (b"{\"username\": 5}".to_vec(), "application/json", 400, "bad_request"),
            (b"".to_vec(), "application/json", 400, "bad_request"),
            (b"{} trailing".to_vec(), "application/json", 400, "bad_request"),
            (vec![0xff, 0xfe], "application/json", 400, "bad_request"),
            (b"username=x".to_vec(), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
            (br#"{"x":""#.iter().copied().chain(std::iter::repeat_n(b'a', 10_000)).chain(*br#""}"#).collect(),
             "application/json", 413, "payload_too_large"),
        ];
        for (body, content_type, status, code) in cases {
            let (got, reply) = read(raw(body.clone(), content_type).await.unwrap()).await;
            assert_eq!(
                got,
                status,
                "{path} {:?}: {reply}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert_eq!(reply["error"]["code"], code, "{path}");
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/auth/login",
            json!({"username": ["root"], "password": "x"}),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "username");
    let (status, body) = app
        .post("/api/auth/refresh", json!({"refresh": "x"}), None)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refresh"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/nothing-here", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let response = app
        .http
        .delete(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = app.get("/ws", None).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    let response = app.http.get(app.url("/api/nothing")).send().await.unwrap();
    assert!(
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn the_callers_rights_and_the_id_are_checked_before_the_query_string() {
    let app = spawn_app().await;
    let patient = app.signup_patient("order").await;
    let token = patient.tokens.token.as_str();
    let status = |path: &'static str, method: reqwest::Method| {
        let request = app.http.request(method, app.url(path)).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Not an admin: 403 whatever the query says.
    assert_eq!(
        status("/api/providers/p1?surprise=1", reqwest::Method::DELETE).await,
        403
    );
    // An admins' report: 403 before its malformed `from` (a 422 for an
    // admin) is read.
    assert_eq!(
        status(
            "/api/analytics/notifications?from=not-a-date&surprise=1",
            reqwest::Method::GET
        )
        .await,
        403
    );
    // A malformed id: 422 naming it, before the query is read.
    assert_eq!(
        status("/api/providers/%20/slots?surprise=1", reqwest::Method::GET).await,
        422
    );
}
