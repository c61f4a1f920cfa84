//! FCM requests, OAuth tokens and error classification, against a mock.

use base64::Engine;
use jsonwebtoken::{DecodingKey, Validation};
use wiremock::matchers::{bearer_token, body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use super::*;

/// A throwaway key (`openssl genrsa 2048`) for these tests only.
const TEST_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDLWVoFkhVAyaMQ
sx/Az1+0/hn84+x6kGZrTuJyIcegwsup02CeHoZdgEiBVsFJvi3KVLHp+R0j8Sml
6JnjRB3/rft9G0avhtCqHDE/cInnEp9E7WlpZuFpwgVdQWkuAGZfTX+VGhIRLPk4
bDccY7xZ/Bc8VnBOGfF3w53hK3mPKtipl+w7LQmRJf7eQAHZWbhKcvZ/MSzGJ5Fb
0bknXkBr52sLf2VZZ1D1GaCuVUPszX/GYAJjiPuiS7VX4dRLkGqqN+w6trbO7/kJ
P2UF1zxc/qAmxT7oFSzY3MetSqAwnNAKEJoMDGT0TZcB9+mcfaKq3bu1ZksbjqTv
uCiEzcrFAgMBAAECggEAGo1kxVRxZP/PRJd3HniVkS8a2pwyXUCstvdadze09udo
q5i3xX3L4rqk/QqEe6oTFZfgkWIfbXmIjCrmqTfUSPYBYDEnFjVe2s+KmLOLtjoG
xPvRJ1uxNFuK0sX/Q2v28hvO/Humf0qlkjoDKjhVuFRD/nN0/6XAk3heDbBdE5Xz
kLOwG8ukgL/US2/8Z1vdx0dYUen33IL+5hqoyVs5emsSJcbTpUQPIPwa22O8cTkH
1uwmPOPneG93AoBUPRa/jp8hwI2Pqw5+fONIUU8dzS3j/WPZS0UDHxV80W0hQfHH
Bs+rWGxWbeA7P4XQt3eRiBYdh+Z9ydyCXTCCf4WPIwKBgQDqIO3xEVbZioOS5yvj
G8uTErWqIbxCMjtbxOjeLWpJG22fIdGwKC+bUx25KxQtdk7Vb1Nv0Mp1zs5VfBJd
Vuvk2zPdC0Ol951pXavB0AuXbvtHSv5Gbc9OgXwqwnlOrSceVyA0ejLlyZ5PLzHi
XCzIYmIamYSaJY+domIW1TzaGwKBgQDeWFfejMn1UgamzO89QjiwMyTNXfESSnwm
PW5mhAbRUVOuuFWFFfGXW2/Q2iAcdk0YCm+40ZeMHPauuzUjuAUOD8qvgsEQMcQ5
FX+l4oNpFyA5qdan2jeOrI7R7gFTsfJxFE6zMnWRtTPcgnbONZUqDC8tZWmmijPa
J2wgQOw8nwKBgEsTShlOHRJe1zgJBsqphAriKfynGq4DW4NezelImNdegzVO6+VX
zYQ6D8LrrGmzkS3hp9ioE/PY39MLmPvzPmtBWw0bapLSptg9oDDi3ISvosXGp2jA
F4SuArnXaHyxC2UwPPR25tFGaIwtrwpN0lJjMeAjsCCZwMakZl25/OxXAoGBAITB
RqWwdh0tfp81GVsAIQzDXKPqBTgglQPYBgTbq55q6oYVtaoisf7nL1oKAsY7tEg4
YwB80/lqibdGO7I5+3qr3x7v+QoMTNawiWioWEH09t63E11hI27ihNu/ObeZNeJi
d6Ly69O112M/2mPBBnD2mWyHco9nURJeG2cenG6NAoGAFHztIhXJ3otok71c2Oy5
ybUQh8SJL/hO/E0ONnE3sEi2nHsQJiWCmhyZtpokHLtUAxOfzeZwYU4Kj7jc0Onx
vHkmzozbFnPtPVARjmxEPY2c16Ja/1RxVA0d7v1g79Y7Tme5wQAXzRbBhAW9SU0/
XnyMYD0NmVyUiDljw+a0N8s=
-----END PRIVATE KEY-----
";

/// Its public half (`openssl rsa -RSAPublicKey_out`), to check signatures.
const TEST_PUBLIC_KEY: &str = "
MIIBCgKCAQEAy1laBZIVQMmjELMfwM9ftP4Z/OPsepBma07iciHHoMLLqdNgnh6G
XYBIgVbBSb4tylSx6fkdI/EppeiZ40Qd/637fRtGr4bQqhwxP3CJ5xKfRO1paWbh
acIFXUFpLgBmX01/lRoSESz5OGw3HGO8WfwXPFZwThnxd8Od4St5jyrYqZfsOy0J
kSX+3kAB2Vm4SnL2fzEsxieRW9G5J15Aa+drC39lWWdQ9RmgrlVD7M1/xmACY4j7
oku1V+HUS5BqqjfsOra2zu/5CT9lBdc8XP6gJsU+6BUs2NzHrUqgMJzQChCaDAxk
9E2XAffpnH2iqt27tWZLG46k77gohM3KxQIDAQAB";

const CLIENT_EMAIL: &str = "medrelay@demo-project.iam.gserviceaccount.com";

fn key_file(dir: &std::path::Path, token_uri: &str) -> std::path::PathBuf {
    let file = dir.join("service-account.json");
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "key-1",
        "private_key": TEST_PRIVATE_KEY,
        "client_email": CLIENT_EMAIL,
        "token_uri": token_uri,
    });
    std::fs::write(&file, json.to_string()).unwrap();
    file
}

