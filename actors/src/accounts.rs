//! Accounts: users, their profiles, sessions and revocations.
//!
//! - [`register`] creates a user and, in the same transaction, the profile for
//!   its role (a patient or a provider); the username index's precondition
//!   makes a taken name fail cleanly even under racing sign-ups.
//! - [`AccountActor`], one per user, owns that user's sessions: it starts a
//!   refresh-token family at login, rotates refresh tokens (a token presented
//!   twice revokes its whole family) and ends sessions at logout. Rotations
//!   for one user are serialised through its mailbox, so two concurrent uses
//!   of one refresh token cannot both succeed.
//! - [`Revocations`] is the in-memory view of revoked tokens and sessions that
//!   every request is checked against; it is loaded from the store at start
//!   and updated only after a revocation is durable.
//!
//! Passwords arrive here already hashed: hashing is CPU work for the gateway's
//! blocking pool, not for an actor thread.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use jiff::civil::Date;
use medrelay_protocol::profile::{ContactInfo, MedicalHistory};
use medrelay_protocol::schedule::{DateException, DayAvailability};
use medrelay_protocol::{Channel, Email, Event, PatientId, ProviderId, Role, UserId, Username};
use serde::{Deserialize, Serialize};

use crate::ids::new_id;
use crate::store::{Record, Store, StoreError, Table, WriteBatch, WriteError};
use crate::system::{IdleTimer, KeyedActor, Retire, count_restart, guarded};

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// Its id.
    pub user_id: UserId,
    /// Its login name (lower-cased).
    pub username: Username,
    /// Its e-mail address.
    pub email: Email,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Its role.
    pub role: Role,
    /// The patient profile, for patients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
    /// The provider profile, for doctors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<ProviderId>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Record for UserRecord {
    const TABLE: Table = Table::Users;
    const VERSION: u16 = 1;
}

/// Username index entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsernameEntry {
    /// The user holding the name.
    pub user_id: UserId,
}

impl Record for UsernameEntry {
    const TABLE: Table = Table::Usernames;
    const VERSION: u16 = 1;
}

/// A patient profile (seed `PATIENT_TBL` / `GET /api/patients/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientRecord {
    /// Its id.
    pub patient_id: PatientId,
    /// The account it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Full name.
    pub name: String,
    /// Date of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<Date>,
    /// Contact details.
    #[serde(default)]
    pub contact_info: ContactInfo,
    /// Medical history.
    #[serde(default)]
    pub medical_history: MedicalHistory,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Record for PatientRecord {
    const TABLE: Table = Table::Patients;
    const VERSION: u16 = 1;
}

/// A provider (doctor) profile (seed `DOCTOR_TBL` / `/api/providers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRecord {
    /// Its id.
    pub provider_id: ProviderId,
    /// The doctor account it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Display name.
    pub name: String,
    /// Specialization.
    #[serde(default)]
    pub specialization: String,
    /// Contact details.
    #[serde(default)]
    pub contact_info: ContactInfo,
    /// IANA time zone of the provider's availability.
    pub time_zone: String,
    /// Length of one slot, in minutes.
    #[serde(default = "default_slot_minutes")]
    pub slot_minutes: u16,
    /// Weekly working hours.
    #[serde(default)]
    pub availability: Vec<DayAvailability>,
    /// Dates whose hours differ from the weekly pattern.
    #[serde(default)]
    pub exceptions: Vec<DateException>,
    /// When it was created.
    pub created_at: Timestamp,
}

fn default_slot_minutes() -> u16 {
    30
}

impl Record for ProviderRecord {
    const TABLE: Table = Table::Providers;
    const VERSION: u16 = 1;
}

/// A refresh token that was issued (keyed by its `jti`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRecord {
    /// Its owner.
    pub user_id: UserId,
    /// The session it belongs to.
    pub family: String,
    /// Unix seconds after which it is worthless (and may be pruned).
    pub expires_at: i64,
    /// Whether it was already exchanged.
    pub used: bool,
}

