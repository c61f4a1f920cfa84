//! Idempotency keys on requests that move money: what a key says about a
//! request (first, in flight, seen before, misused), and the answer kept
//! for it (see [`medrelay_actors::idempotency`] for the record).

use jiff::Timestamp;
use medrelay_actors::idempotency::{self, IdempotencyRecord};
use medrelay_protocol::ErrorCode;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// Longest `Idempotency-Key`.
const MAX_KEY: usize = 255;

/// An answer given verbatim: the one kept for an idempotency key is sent
/// again byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// What an `Idempotency-Key` says about a request.
pub enum Keyed {
    /// No key: nothing kept.
    None,
    /// A first request: write `record` under `key` (replacing `expired`).
    Start {
        /// Its store key.
        key: String,
        /// The record to write, in flight.
        record: IdempotencyRecord,
        /// The expired record it replaces.
        expired: Option<IdempotencyRecord>,
    },
    /// Seen before: its kept answer.
    Replay(Answer),
    /// The first request under the key is still in flight, with the id of
    /// the work it started, if any: answer [`in_flight`], and drive that
    /// work on.
    InFlight(Option<String>),
}

/// The answer to a request whose key's first request is still in flight.
pub fn in_flight() -> AppError {
    AppError::Conflict {
        message: "a request with this Idempotency-Key is still in flight".into(),
        field: Some("Idempotency-Key".into()),
    }
}

/// Checks a request's `Idempotency-Key` (if sent) against what is kept
/// under it; `parts` make the request's fingerprint.
///
/// # Errors
/// 422 naming `Idempotency-Key` for a malformed key; 422
/// `idempotency_mismatch` for another request under it.
pub fn keyed(
    state: &AppState,
    principal: &Principal,
    key: Option<&str>,
    parts: &[&[u8]],
) -> Result<Keyed, AppError> {
    let Some(raw) = key else {
        return Ok(Keyed::None);
    };
    if raw.is_empty() || raw.len() > MAX_KEY || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::invalid(
            "Idempotency-Key",
            format!("1 to {MAX_KEY} visible ASCII characters"),
        ));
    }
    let key = idempotency::store_key(principal.user_id.as_str(), raw);
    let fingerprint = idempotency::fingerprint(parts);
    let now = Timestamp::now();
    let found = state.store.get::<IdempotencyRecord>(&key)?;
    let expired = match found {
        Some(kept) if !kept.expired(now) => {
            if kept.fingerprint != fingerprint {
                return Err(AppError::Domain {
                    code: ErrorCode::IdempotencyMismatch,
                    message: "this Idempotency-Key was used with a different request".into(),
                    field: Some("Idempotency-Key".into()),
                });
            }
            return match kept.response {
                Some(r) => Ok(Keyed::Replay(Answer {
                    status: r.status,
                    body: r.body,
                })),
                None => Ok(Keyed::InFlight(kept.work)),
            };
        }
        other => other,
    };
    Ok(Keyed::Start {
        key,
        record: IdempotencyRecord {
            fingerprint,
            created_at: now,
            response: None,
            work: None,
        },
        expired,
    })
}
