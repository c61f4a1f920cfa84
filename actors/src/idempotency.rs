//! Idempotency keys: the first answer to a request that moves money, kept
//! so the same request sent again gets the same answer.
//!
//! A request with an `Idempotency-Key` writes an [`IdempotencyRecord`]
//! without a response (in flight) in the transaction that starts its work,
//! required absent: of many identical requests racing, exactly one starts.
//! The transaction that finishes the work adds the response. Answered
//! records are kept for [`TTL`]; an expired one counts as absent.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Table, WriteBatch};

/// How long a key's answer is kept.
pub const TTL: SignedDuration = SignedDuration::from_hours(24);

/// A key's request and, once done, its answer (key: `<user>/<key>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// A digest of the request (route and body): the same key with another
    /// request is refused.
    pub fingerprint: String,
    /// When the first request came.
    pub created_at: Timestamp,
    /// Its answer, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<StoredResponse>,
    /// The id of the work it started (a payment), whose settling answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<String>,
}

/// An answer as it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

impl Record for IdempotencyRecord {
    const TABLE: Table = Table::IdempotencyKeys;
    const VERSION: u16 = 1;
}

impl IdempotencyRecord {
    /// Whether it no longer counts: answered more than [`TTL`] ago. A
    /// request still in flight never expires, so its key cannot start the
    /// same work twice; its work is settled and answers it.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.response.is_some() && now.duration_since(self.created_at) >= TTL
    }
}

/// The store key of `user`'s `key`.
pub fn store_key(user: &str, key: &str) -> String {
    format!("{user}/{key}")
}

/// Adds to `batch` the answer of the request under `key`.
pub fn finish(
    batch: &mut WriteBatch,
    key: &str,
    started: &IdempotencyRecord,
    status: u16,
    body: String,
) {
    batch.put(
        key,
        &IdempotencyRecord {
            response: Some(StoredResponse { status, body }),
            ..started.clone()
        },
    );
}

/// A digest of a request's parts (route, ids, canonical body), hex.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds to `batch` the start of a request under `key`: required absent, or
/// replacing the `expired` record it found.
pub fn begin(
    batch: &mut WriteBatch,
    key: &str,
    expired: Option<&IdempotencyRecord>,
    started: &IdempotencyRecord,
) {
    match expired {
        Some(old) => batch.require_equal(key, old),
        None => batch.require_absent(Table::IdempotencyKeys, key),
    };
    batch.put(key, started);
}