impl Record for RefreshRecord {
    const TABLE: Table = Table::RefreshTokens;
    const VERSION: u16 = 1;
}

/// A revoked access token or session, kept until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// Unix seconds after which the revoked thing would be invalid anyway.
    pub expires_at: i64,
}

/// The profile a new account comes with.
#[derive(Debug, Clone)]
pub enum NewProfile {
    /// A patient profile.
    Patient {
        /// Full name.
        name: String,
        /// Date of birth.
        dob: Option<Date>,
        /// Contact details.
        contact_info: ContactInfo,
        /// Medical history.
        medical_history: MedicalHistory,
    },
    /// A provider profile.
    Doctor {
        /// The id to use; generated when absent.
        provider_id: Option<ProviderId>,
        /// Display name.
        name: String,
        /// Specialization.
        specialization: String,
        /// Contact details.
        contact_info: ContactInfo,
        /// IANA time zone (already validated).
        time_zone: String,
    },
    /// Admins have no profile.
    Admin,
}

/// A validated sign-up.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login name.
    pub username: Username,
    /// E-mail.
    pub email: Email,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Profile (decides the role).
    pub profile: NewProfile,
}

/// What [`register`] created.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The new user.
    pub user_id: UserId,
    /// Its role.
    pub role: Role,
    /// Its patient profile.
    pub patient_id: Option<PatientId>,
    /// Its provider profile.
    pub provider_id: Option<ProviderId>,
}

/// Why [`register`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The username is held by another account.
    #[error("username is already taken")]
    UsernameTaken,
    /// The requested provider id exists.
    #[error("providerId is already taken")]
    ProviderIdTaken,
    /// The store failed.
    #[error(transparent)]
    Store(WriteError),
}

/// Creates an account and its profile in one transaction.
///
/// # Errors
/// [`RegisterError`] when the username or provider id is taken or the write fails.
pub async fn register(store: &Store, new: NewAccount) -> Result<Registered, RegisterError> {
    let now = Timestamp::now();
    let user_id = UserId::parse(&new_id("usr")).expect("generated ids are valid");
    let mut batch = WriteBatch::new();
    batch.require_absent(Table::Usernames, new.username.as_str());
    let (role, patient_id, provider_id) = match new.profile {
        NewProfile::Patient {
            name,
            dob,
            contact_info,
            medical_history,
        } => {
            let patient_id = PatientId::parse(&new_id("pat")).expect("generated ids are valid");
            batch.put(
                patient_id.as_str(),
                &PatientRecord {
                    patient_id: patient_id.clone(),
                    user_id: Some(user_id.clone()),
                    name,
                    dob,
                    contact_info,
                    medical_history,
                    created_at: now,
                },
            );
            (Role::Patient, Some(patient_id), None)
        }
        NewProfile::Doctor {
            provider_id,
            name,
            specialization,
            contact_info,
            time_zone,
        } => {
            let provider_id = provider_id.unwrap_or_else(|| {
                ProviderId::parse(&new_id("prv")).expect("generated ids are valid")
            });
            batch.require_absent(Table::Providers, provider_id.as_str());
            batch.put(
                provider_id.as_str(),
                &ProviderRecord {
                    provider_id: provider_id.clone(),
                    user_id: Some(user_id.clone()),
                    name,
                    specialization,
                    contact_info,
                    time_zone,
                    slot_minutes: default_slot_minutes(),
                    availability: Vec::new(),
                    exceptions: Vec::new(),
                    created_at: now,
                },
            );
            (Role::Doctor, None, Some(provider_id))
        }
        NewProfile::Admin => (Role::Admin, None, None),
    };
    batch.put(
        new.username.as_str(),
        &UsernameEntry {
            user_id: user_id.clone(),
        },
    );
    batch.put(
        user_id.as_str(),
        &UserRecord {
            user_id: user_id.clone(),
            username: new.username.clone(),
            email: new.email,
            password_hash: new.password_hash,
            role,
            patient_id: patient_id.clone(),
            provider_id: provider_id.clone(),
            created_at: now,
        },
    );
    batch.event(
        Channel::Users,
        Event::UserRegistered {
            user_id: user_id.clone(),
            username: new.username,
            role,
            at: now,
        },
    );
    match store.write(batch).await {
        Ok(_) => Ok(Registered {
            user_id,
            role,
            patient_id,
            provider_id,
        }),
        Err(WriteError::Exists { table, .. }) if table == Table::Providers.name() => {
            Err(RegisterError::ProviderIdTaken)
        }
        Err(WriteError::Exists { .. }) => Err(RegisterError::UsernameTaken),
        Err(e) => Err(RegisterError::Store(e)),
    }
}

