//! Push notifications through Firebase Cloud Messaging (HTTP v1), with a
//! service-account key exchanged for OAuth access tokens.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Outgoing, Receipt, SendError};
use crate::config::PushSettings;

/// The OAuth scope of sending through FCM.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Google's token endpoint, for key files that name none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Lifetime asked of the signed assertion (Google's maximum).
const ASSERTION_TTL_SECS: i64 = 3600;

/// How long before its expiry an access token is replaced, so that a token
/// does not run out between being read from the cache and reaching FCM.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The fields of a service-account key file we use.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: SecretString,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A cached access token.
struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
}

/// Sends push notifications through FCM.
pub struct FcmSender {
    http: reqwest::Client,
    send_url: String,
    token_uri: String,
    client_email: String,
    key: EncodingKey,
    key_id: Option<String>,
    token: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for FcmSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcmSender")
            .field("send_url", &self.send_url)
            .field("token_uri", &self.token_uri)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// The claims of the JWT exchanged for an access token.
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// The token endpoint's error: `{"error": "invalid_grant", "error_description": "..."}`.
#[derive(Deserialize, Default)]
struct TokenError {
    error: Option<String>,
    error_description: Option<String>,
}

/// The body of `messages:send`.
#[derive(Serialize)]
struct SendRequest<'a> {
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    token: &'a str,
    notification: Notification<'a>,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Notification<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    body: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    notification_id: &'a str,
}

/// The answer of `messages:send`: `{"name": "projects/p/messages/0:..."}`.
#[derive(Deserialize)]
struct SendResponse {
    name: String,
}

/// Google's error body: `{"error": {"status", "message", "details": [{"errorCode"}]}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    error: Option<ErrorInfo>,
}

#[derive(Deserialize)]
struct ErrorInfo {
    status: Option<String>,
    message: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

impl FcmSender {
    /// A sender for `settings.project_id`, with the key in
    /// `settings.service_account_file` (read and checked now).
    pub fn new(settings: &PushSettings, http: reqwest::Client) -> anyhow::Result<Self> {
        let file = settings.service_account_file.trim();
        if file.is_empty() {
            bail!("notifications.push.service_account_file: required with project_id");
        }
        let json = std::fs::read_to_string(file).with_context(|| {
            format!("notifications.push.service_account_file: cannot read {file}")
        })?;
        Self::from_key_json(settings, &json, http)
            .with_context(|| format!("notifications.push.service_account_file: {file}"))
    }

    fn from_key_json(
        settings: &PushSettings,
        json: &str,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let account: ServiceAccount =
            serde_json::from_str(json).context("not a service-account key")?;
        let token_uri = match settings.token_uri.trim() {
            "" => account
                .token_uri
                .as_deref()
                .map(str::trim)
                .filter(|uri| !uri.is_empty())
                .unwrap_or(DEFAULT_TOKEN_URI),
            uri => uri,
        }
        .to_owned();
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            settings.base_url.trim().trim_end_matches('/'),
            settings.project_id.trim()
        );
        // Checked now so that a send can only fail for reasons worth reporting.
        for url in [&send_url, &token_uri] {
            reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        }
        // PKCS#8 (`BEGIN PRIVATE KEY`, as in Google's key files) or PKCS#1.
        let key = EncodingKey::from_rsa_pem(account.private_key.expose_secret().as_bytes())
            .context("private_key is not an RSA key in PEM")?;
        let sender = Self {
            http,
            send_url,
            token_uri,
            client_email: account.client_email,
            key,
            key_id: account.private_key_id.filter(|id| !id.is_empty()),
            token: Mutex::new(None),
        };
        // The key is only parsed when signing: sign once to reject a bad key
        // at start-up rather than on every push.
        sender.assertion().context("private_key cannot sign")?;
        Ok(sender)
    }

    /// Sends one push notification.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let token = self.access_token().await?;
        let request = SendRequest {
            message: Message {
                token: &msg.to,
                notification: Notification {
                    title: msg.subject.as_deref(),
                    body: &msg.body,
                },
                data: Data {
                    notification_id: &msg.id,
                },
            },
        };
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(token.expose_secret())
            .json(&request)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("fcm: {e}")))?;
        let status = response.status();
        // A body that cannot be read still leaves the status to classify by.
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let name = serde_json::from_str::<SendResponse>(&body)
                .map(|r| r.name)
                .ok();
            if name.is_none() {
                // Accepted all the same: failing here would send it again.
                tracing::warn!(id = %msg.id, "fcm accepted a message without a readable name");
            }
            return Ok(Receipt {
                provider_message_id: name,
                delivered: false,
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            // Revoked or expired early: fetch a new token on the next attempt,
            // unless another send already replaced this one.
            let mut cached = self.token.lock().await;
            if cached
                .as_ref()
                .is_some_and(|t| t.value.expose_secret() == token.expose_secret())
            {
                *cached = None;
            }
        }
        Err(classify(status, &body))
    }

    /// A valid access token, from the cache or a new exchange.
    async fn access_token(&self) -> Result<SecretString, SendError> {
        // Held across the exchange: concurrent sends wait for one exchange
        // instead of each starting their own.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Exchanges a signed assertion for an access token. Every failure is
    /// transient: it concerns the token, not the message.
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let assertion = self
            .assertion()
            .map_err(|e| SendError::Transient(format!("fcm token: cannot sign: {e}")))?;
        let requested = Instant::now();
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("fcm token: {e}")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let error: TokenError = serde_json::from_str(&body).unwrap_or_default();
            return Err(SendError::Transient(format!(
                "fcm token {status}: {}: {}",
                error.error.as_deref().unwrap_or("error"),
                error.error_description.as_deref().unwrap_or("")
            )));
        }
        let token: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| SendError::Transient(format!("fcm token: unreadable answer: {e}")))?;
        tracing::debug!(expires_in = token.expires_in, "fcm access token obtained");
        Ok(AccessToken {
            value: token.access_token.into(),
            refresh_at: requested
                + Duration::from_secs(token.expires_in).saturating_sub(REFRESH_MARGIN),
        })
    }

    /// The RS256 JWT the token endpoint exchanges.
    fn assertion(&self) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let now = jiff::Timestamp::now().as_second();
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_TTL_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// 404, and a 400 naming an unregistered token, mean the device is gone;
/// other 400/403 (a malformed token, another project's token) fail the same
/// way every time; 401 (token revoked), 429 and 5xx pass later.
fn classify(status: StatusCode, body: &str) -> SendError {
    let info = serde_json::from_str::<ErrorBody>(body)
        .unwrap_or_default()
        .error;
    let error_code = info
        .as_ref()
        .and_then(|i| i.details.iter().find_map(|d| d.error_code.as_deref()));
    let error_status = info.as_ref().and_then(|i| i.status.as_deref());
    let message = info.as_ref().and_then(|i| i.message.as_deref());
    let reason = format!(
        "fcm {status}: {}{}",
        error_code.or(error_status).unwrap_or("error"),
        message.map(|m| format!(": {m}")).unwrap_or_default()
    );
    // Only FCM's own verdict on the token: a bare 404 may as well come from
    // a wrong base URL or project, and must not wipe every device.
    let unregistered = error_code == Some("UNREGISTERED");
    if unregistered {
        SendError::Permanent {
            reason,
            unregistered: true,
        }
    } else if status.is_client_error()
        && status != StatusCode::UNAUTHORIZED
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        SendError::permanent(reason)
    } else {
        SendError::Transient(reason)
    }
}

#[cfg(test)]
mod tests;
