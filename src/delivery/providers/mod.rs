//! The providers a channel delivers through: SMTP, Twilio, FCM, or the
//! embedded outbox folder when a provider is not configured.
//!
//! A provider sends one message and classifies a failure as transient (worth
//! a retry) or permanent (never retried). Retries, pacing and circuit
//! breaking belong to the channel worker, not here.

pub mod fcm;
pub mod outbox;
pub mod smtp;
pub mod twilio;

use std::path::Path;
use std::time::Duration;

use crate::config::{EmailSettings, PushSettings, SmsSettings};

pub use twilio::{status_callback_url, twilio_signature, verify_twilio_signature};

/// The From header of e-mails when none is configured.
const DEFAULT_FROM: &str = "medrelay <no-reply@localhost>";

/// Longest notification id accepted; ids become file names and header values.
const MAX_ID_LEN: usize = 128;

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Notification id; also the idempotency key.
    pub id: String,
    /// E-mail address, E.164 number or FCM device token.
    pub to: String,
    /// E-mail subject or push title (`None` for SMS).
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// E-mail: an iCalendar invitation to attach (`invite.ics`).
    pub calendar: Option<String>,
}

/// A provider's answer to an accepted send.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// SMTP: the Message-ID we set; Twilio: the `SM...` sid; FCM: the
    /// returned `name`; outbox: the file path.
    pub provider_message_id: Option<String>,
    /// True only for the outbox (the message is in its final place); false
    /// when a provider accepted it and delivery may follow.
    pub delivered: bool,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused or reset, timeouts, SMTP 4xx,
    /// HTTP 429 and 5xx.
    #[error("{0}")]
    Transient(String),
    /// Never retried: SMTP 5xx, Twilio 4xx, FCM 400/404, a malformed message.
    #[error("{reason}")]
    Permanent {
        /// What the provider said.
        reason: String,
        /// FCM says the device token is no longer registered (UNREGISTERED
        /// or 404 NOT_FOUND): the caller should forget the device.
        unregistered: bool,
    },
}

impl SendError {
    /// A permanent failure unrelated to device registration.
    fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
            unregistered: false,
        }
    }
}

/// Whether `id` is safe as a file name, header value and URL query value:
/// non-empty, at most [`MAX_ID_LEN`] characters of `[A-Za-z0-9_-]`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where one channel's messages go.
#[derive(Debug)]
pub enum Provider {
    /// An SMTP relay.
    Smtp(smtp::SmtpSender),
    /// Twilio's Messages API.
    Twilio(twilio::TwilioSender),
    /// Firebase Cloud Messaging (HTTP v1).
    Fcm(fcm::FcmSender),
    /// The embedded outbox folder.
    Outbox(outbox::FileOutbox),
}

