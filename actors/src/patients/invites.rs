//! Invitations to claim a login for a patient registered at the desk.
//!
//! The token goes to the patient (by e-mail or SMS) and is never stored:
//! the `invites` table holds its SHA-256, so a copy of the store cannot sign
//! anyone up. A token works once and until it expires; sign-up spends it in
//! the same transaction that links the new account to the patient.

use jiff::Timestamp;
use medrelay_protocol::{PatientId, UserId};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Store, StoreError, Table, WriteBatch};

/// An invitation as stored (under the hash of its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteRecord {
    /// The patient whose login it makes.
    pub patient_id: PatientId,
    /// Who sent it.
    pub created_by: UserId,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When sign-up spent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<Timestamp>,
}

impl Record for InviteRecord {
    const TABLE: Table = Table::Invites;
    const VERSION: u16 = 1;
}

/// The store key of a token: its SHA-256, hex.
pub fn key_of(token: &str) -> String {
    crate::ids::secret_key(token)
}

/// A new invitation for `patient`: adds it to `batch` and returns the
/// token to send (32 random bytes, base64url).
pub fn issue(
    batch: &mut WriteBatch,
    patient: &PatientId,
    by: &UserId,
    expires_at: Timestamp,
) -> String {
    let token = crate::ids::new_secret("");
    let record = InviteRecord {
        patient_id: patient.clone(),
        created_by: by.clone(),
        expires_at,
        used_at: None,
    };
    batch.put(key_of(&token), &record);
    token
}

/// Why a token cannot be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteProblem {
    /// No such token.
    #[error("no such invitation")]
    Unknown,
    /// It was spent.
    #[error("this invitation was used already")]
    Used,
    /// It expired.
    #[error("this invitation has expired")]
    Expired,
}

/// The invitation a token names, if it can still be spent at `now`.
///
/// # Errors
/// [`StoreError`] on a read failure; the inner [`InviteProblem`] when it
/// cannot be spent.
pub fn usable(
    store: &Store,
    token: &str,
    now: Timestamp,
) -> Result<Result<(String, InviteRecord), InviteProblem>, StoreError> {
    let key = key_of(token);
    Ok(match store.get::<InviteRecord>(&key)? {
        None => Err(InviteProblem::Unknown),
        Some(invite) if invite.used_at.is_some() => Err(InviteProblem::Used),
        Some(invite) if invite.expires_at <= now => Err(InviteProblem::Expired),
        Some(invite) => Ok((key, invite)),
    })
}

/// Spends the invitation in `batch`: fails the batch if it changed (spent
/// by another sign-up) since it was read.
pub fn spend(batch: &mut WriteBatch, key: &str, invite: &InviteRecord, now: Timestamp) {
    batch.require_equal(key.to_owned(), invite);
    let spent = InviteRecord {
        used_at: Some(now),
        ..invite.clone()
    };
    batch.put(key.to_owned(), &spent);
}
