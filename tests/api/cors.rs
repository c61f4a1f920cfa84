//! CORS: none by default; with `server.cors_origins`, preflights and
//! answers for those exact origins only, without credentials.

use reqwest::Method;

use crate::helpers::*;

const APP: &str = "https://app.example.org";

/// The `access-control-*` headers of an answer, by name.
fn cors_headers(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect()
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url("/api/appointments"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_configured_origins_no_cors_header_is_sent() {
    let app = spawn_app().await;
    let answer = preflight(&app, APP).await;
    assert!(cors_headers(&answer).is_empty(), "{:?}", answer.headers());
    let answer = app
        .http
        .get(app.url("/healthz"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert!(cors_headers(&answer).is_empty(), "{:?}", answer.headers());
    assert!(answer.headers().get("vary").is_none());
}

#[tokio::test]
async fn configured_origins_get_preflights_and_answers_and_others_nothing() {
    let app = spawn_app_with(|s| {
        s.server.cors_origins = format!("{APP}, http://localhost:5173");
    })
    .await;
    let answer = preflight(&app, APP).await;
    assert_eq!(answer.status(), 200);
    let headers = answer.headers();
    assert_eq!(headers["access-control-allow-origin"], APP);
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(headers["access-control-max-age"], "600");
    assert!(headers.get("access-control-allow-credentials").is_none());

    // A real call from the app's page: its answer names the origin, errors too.
    let admin = app.admin_token().await;
    let answer = app
        .http
        .get(app.url("/api/auth/me"))
        .bearer_auth(&admin)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], APP);
    assert!(
        answer.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
    let answer = app
        .http
        .get(app.url("/api/auth/me"))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    // Any other origin: no permission in the answer (the browser blocks it).
    for other in [
        "https://evil.example",
        "https://app.example.org.evil.example",
    ] {
        let answer = preflight(&app, other).await;
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{other}: {:?}",
            answer.headers()
        );
    }
}