fn settings(file: &std::path::Path, base_url: &str, token_uri: &str) -> PushSettings {
    PushSettings {
        project_id: "demo-project".into(),
        service_account_file: file.display().to_string(),
        base_url: base_url.into(),
        token_uri: token_uri.into(),
    }
}

fn outgoing(id: &str, to: &str) -> Outgoing {
    Outgoing {
        id: id.into(),
        to: to.into(),
        subject: Some("Appointment reminder".into()),
        body: "See you tomorrow at 10:00.".into(),
        calendar: None,
    }
}

/// A request to the mock's token endpoint.
fn token_request() -> MockBuilder {
    Mock::given(method("POST")).and(path("/token"))
}

/// A message sent for `demo-project`.
fn send_request() -> MockBuilder {
    Mock::given(method("POST")).and(path("/v1/projects/demo-project/messages:send"))
}

/// A message sent with the mock's token whose body holds `partial`.
fn send_with_token(partial: serde_json::Value) -> MockBuilder {
    send_request()
        .and(bearer_token("ya29.test-token"))
        .and(body_partial_json(partial))
}

/// The token endpoint at `/token`, answering every request with `status`
/// and `body`.
fn token_endpoint(status: u16, body: serde_json::Value) -> Mock {
    token_request().respond_with(ResponseTemplate::new(status).set_body_json(body))
}

/// A sender whose key file (in `dir`) names `server`'s `/token`, sending to
/// `server`.
fn sender_for(server: &MockServer, dir: &std::path::Path) -> FcmSender {
    let file = key_file(dir, &format!("{}/token", server.uri()));
    FcmSender::new(&settings(&file, &server.uri(), ""), reqwest::Client::new()).unwrap()
}

#[test]
fn classifies_fcm_errors() {
    let unregistered = r#"{"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}"#;
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, unregistered),
        SendError::Permanent { unregistered: true, reason } if reason.contains("UNREGISTERED")
    ));
    // A bare 404 (a wrong base URL or project) says nothing of the device.
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, ""),
        SendError::Permanent {
            unregistered: false,
            ..
        }
    ));

    let unregistered_400 = r#"{"error": {"code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}"#;
    assert!(matches!(
        classify(StatusCode::BAD_REQUEST, unregistered_400),
        SendError::Permanent {
            unregistered: true,
            ..
        }
    ));
    let not_found_400 = r#"{"error": {"code": 400, "message": "gone", "status": "NOT_FOUND"}}"#;
    assert!(matches!(
        classify(StatusCode::BAD_REQUEST, not_found_400),
        SendError::Permanent {
            unregistered: false,
            ..
        }
    ));

    let invalid = r#"{"error": {"code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}}"#;
    assert!(matches!(
        classify(StatusCode::BAD_REQUEST, invalid),
        SendError::Permanent { unregistered: false, reason } if reason.contains("not a valid FCM registration token")
    ));
    let mismatch = r#"{"error": {"code": 403, "message": "SenderId mismatch", "status": "PERMISSION_DENIED", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH"}]}}"#;
    assert!(matches!(
        classify(StatusCode::FORBIDDEN, mismatch),
        SendError::Permanent {
            unregistered: false,
            ..
        }
    ));

    let quota = r#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]}}"#;
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, quota),
        SendError::Transient(_)
    ));
    assert!(matches!(
        classify(StatusCode::SERVICE_UNAVAILABLE, "<html>unavailable</html>"),
        SendError::Transient(_)
    ));
    let unauthenticated = r#"{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}"#;
    assert!(matches!(
        classify(StatusCode::UNAUTHORIZED, unauthenticated),
        SendError::Transient(_)
    ));
}

