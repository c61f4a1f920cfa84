//! SMS through Twilio's Messages API, and the signatures Twilio puts on its
//! status callbacks.

use std::fmt;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha1::Sha1;

use super::{Outgoing, Receipt, SendError};
use crate::config::SmsSettings;

/// Who a message is sent as.
#[derive(Debug, Clone)]
enum Sender {
    /// A phone number (`From`).
    Number(String),
    /// A messaging service picking the number (`MessagingServiceSid`).
    Service(String),
}

/// Sends SMS through Twilio.
pub struct TwilioSender {
    http: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: SecretString,
    sender: Sender,
    public_url: String,
}

impl fmt::Debug for TwilioSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSender")
            .field("messages_url", &self.messages_url)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl TwilioSender {
    /// A sender for `settings.account_sid`; `public_url` (may be empty) is
    /// the server's public base URL status callbacks are requested at.
    pub fn new(
        settings: &SmsSettings,
        public_url: &str,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let account_sid = settings.account_sid.trim();
        let sender = match (settings.messaging_service_sid.trim(), settings.from.trim()) {
            ("", "") => {
                bail!("notifications.sms: set `from` or `messaging_service_sid` with `account_sid`")
            }
            ("", from) => Sender::Number(from.to_owned()),
            (service, _) => Sender::Service(service.to_owned()),
        };
        let messages_url = format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
            settings.base_url.trim().trim_end_matches('/')
        );
        // Checked now so that a send can only fail for reasons worth reporting.
        reqwest::Url::parse(&messages_url)
            .with_context(|| format!("notifications.sms.base_url: not a URL: {messages_url}"))?;
        Ok(Self {
            http,
            messages_url,
            account_sid: account_sid.to_owned(),
            auth_token: settings.auth_token.clone(),
            sender,
            public_url: public_url.trim().to_owned(),
        })
    }

    /// Creates one message.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let mut form: Vec<(&str, String)> = vec![("To", msg.to.clone())];
        form.push(match &self.sender {
            Sender::Number(from) => ("From", from.clone()),
            Sender::Service(sid) => ("MessagingServiceSid", sid.clone()),
        });
        form.push(("Body", msg.body.clone()));
        if !self.public_url.is_empty() {
            form.push((
                "StatusCallback",
                status_callback_url(&self.public_url, &msg.id),
            ));
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            // The notification id as an idempotency key. Twilio does not
            // document honouring it on the Messages API, so a retry after a
            // lost response may still send a second SMS.
            .header("I-Twilio-Idempotency-Token", &msg.id)
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("twilio: {e}")))?;
        let status = response.status();
        // A body that cannot be read still leaves the status to classify by.
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let sid = serde_json::from_str::<MessageResource>(&body)
                .map(|m| m.sid)
                .ok();
            if sid.is_none() {
                // Accepted all the same: failing here would send it again.
                tracing::warn!(id = %msg.id, %status, "twilio accepted a message without a readable sid");
            }
            return Ok(Receipt {
                provider_message_id: sid,
                delivered: false,
            });
        }
        Err(classify(status, &body))
    }
}

/// The part of Twilio's Message resource we keep.
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
}

/// Twilio's error body: `{"code": 21211, "message": "...", ...}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

/// 429 and 5xx pass later; other 4xx (invalid number, unverified sender,
/// bad credentials) fail the same way every time.
fn classify(status: StatusCode, body: &str) -> SendError {
    let error: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let detail = match (error.code, error.message) {
        (Some(code), Some(message)) => format!(": error {code}: {message}"),
        (Some(code), None) => format!(": error {code}"),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => String::new(),
    };
    let reason = format!("twilio {status}{detail}");
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        SendError::permanent(reason)
    } else {
        SendError::Transient(reason)
    }
}

/// The status-callback URL of notification `id` under `public_url` (the
/// server's public base URL, trailing `/` ignored). The callback handler
/// rebuilds the URL with this function to check Twilio's signature.
pub fn status_callback_url(public_url: &str, id: &str) -> String {
    format!(
        "{}/api/notifications/twilio/status?notificationId={}",
        public_url.trim_end_matches('/'),
        percent_encode(id)
    )
}

/// `value` with everything but RFC 3986 unreserved characters
/// percent-encoded (ids are already safe; this keeps any other value intact).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The MAC over Twilio's signed string: the URL, then each parameter's key
/// and value, sorted by key (then value, for repeated keys).
fn signature_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Twilio's `X-Twilio-Signature` of a request to `url` with form `params`:
/// base64(HMAC-SHA1(auth token, url + each key and value, sorted by key)).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(
        signature_mac(auth_token, url, params)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `signature` (an `X-Twilio-Signature` header) matches the request,