/// Looks a user up by login name.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn find_by_username(
    store: &Store,
    username: &Username,
) -> Result<Option<UserRecord>, StoreError> {
    match store.get::<UsernameEntry>(username.as_str())? {
        Some(entry) => store.get::<UserRecord>(entry.user_id.as_str()),
        None => Ok(None),
    }
}

/// Revoked access tokens (by `jti`) and sessions (by family), in memory.
#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<RevokedSets>>,
}

#[derive(Default)]
struct RevokedSets {
    tokens: HashMap<String, i64>,
    families: HashMap<String, i64>,
}

macro_rules! revocation_record {
    ($name:ident, $table:expr) => {
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        struct $name(Revocation);
        impl Record for $name {
            const TABLE: Table = $table;
            const VERSION: u16 = 1;
        }
    };
}
revocation_record!(RevokedToken, Table::RevokedTokens);
revocation_record!(RevokedFamily, Table::RevokedFamilies);

impl Revocations {
    /// Loads every kept revocation from the store.
    ///
    /// # Errors
    /// [`StoreError`] on a read failure.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let mut sets = RevokedSets::default();
        for (key, value) in scan_all::<RevokedToken>(store)? {
            sets.tokens.insert(key, value.0.expires_at);
        }
        for (key, value) in scan_all::<RevokedFamily>(store)? {
            sets.families.insert(key, value.0.expires_at);
        }
        Ok(Self {
            inner: Arc::new(RwLock::new(sets)),
        })
    }

    /// Whether an access token (by `jti`) or its session (by family) was revoked.
    pub fn is_revoked(&self, jti: &str, family: &str) -> bool {
        let sets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        sets.tokens.contains_key(jti) || sets.families.contains_key(family)
    }

    /// Whether a session was revoked.
    pub fn is_family_revoked(&self, family: &str) -> bool {
        let sets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        sets.families.contains_key(family)
    }

    fn add(&self, token: Option<(&str, i64)>, family: Option<(&str, i64)>) {
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some((jti, exp)) = token {
            sets.tokens.insert(jti.to_owned(), exp);
        }
        if let Some((fam, exp)) = family {
            sets.families.insert(fam.to_owned(), exp);
        }
    }

    fn forget_expired(&self, now: i64) {
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        sets.tokens.retain(|_, exp| *exp >= now);
        sets.families.retain(|_, exp| *exp >= now);
    }
}

