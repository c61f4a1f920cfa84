//! The in-memory view of revoked tokens and sessions, and pruning them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::{Record, Store, StoreError, Table, WriteBatch, WriteError};

use super::*;

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

    pub(super) fn add(&self, token: Option<(&str, i64)>, family: Option<(&str, i64)>) {
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

/// Ends every session of `user`: revokes each session its refresh tokens
/// belong to, until they would have expired, so its access and refresh
/// tokens stop working at once. Returns how many sessions ended.
///
/// # Errors
/// A read or write failure.
pub async fn end_all_sessions(
    store: &Store,
    revocations: &Revocations,
    user: &medrelay_protocol::UserId,
) -> Result<usize, WriteError> {
    let storage = |e: StoreError| WriteError::Storage(crate::fault::Fault::new(e));
    let mut families: HashMap<String, i64> = HashMap::new();
    for (_, rec) in scan_all::<RefreshRecord>(store).map_err(storage)? {
        if &rec.user_id == user {
            let exp = families.entry(rec.family).or_insert(rec.expires_at);
            *exp = (*exp).max(rec.expires_at);
        }
    }
    if families.is_empty() {
        return Ok(0);
    }
    let mut batch = WriteBatch::new();
    for (family, exp) in &families {
        batch.put(
            family.clone(),
            &RevokedFamily(Revocation { expires_at: *exp }),
        );
    }
    store.write(batch).await?;
    for (family, exp) in &families {
        revocations.add(None, Some((family, *exp)));
    }
    Ok(families.len())
}
