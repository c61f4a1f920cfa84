//! `AccountActor`: one per user, owning that user's sessions.

use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use medrelay_protocol::{Channel, Event, UserId};

use crate::fault::{Fault, describe};
use crate::store::{Store, StoreError, WriteBatch, WriteError};
use crate::system::keyed::{self, Lifecycle, Owner};
use crate::system::{Retire, guarded};

use super::*;

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The user does not exist.
    #[error("unknown user")]
    UnknownUser,
    /// The refresh token is unknown, or belongs to someone else.
    #[error("invalid refresh token")]
    InvalidToken,
    /// The session was revoked (logout or reuse).
    #[error("session revoked")]
    Revoked,
    /// The refresh token was already used; the session is now revoked.
    #[error("refresh token reused; session revoked")]
    TokenReused,
    /// The store failed.
    #[error("storage failed")]
    Storage(#[source] Fault),
    /// The actor failed while handling the request (it was restarted).
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Storage(Fault::new(e))
    }
}

impl From<WriteError> for AccountError {
    fn from(e: WriteError) -> Self {
        AccountError::Storage(Fault::new(e))
    }
}

/// Starts a session at login: records the first refresh token of a new family.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), AccountError>")]
pub struct BeginSession {
    /// The new session's id (carried by both tokens as `fam`).
    pub family: String,
    /// The refresh token's id.
    pub refresh_jti: String,
    /// Its expiry (unix seconds).
    pub refresh_exp: i64,
}

/// Exchanges a refresh token for a new one in the same family.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), AccountError>")]
pub struct RotateRefresh {
    /// The presented token's id.
    pub presented_jti: String,
    /// The new token's id.
    pub new_jti: String,
    /// The new token's expiry (unix seconds).
    pub new_exp: i64,
}

/// Ends a session at logout: revokes the access token and its family.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), AccountError>")]
pub struct EndSession {
    /// The access token's id.
    pub access_jti: String,
    /// Its expiry (unix seconds).
    pub access_exp: i64,
    /// The session.
    pub family: String,
    /// When the family's last refresh token expires (unix seconds).
    pub family_exp: i64,
}

/// Returns the account as the actor holds it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<UserRecord, AccountError>")]
pub struct Describe;

/// Panics inside the handler: proves that supervision survives it.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), AccountError>")]
pub struct InjectPanic;

/// One user's sessions.
pub struct AccountActor {
    life: Lifecycle<AccountActor>,
    revocations: Revocations,
    user: Option<UserRecord>,
}

impl AccountActor {
    /// An actor for `user_id`; its state is loaded when it starts.
    pub fn new(
        user_id: String,
        store: Store,
        revocations: Revocations,
        idle_after: Duration,
        retire: Retire<AccountActor>,
    ) -> Self {
        Self {
            life: Lifecycle::new(user_id, store, retire, idle_after),
            revocations,
            user: None,
        }
    }

    fn user(&mut self) -> Result<&UserRecord, AccountError> {
        if self.user.is_none() {
            self.user = self.life.store().get::<UserRecord>(self.life.key())?;
        }
        self.user.as_ref().ok_or(AccountError::UnknownUser)
    }

    fn begin(&mut self, msg: BeginSession) -> Prepared<()> {
        let user_id = self.user()?.user_id.clone();
        let mut batch = WriteBatch::new();
        batch.put(
            msg.refresh_jti,
            &RefreshRecord {
                user_id: user_id.clone(),
                family: msg.family,
                expires_at: msg.refresh_exp,
                used: false,
            },
        );
        batch.event(
            Channel::User(user_id.clone()),
            Event::SignedIn {
                user_id,
                at: Timestamp::now(),
            },
        );
        Ok((batch, (), None, None))
    }

    fn rotate(&mut self, msg: RotateRefresh) -> Prepared<()> {
        let user_id = self.user()?.user_id.clone();
        let record = self
            .life
            .store()
            .get::<RefreshRecord>(&msg.presented_jti)?
            .filter(|r| r.user_id == user_id)
            .ok_or(AccountError::InvalidToken)?;
        if self.revocations.is_family_revoked(&record.family) {
            return Err(AccountError::Revoked);
        }
        let reused = revoke_reused(&user_id, &record, msg.new_exp);
        if record.used {
            tracing::warn!(user = %user_id, "refresh token presented twice; revoking its session");
            let (batch, revoke) = reused;
            return Ok((batch, (), Some(revoke), None));
        }
        // The used flag is a precondition in the store, not only this
        // mailbox's order: if another writer flipped it since the read above,
        // the store refuses this batch and the reuse path runs instead.
        let mut batch = WriteBatch::new();
        batch.require_equal(msg.presented_jti.clone(), &record);
        batch.put(
            msg.presented_jti,
            &RefreshRecord {
                used: true,
                ..record.clone()
            },
        );
        batch.put(
            msg.new_jti,
            &RefreshRecord {
                user_id,
                family: record.family,
                expires_at: msg.new_exp,
                used: false,
            },
        );
        Ok((batch, (), None, Some(reused)))
    }

