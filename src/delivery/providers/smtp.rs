//! E-mail through an SMTP relay, over a pool of connections.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{DEFAULT_FROM, Outgoing, Receipt, SendError};
use crate::config::{EmailSettings, SmtpTls};

/// Sends e-mails through the configured relay.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `settings.host`, with `timeout` on each SMTP command.
    ///
    /// Must run inside a Tokio runtime: the connection pool starts its
    /// cleanup task here.
    pub fn new(settings: &EmailSettings, timeout: Duration) -> anyhow::Result<Self> {
        let host = settings.host.trim();
        let builder = match settings.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("notifications.email.host: TLS setup for {host}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("notifications.email.host: TLS setup for {host}"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        // The port after the relay constructors, which set the protocol's default.
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(timeout))
            // lettre's max_size caps the idle connections kept for reuse,
            // not those in use: the lane's concurrency bounds those.
            .pool_config(PoolConfig::new().max_size(settings.pool_size));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from: parse_from(&settings.from)?,
        })
    }

    /// Hands one message to the relay.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        let message = build_message(&self.from, msg)?;
        self.transport.send(message).await.map_err(classify)?;
        Ok(Receipt {
            provider_message_id: Some(message_id(&msg.id)),
            delivered: false,
        })
    }
}

/// The configured From mailbox, or [`DEFAULT_FROM`] when empty.
pub(super) fn parse_from(from: &str) -> anyhow::Result<Mailbox> {
    let from = match from.trim() {
        "" => DEFAULT_FROM,
        from => from,
    };
    from.parse()
        .with_context(|| format!("notifications.email.from: not a mailbox: {from:?}"))
}

/// The Message-ID header of notification `id`; derived from the id so that
/// a retried send carries the same Message-ID and receivers can deduplicate.
pub(super) fn message_id(id: &str) -> String {
    format!("<{id}@medrelay>")
}

/// The RFC 5322 message for `msg`: plain UTF-8 text, and its invitation
/// attached as `invite.ics` when it has one.
pub(super) fn build_message(from: &Mailbox, msg: &Outgoing) -> Result<Message, SendError> {
    let to: Mailbox = msg
        .to
        .parse()
        .map_err(|e| SendError::permanent(format!("invalid recipient address: {e}")))?;
    let mut builder = Message::builder()
        .message_id(Some(message_id(&msg.id)))
        .from(from.clone())
        .to(to);
    if let Some(subject) = &msg.subject {
        builder = builder.subject(subject.as_str());
    }
    let built = match &msg.calendar {
        None => builder.singlepart(SinglePart::plain(msg.body.clone())),
        Some(ics) => {
            // The method in the content type must match the one inside.
            let method = if ics.contains("\r\nMETHOD:CANCEL\r\n") {
                "CANCEL"
            } else {
                "REQUEST"
            };
            let kind =
                ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                    .map_err(|e| SendError::permanent(format!("calendar content type: {e}")))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(msg.body.clone()))
                    .singlepart(Attachment::new("invite.ics".into()).body(ics.clone(), kind)),
            )
        }
    };
    built.map_err(|e| SendError::permanent(format!("cannot build the e-mail: {e}")))
}

/// A 5xx reply will be refused again; everything else (4xx, connection,
/// timeout, TLS) may pass on a later attempt.
fn classify(error: lettre::transport::smtp::Error) -> SendError {
    if error.is_permanent() {
        SendError::permanent(format!("smtp: {error}"))
    } else {
        SendError::Transient(format!("smtp: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(to: &str) -> Outgoing {
        Outgoing {
            id: "ntf_1".into(),
            to: to.into(),
            subject: Some("Appointment reminder".into()),
            body: "Hello Zoë, see you tomorrow.".into(),
            calendar: None,
        }
    }

    #[test]
    fn builds_a_plain_text_message_with_our_message_id() {
        let from = parse_from("").unwrap();
        let message = build_message(&from, &outgoing("pat@example.org")).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("Message-ID: <ntf_1@medrelay>"), "{text}");
        assert!(
            text.contains("From: medrelay <no-reply@localhost>"),
            "{text}"
        );
        assert!(text.contains("To: pat@example.org"), "{text}");
        assert!(text.contains("Subject: Appointment reminder"), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_recipient_is_permanent() {
        let from = parse_from("clinic@example.org").unwrap();
        let err = build_message(&from, &outgoing("not an address")).unwrap_err();
        assert!(matches!(
            err,
            SendError::Permanent {
                unregistered: false,
                ..
            }
        ));
    }

    #[test]
    fn a_bad_from_is_a_configuration_error() {
        assert!(parse_from("not an address").is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        // Bind and drop a listener to get a local port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = EmailSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: String::new(),
            password: String::new().into(),
            from: "clinic@example.org".into(),
            pool_size: 1,
        };
        let sender = SmtpSender::new(&settings, Duration::from_secs(2)).unwrap();
        let err = sender.send(&outgoing("pat@example.org")).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    }
}