impl Provider {
    /// SMTP when `settings.host` is non-empty, else the outbox writing
    /// `<outbox_dir>/email/<id>.eml`.
    ///
    /// The SMTP connection pool starts a cleanup task, so with a host set this
    /// must run inside a Tokio runtime.
    pub fn email(
        settings: &EmailSettings,
        outbox_dir: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Provider> {
        if settings.host.trim().is_empty() {
            let from = smtp::parse_from(&settings.from)?;
            let kind = outbox::OutboxKind::Email { from };
            return Ok(Provider::Outbox(outbox::FileOutbox::new(
                outbox_dir.join("email"),
                kind,
            )?));
        }
        Ok(Provider::Smtp(smtp::SmtpSender::new(settings, timeout)?))
    }

    /// Twilio when `settings.account_sid` is non-empty, else the outbox
    /// writing `<outbox_dir>/sms/<id>.json`.
    ///
    /// `public_url` (may be empty) is the server's public base URL: when set,
    /// each message asks Twilio for status callbacks at
    /// [`status_callback_url`].
    pub fn sms(
        settings: &SmsSettings,
        public_url: &str,
        outbox_dir: &Path,
        http: reqwest::Client,
    ) -> anyhow::Result<Provider> {
        if settings.account_sid.trim().is_empty() {
            return Ok(Provider::Outbox(outbox::FileOutbox::new(
                outbox_dir.join("sms"),
                outbox::OutboxKind::Json,
            )?));
        }
        Ok(Provider::Twilio(twilio::TwilioSender::new(
            settings, public_url, http,
        )?))
    }

    /// FCM when `settings.project_id` is non-empty, else the outbox writing
    /// `<outbox_dir>/push/<id>.json`.
    ///
    /// The service-account key file is read and checked now, so a bad key
    /// stops start-up instead of failing every push.
    pub fn push(
        settings: &PushSettings,
        outbox_dir: &Path,
        http: reqwest::Client,
    ) -> anyhow::Result<Provider> {
        if settings.project_id.trim().is_empty() {
            return Ok(Provider::Outbox(outbox::FileOutbox::new(
                outbox_dir.join("push"),
                outbox::OutboxKind::Json,
            )?));
        }
        Ok(Provider::Fcm(fcm::FcmSender::new(settings, http)?))
    }

    /// Sends one message.
    ///
    /// An id outside `[A-Za-z0-9_-]` (or longer than 128 characters) is a
    /// permanent failure: ids end up in file names, headers and URLs.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        if !valid_id(&msg.id) {
            return Err(SendError::permanent("invalid notification id"));
        }
        tracing::debug!(provider = self.name(), id = %msg.id, "sending notification");
        let result = match self {
            Provider::Smtp(sender) => sender.send(msg).await,
            Provider::Twilio(sender) => sender.send(msg).await,
            Provider::Fcm(sender) => sender.send(msg).await,
            Provider::Outbox(outbox) => outbox.send(msg).await,
        };
        match &result {
            Ok(receipt) => tracing::debug!(
                provider = self.name(),
                id = %msg.id,
                provider_message_id = receipt.provider_message_id.as_deref(),
                "notification accepted"
            ),
            Err(error) => {
                tracing::debug!(provider = self.name(), id = %msg.id, %error, "notification failed");
            }
        }
        result
    }

    /// `"smtp"`, `"twilio"`, `"fcm"` or `"outbox"`.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Smtp(_) => "smtp",
            Provider::Twilio(_) => "twilio",
            Provider::Fcm(_) => "fcm",
            Provider::Outbox(_) => "outbox",
        }
    }

    /// After a crash between "about to send" and "sent": `Some(receipt)` when
    /// the provider can tell the message already went out (the outbox: its
    /// file exists), `None` when it cannot tell.
    pub async fn already_sent(&self, id: &str) -> Option<Receipt> {
        match self {
            Provider::Outbox(outbox) => outbox.already_sent(id).await,
            // None of them can be asked by our id whether a message went out.
            Provider::Smtp(_) | Provider::Twilio(_) | Provider::Fcm(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_restricted_to_safe_characters() {
        assert!(valid_id("ntf_01j9z3kq8m2d5x7c4b6a"));
        assert!(valid_id("a-B_9"));
        assert!(!valid_id(""));
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id("a b"));
        assert!(!valid_id("a\r\nBcc: x"));
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[tokio::test]
    async fn unconfigured_channels_use_the_outbox() {
        use crate::config::SmtpTls;

        let dir = tempfile::tempdir().unwrap();
        let email = EmailSettings {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: String::new().into(),
            from: DEFAULT_FROM.into(),
            pool_size: 8,
        };
        let sms = SmsSettings {
            account_sid: String::new(),
            auth_token: String::new().into(),
            from: String::new(),
            messaging_service_sid: String::new(),
            base_url: "https://api.twilio.com".into(),
        };
        let push = PushSettings {
            project_id: String::new(),
            service_account_file: String::new(),
            base_url: "https://fcm.googleapis.com".into(),
            token_uri: String::new(),
        };
        let http = reqwest::Client::new();
        let email = Provider::email(&email, dir.path(), Duration::from_secs(5)).unwrap();
        let sms = Provider::sms(&sms, "", dir.path(), http.clone()).unwrap();
        let push = Provider::push(&push, dir.path(), http).unwrap();
        for provider in [&email, &sms, &push] {
            assert_eq!(provider.name(), "outbox");
        }
        for channel in ["email", "sms", "push"] {
            assert!(dir.path().join(channel).is_dir(), "{channel}");
        }

        let err = sms
            .send(&Outgoing {
                id: "../x".into(),
                to: "+15550100".into(),
                subject: None,
                body: "hi".into(),
                calendar: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            SendError::Permanent {
                unregistered: false,
                ..
            }
        ));
    }
}