/// compared in constant time.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(signature) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    signature_mac(auth_token, url, params)
        .verify_slice(&signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{basic_auth, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    /// The worked example of Twilio's webhook-security page: auth token
    /// `12345`, this URL and these parameters sign to [`EXAMPLE_SIGNATURE`].
    fn example_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ])
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const EXAMPLE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXAMPLE_SIGNATURE: &str = "GvWf1cFY/Q7PnoempGyD5oXAezc=";

    #[test]
    fn signature_matches_twilios_documented_example() {
        let mut params = example_params();
        assert_eq!(
            twilio_signature("12345", EXAMPLE_URL, &params),
            EXAMPLE_SIGNATURE
        );
        // The order parameters arrive in does not matter.
        params.reverse();
        assert!(verify_twilio_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            EXAMPLE_SIGNATURE
        ));
        // The earlier edition of the same page used other phone numbers.
        let earlier = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            twilio_signature("12345", EXAMPLE_URL, &earlier),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn forged_signatures_are_rejected() {
        let params = example_params();
        // Right length, wrong bytes.
        assert!(!verify_twilio_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            "GvWf1cFY/Q7PnoempGyD5oXAezg="
        ));
        // Not base64 at all.
        assert!(!verify_twilio_signature(
            "12345",
            EXAMPLE_URL,
            &params,
            "forged!"
        ));
        // Right signature, other token.
        assert!(!verify_twilio_signature(
            "54321",
            EXAMPLE_URL,
            &params,
            EXAMPLE_SIGNATURE
        ));
        // Right signature, tampered parameter.
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!verify_twilio_signature(
            "12345",
            EXAMPLE_URL,
            &tampered,
            EXAMPLE_SIGNATURE
        ));
    }

    #[test]
    fn callback_url_ignores_a_trailing_slash() {
        assert_eq!(
            status_callback_url("https://clinic.example.org/", "ntf_1"),
            "https://clinic.example.org/api/notifications/twilio/status?notificationId=ntf_1"
        );
        assert_eq!(
            status_callback_url("https://clinic.example.org", "a b&c"),
            "https://clinic.example.org/api/notifications/twilio/status?notificationId=a%20b%26c"
        );
    }

    #[test]
    fn errors_are_classified_by_status() {
        let invalid_to = r#"{"code": 21211, "message": "The 'To' number 123 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let SendError::Permanent {
            reason,
            unregistered,
        } = classify(StatusCode::BAD_REQUEST, invalid_to)
        else {
            panic!("a 400 is permanent");
        };
        assert!(!unregistered);
        assert!(reason.contains("21211"), "{reason}");
        assert!(reason.contains("not a valid phone number"), "{reason}");

        let too_many = r#"{"code": 20429, "message": "Too Many Requests"}"#;
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, too_many),
            SendError::Transient(_)
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, "<html>"),
            SendError::Transient(_)
        ));
    }

    fn settings(base_url: &str) -> SmsSettings {
        SmsSettings {
            account_sid: "AC123".into(),
            auth_token: "secret-token".to_owned().into(),
            from: "+15550001111".into(),
            messaging_service_sid: String::new(),
            base_url: format!("{base_url}/"),
        }
    }

    fn form_fields(body: &[u8]) -> Vec<(String, String)> {
        let body = std::str::from_utf8(body).unwrap();
        reqwest::Url::parse(&format!("http://form.invalid/?{body}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn creates_a_message_through_the_api() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
            .and(basic_auth("AC123", "secret-token"))
            .and(header("I-Twilio-Idempotency-Token", "ntf_1"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": "SM0123456789abcdef0123456789abcdef",
                "status": "queued"
            })))
            .expect(1)
            .mount(&server)
            .await;

        let sender = TwilioSender::new(
            &settings(&server.uri()),
            "https://clinic.example.org/",
            reqwest::Client::new(),
        )
        .unwrap();
        let receipt = sender
            .send(&Outgoing {
                id: "ntf_1".into(),
                to: "+15557654321".into(),
                subject: None,
                body: "See you at 10:00 & bring your card".into(),
                calendar: None,
            })
            .await
            .unwrap();
        assert_eq!(
            receipt,
            Receipt {
                provider_message_id: Some("SM0123456789abcdef0123456789abcdef".into()),
                delivered: false,
            }
        );

        let requests = server.received_requests().await.unwrap();
        let fields = form_fields(&requests[0].body);
        let expected: Vec<(String, String)> = [
            ("To", "+15557654321"),
            ("From", "+15550001111"),
            ("Body", "See you at 10:00 & bring your card"),
            (
                "StatusCallback",
                "https://clinic.example.org/api/notifications/twilio/status?notificationId=ntf_1",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(fields, expected);
    }

    #[tokio::test]
    async fn an_invalid_number_is_permanent_and_a_messaging_service_replaces_from() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21211,
                "message": "The 'To' number 123 is not a valid phone number.",
                "status": 400
            })))
            .mount(&server)
            .await;
        let mut settings = settings(&server.uri());
        settings.messaging_service_sid = "MG123".into();
        let sender = TwilioSender::new(&settings, "", reqwest::Client::new()).unwrap();
        let err = sender
            .send(&Outgoing {
                id: "ntf_2".into(),
                to: "123".into(),
                subject: None,
                body: "hi".into(),
                calendar: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SendError::Permanent { reason, unregistered: false } if reason.contains("21211")),
            "{err:?}"
        );

        let requests = server.received_requests().await.unwrap();
        let fields = form_fields(&requests[0].body);
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["To", "MessagingServiceSid", "Body"]);
    }
}
