//! Password hashing with argon2id, off the async threads.
//!
//! Hashing is deliberately slow (tens of milliseconds), so it runs on tokio's
//! blocking pool behind a semaphore: a burst of logins cannot starve the
//! runtime or exhaust memory (each hash uses ~19 MiB).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Accepted password lengths, in characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying against it when the user
    /// does not exist makes "no such user" take as long as "wrong password".
    dummy: Arc<str>,
}

impl Passwords {
    /// A hasher allowing `concurrency` hashes at once.
    ///
    /// # Errors
    /// If argon2 fails to hash the dummy password (it does not in practice).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let random = medrelay_actors::ids::new_id("dummy");
        let dummy = hash_now(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes a password into a PHC string (salt generated inside).
    ///
    /// # Errors
    /// If the blocking task fails or argon2 rejects the input.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`; with `hash = None` it spends the same
    /// time and answers `false`.
    ///
    /// # Errors
    /// If the blocking task fails.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await?;
        Ok(known && matches)
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let p = Passwords::new(2).unwrap();
        let a = p.hash("correct horse".into()).await.unwrap();
        let b = p.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(
            p.verify("correct horse".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!p.verify("wrong".into(), Some(a)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }
}