    fn end(&mut self, msg: EndSession) -> Prepared<()> {
        let user_id = self.user()?.user_id.clone();
        let mut batch = WriteBatch::new();
        batch.put(
            msg.access_jti.clone(),
            &RevokedToken(Revocation {
                expires_at: msg.access_exp,
            }),
        );
        batch.put(
            msg.family.clone(),
            &RevokedFamily(Revocation {
                expires_at: msg.family_exp,
            }),
        );
        batch.event(
            Channel::User(user_id.clone()),
            Event::SignedOut {
                user_id,
                at: Timestamp::now(),
            },
        );
        let revoke = Revoke {
            token: Some((msg.access_jti, msg.access_exp)),
            family: Some((msg.family, msg.family_exp)),
            then_fail: None,
        };
        Ok((batch, (), Some(revoke), None))
    }

    /// Writes a prepared change and replies once it is durable; only then is
    /// a revocation made visible to request checks. A rotation that lost a
    /// race for its token writes the session's revocation instead.
    fn commit<T: 'static>(
        &self,
        prepared: Prepared<T>,
    ) -> AtomicResponse<Self, Result<T, AccountError>> {
        let store = self.life.store().clone();
        let revocations = self.revocations.clone();
        let work = async move {
            let (batch, reply, mut revoke, if_changed) = prepared?;
            match (store.write(batch).await, if_changed) {
                (Ok(_), _) => {}
                (Err(WriteError::Changed { .. }), Some((batch, instead))) => {
                    tracing::warn!("refresh token used concurrently; revoking its session");
                    store.write(batch).await?;
                    revoke = Some(instead);
                }
                (Err(e), _) => return Err(e.into()),
            }
            if let Some(revoke) = revoke {
                revocations.add(
                    revoke.token.as_ref().map(|(j, e)| (j.as_str(), *e)),
                    revoke.family.as_ref().map(|(f, e)| (f.as_str(), *e)),
                );
                if let Some(err) = revoke.then_fail {
                    return Err(err);
                }
            }
            Ok(reply)
        };
        keyed::after(self, work, |reply, _| Ok(reply))
    }
}

struct Revoke {
    token: Option<(String, i64)>,
    family: Option<(String, i64)>,
    /// The request still fails after the revocation is written (token reuse).
    then_fail: Option<AccountError>,
}

/// A change: its batch, the reply, a revocation to make visible after it,
/// and what to write instead if a `require_equal` precondition fails.
type Prepared<T> =
    Result<(WriteBatch, T, Option<Revoke>, Option<(WriteBatch, Revoke)>), AccountError>;

/// Revokes the session of a refresh token presented twice.
fn revoke_reused(user_id: &UserId, record: &RefreshRecord, new_exp: i64) -> (WriteBatch, Revoke) {
    let mut batch = WriteBatch::new();
    batch.put(
        record.family.clone(),
        &RevokedFamily(Revocation {
            expires_at: record.expires_at.max(new_exp),
        }),
    );
    batch.event(
        Channel::User(user_id.clone()),
        Event::SessionRevoked {
            user_id: user_id.clone(),
            at: Timestamp::now(),
        },
    );
    let revoke = Revoke {
        token: None,
        family: Some((record.family.clone(), new_exp)),
        then_fail: Some(AccountError::TokenReused),
    };
    (batch, revoke)
}

keyed::keyed_actor!(AccountActor, "account");

impl Owner for AccountActor {
    fn lifecycle(&mut self) -> &mut Lifecycle<Self> {
        &mut self.life
    }

    fn forget(&mut self) {
        self.user = None;
    }

    fn load_now(&mut self) -> Result<(), String> {
        self.user().map(|_| ()).map_err(|e| describe(&e))
    }
}

keyed::writing_handlers!(
    AccountActor,
    AccountError,
    BeginSession => (): begin,
    RotateRefresh => (): rotate,
    EndSession => (): end,
);

impl Handler<Describe> for AccountActor {
    type Result = ResponseFuture<Result<UserRecord, AccountError>>;

    fn handle(&mut self, msg: Describe, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(next) = keyed::successor(self, ctx) {
            return keyed::forward(next, msg, AccountError::Internal);
        }
        let user = guarded(
            self,
            ctx,
            || Err(AccountError::Internal),
            |act, _| act.user().cloned(),
        );
        Box::pin(std::future::ready(user))
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<InjectPanic> for AccountActor {
    type Result = Result<(), AccountError>;

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(AccountError::Internal),
            |act, _| {
                // Corrupt the in-memory state first, so the test can see that the
                // restart reloads it from the store.
                if let Some(user) = act.user.as_mut() {
                    user.role = medrelay_protocol::Role::Admin;
                }
                panic!("injected fault for {}", act.life.key())
            },
        )
    }
}
