//! The embedded outbox: a channel without a provider writes each message to
//! a file in its folder, where an operator (or a test) can read it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::message::Mailbox;
use serde::Serialize;

use super::{Outgoing, Receipt, SendError, smtp, valid_id};

/// What the outbox writes.
#[derive(Debug, Clone)]
pub enum OutboxKind {
    /// `<id>.eml`: the complete RFC 5322 message, sent as `from`.
    Email {
        /// The From header.
        from: Mailbox,
    },
    /// `<id>.json`: `{"id", "to", "subject", "body", "writtenAt"}`.
    Json,
}

/// A folder of delivered messages, one file per notification id.
#[derive(Debug)]
pub struct FileOutbox {
    dir: PathBuf,
    kind: OutboxKind,
}

/// The JSON file's content.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMessage<'a> {
    id: &'a str,
    to: &'a str,
    subject: Option<&'a str>,
    body: &'a str,
    written_at: jiff::Timestamp,
}

impl FileOutbox {
    /// An outbox writing to `dir` (the channel's folder, such as
    /// `<outbox>/email`), created here if missing.
    pub fn new(dir: PathBuf, kind: OutboxKind) -> anyhow::Result<Self> {
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the outbox folder {}", dir.display()))?;
        Ok(Self { dir, kind })
    }

    /// The folder messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of notification `id` (which must be a valid id).
    fn path_of(&self, id: &str) -> PathBuf {
        let extension = match self.kind {
            OutboxKind::Email { .. } => "eml",
            OutboxKind::Json => "json",
        };
        self.dir.join(format!("{id}.{extension}"))
    }

    /// Writes `msg` to `<id>.eml` or `<id>.json`, replacing an earlier copy.
    pub async fn send(&self, msg: &Outgoing) -> Result<Receipt, SendError> {
        // Checked here too, not only in `Provider::send`: the id is a file name.
        if !valid_id(&msg.id) {
            return Err(SendError::permanent("invalid notification id"));
        }
        let content = match &self.kind {
            OutboxKind::Email { from } => smtp::build_message(from, msg)?.formatted(),
            OutboxKind::Json => serde_json::to_vec_pretty(&JsonMessage {
                id: &msg.id,
                to: &msg.to,
                subject: msg.subject.as_deref(),
                body: &msg.body,
                written_at: jiff::Timestamp::now(),
            })
            .map_err(|e| SendError::permanent(format!("cannot encode the message: {e}")))?,
        };
        let path = self.path_of(&msg.id);
        let tmp = self.dir.join(format!("{}.tmp", msg.id));
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&tmp, &target, &content))
            .await
            .map_err(|e| SendError::Transient(format!("outbox write task failed: {e}")))?
            // A full or read-only disk may recover; the message itself is fine.
            .map_err(|e| SendError::Transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(receipt(&path))
    }

    /// The receipt of `id` when its file exists.
    pub async fn already_sent(&self, id: &str) -> Option<Receipt> {
        if !valid_id(id) {
            return None;
        }
        let path = self.path_of(id);
        match tokio::fs::try_exists(&path).await {
            Ok(true) => Some(receipt(&path)),
            Ok(false) | Err(_) => None,
        }
    }
}

/// The receipt names the file as `<channel>/<file>`, not its absolute path,
/// which is no business of the people reading delivery reports.
fn receipt(path: &Path) -> Receipt {
    let mut parts = path.iter().rev().take(2).collect::<Vec<_>>();
    parts.reverse();
    let name: std::path::PathBuf = parts.into_iter().collect();
    Receipt {
        provider_message_id: Some(name.display().to_string()),
        delivered: true,
    }
}

/// Writes `content` to `tmp`, syncs it, then renames it to `target`: a
/// reader (or `already_sent` after a crash) sees the whole message or none.
fn write_atomically(tmp: &Path, target: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, target)?;
    // The rename lives in the folder's entry list; sync it so the file
    // survives a power cut, not just a process crash.
    #[cfg(unix)]
    if let Some(dir) = target.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(id: &str) -> Outgoing {
        Outgoing {
            id: id.into(),
            to: "pat@example.org".into(),
            subject: Some("Appointment reminder".into()),
            body: "Hello Pat, see you at 10:00.".into(),
            calendar: None,
        }
    }

    #[tokio::test]
    async fn writes_json_and_reports_it_as_sent() {
        let root = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(root.path().join("sms"), OutboxKind::Json).unwrap();
        assert!(outbox.dir().is_dir());
        assert_eq!(outbox.already_sent("ntf_1").await, None);

        let receipt = outbox.send(&outgoing("ntf_1")).await.unwrap();
        let path = root.path().join("sms").join("ntf_1.json");
        assert_eq!(
            receipt,
            Receipt {
                provider_message_id: Some("sms/ntf_1.json".into()),
                delivered: true,
            }
        );
        assert_eq!(outbox.already_sent("ntf_1").await, Some(receipt));
        assert!(!root.path().join("sms").join("ntf_1.tmp").exists());

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["id"], "ntf_1");
        assert_eq!(json["to"], "pat@example.org");
        assert_eq!(json["subject"], "Appointment reminder");
        assert_eq!(json["body"], "Hello Pat, see you at 10:00.");
        assert!(
            json["writtenAt"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn writes_a_complete_eml() {
        let root = tempfile::tempdir().unwrap();
        let from = smtp::parse_from("").unwrap();
        let outbox =
            FileOutbox::new(root.path().join("email"), OutboxKind::Email { from }).unwrap();
        outbox.send(&outgoing("ntf_2")).await.unwrap();

        let text = std::fs::read_to_string(root.path().join("email").join("ntf_2.eml")).unwrap();
        assert!(
            text.contains("From: medrelay <no-reply@localhost>"),
            "{text}"
        );
        assert!(text.contains("To: pat@example.org"), "{text}");
        assert!(text.contains("Message-ID: <ntf_2@medrelay>"), "{text}");
        assert!(text.contains("Hello Pat, see you at 10:00."), "{text}");
        assert!(outbox.already_sent("ntf_2").await.is_some());
    }

    #[tokio::test]
    async fn unsafe_ids_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(root.path().join("push"), OutboxKind::Json).unwrap();
        for id in ["../escape", "a/b", "", "a.b"] {
            let err = outbox.send(&outgoing(id)).await.unwrap_err();
            assert!(matches!(err, SendError::Permanent { .. }), "{id}");
            assert_eq!(outbox.already_sent(id).await, None);
        }
        assert!(!root.path().join("escape.json").exists());
    }
}