fn scan_all<T: Record>(store: &Store) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    loop {
        let page = store.scan::<T>(out.last().map(|(k, _): &(String, T)| k.as_str()), 1024)?;
        let done = page.len() < 1024;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Deletes refresh tokens and revocations that expired before `now` (unix
/// seconds); returns how many records went.
///
/// # Errors
/// [`StoreError`] on a read or write failure.
pub async fn prune_expired(
    store: &Store,
    revocations: &Revocations,
    now: i64,
) -> Result<usize, StoreError> {
    let mut batch = WriteBatch::new();
    let mut count = 0;
    for (key, rec) in scan_all::<RefreshRecord>(store)? {
        if rec.expires_at < now {
            batch.delete(Table::RefreshTokens, key);
            count += 1;
        }
    }
    for (key, rec) in scan_all::<RevokedToken>(store)? {
        if rec.0.expires_at < now {
            batch.delete(Table::RevokedTokens, key);
            count += 1;
        }
    }
    for (key, rec) in scan_all::<RevokedFamily>(store)? {
        if rec.0.expires_at < now {
            batch.delete(Table::RevokedFamilies, key);
            count += 1;
        }
    }
    if count > 0 {
        store.write(batch).await.map_err(|e| StoreError::Corrupt {
            table: "refresh_tokens",
            key: String::new(),
            reason: format!("prune failed: {e}"),
        })?;
    }
    revocations.forget_expired(now);
    Ok(count)
}

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
    #[error("storage: {0}")]
    Storage(String),
    /// The actor failed while handling the request (it was restarted).
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Storage(e.to_string())
    }
}

impl From<WriteError> for AccountError {
    fn from(e: WriteError) -> Self {
        AccountError::Storage(e.to_string())
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
    user_id: String,
    store: Store,
    revocations: Revocations,
    user: Option<UserRecord>,
    idle: IdleTimer,
    retire: Retire<AccountActor>,
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
            user_id,
            store,
            revocations,
            user: None,
            idle: IdleTimer::new(idle_after),
            retire,
        }
    }

    fn user(&mut self) -> Result<&UserRecord, AccountError> {
        if self.user.is_none() {
            self.user = self.store.get::<UserRecord>(&self.user_id)?;
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
            .store
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

    /// Writes a prepared change; replies only after it is durable, and only
    /// then makes a revocation visible to request checks.
    fn commit<T: 'static>(
        &self,
        prepared: Prepared<T>,
    ) -> AtomicResponse<Self, Result<T, AccountError>> {
        let store = self.store.clone();
        let revocations = self.revocations.clone();
        AtomicResponse::new(Box::pin(
            async move {
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
            }
            .into_actor(self),
        ))
    }
}

/// A revocation to make visible once its write is durable.
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

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Revived after retiring (a late message held the address): take
        // the key back, so the next request does not start a second actor.
        self.retire.reinstate(&ctx.address());
        // (Re)load from the store: after a panic the in-memory state may be
        // half-changed, and the store is the truth.
        self.user = None;
        if let Err(e) = self.user() {
            tracing::debug!(user = %self.user_id, error = %e, "account not loaded at start");
        }
        self.idle.touch();
        ctx.run_interval(self.idle.check_every(), |act, ctx| {
            if act.idle.expired() {
                act.retire.now(&ctx.address());
                ctx.stop();
            }
        });
    }
}

impl Supervised for AccountActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        count_restart(Self::KIND);
    }
}

impl KeyedActor for AccountActor {
    const KIND: &'static str = "account";
}

macro_rules! account_handler {
    ($msg:ty, $reply:ty, $method:ident) => {
        impl Handler<$msg> for AccountActor {
            type Result = AtomicResponse<Self, Result<$reply, AccountError>>;

            fn handle(&mut self, msg: $msg, ctx: &mut Context<Self>) -> Self::Result {
                self.idle.touch();
                let prepared = guarded(
                    self,
                    ctx,
                    || Err(AccountError::Internal),
                    |act, _| act.$method(msg),
                );
                self.commit(prepared)
            }
        }
    };
}
account_handler!(BeginSession, (), begin);
account_handler!(RotateRefresh, (), rotate);
account_handler!(EndSession, (), end);

impl Handler<Describe> for AccountActor {
    type Result = Result<UserRecord, AccountError>;

    fn handle(&mut self, _: Describe, ctx: &mut Context<Self>) -> Self::Result {
        self.idle.touch();
        guarded(
            self,
            ctx,
            || Err(AccountError::Internal),
            |act, _| act.user().cloned(),
        )
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
                    user.role = Role::Admin;
                }
                panic!("injected fault for {}", act.user_id)
            },
        )
    }
}

#[cfg(test)]
mod tests;