#[test]
fn a_bad_key_file_fails_at_construction() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.json");
    std::fs::write(
        &file,
        serde_json::json!({"client_email": CLIENT_EMAIL, "private_key": "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----"}).to_string(),
    )
    .unwrap();
    let settings = settings(&file, "https://fcm.googleapis.com", "");
    assert!(FcmSender::new(&settings, reqwest::Client::new()).is_err());

    let missing = PushSettings {
        service_account_file: dir.path().join("missing.json").display().to_string(),
        ..settings
    };
    assert!(FcmSender::new(&missing, reqwest::Client::new()).is_err());
}

#[tokio::test]
async fn exchanges_a_token_then_sends_with_it() {
    let server = MockServer::start().await;
    let token_uri = format!("{}/token", server.uri());
    token_request()
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ya29.test-token",
            "expires_in": 3599,
            "token_type": "Bearer"
        })))
        // Both sends below share one token.
        .expect(1)
        .mount(&server)
        .await;
    send_with_token(serde_json::json!({"message": {"token": "gone-device"}}))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "error": {
                "code": 404,
                "message": "Requested entity was not found.",
                "status": "NOT_FOUND",
                "details": [{
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED"
                }]
            }
        })))
        .mount(&server)
        .await;
    send_with_token(serde_json::json!({
        "message": {
            "token": "device-1",
            "notification": {
                "title": "Appointment reminder",
                "body": "See you tomorrow at 10:00."
            },
            "data": {"notificationId": "ntf_1"}
        }
    }))
    .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "name": "projects/demo-project/messages/0:1234"
    })))
    .expect(1)
    .mount(&server)
    .await;

    let dir = tempfile::tempdir().unwrap();
    // The key file names Google's endpoint; the setting overrides it.
    let file = key_file(dir.path(), DEFAULT_TOKEN_URI);
    let sender = FcmSender::new(
        &settings(&file, &format!("{}/", server.uri()), &token_uri),
        reqwest::Client::new(),
    )
    .unwrap();

    let receipt = sender.send(&outgoing("ntf_1", "device-1")).await.unwrap();
    assert_eq!(
        receipt,
        Receipt {
            provider_message_id: Some("projects/demo-project/messages/0:1234".into()),
            delivered: false,
        }
    );
    let err = sender
        .send(&outgoing("ntf_2", "gone-device"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Permanent {
                unregistered: true,
                ..
            }
        ),
        "{err:?}"
    );

    // The assertion is signed by the key and carries the expected claims.
    let requests = server.received_requests().await.unwrap();
    let form = std::str::from_utf8(&requests[0].body).unwrap();
    let assertion = reqwest::Url::parse(&format!("http://form.invalid/?{form}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "assertion")
        .unwrap()
        .1
        .into_owned();
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("key-1"));
    let public_der = base64::engine::general_purpose::STANDARD
        .decode(TEST_PUBLIC_KEY.split_whitespace().collect::<String>())
        .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&token_uri]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &DecodingKey::from_rsa_der(&public_der),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        ASSERTION_TTL_SECS
    );
}

#[tokio::test]
async fn a_rejected_token_is_dropped_and_transient() {
    let server = MockServer::start().await;
    token_endpoint(
        200,
        serde_json::json!({"access_token": "ya29.revoked", "expires_in": 3599}),
    )
    // The 401 makes the second send fetch a new token.
    .expect(2)
    .mount(&server)
    .await;
    send_request()
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}
        })))
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let sender = sender_for(&server, dir.path());
    for id in ["ntf_1", "ntf_2"] {
        let err = sender.send(&outgoing(id, "device-1")).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_failing_token_endpoint_is_transient() {
    let server = MockServer::start().await;
    token_endpoint(
        400,
        serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    )
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sender = sender_for(&server, dir.path());
    let err = sender
        .send(&outgoing("ntf_1", "device-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Transient(reason) if reason.contains("invalid_grant")),
        "{err:?}"
    );
}
