//! Signed-in demo accounts: the admin and the patients keep their sessions
//! for the whole run, signing in again shortly before a token expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::client::{Api, ApiError};

/// What `POST /api/auth/login` answers (the parts the demo uses).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenReply {
    token: String,
    expires_in: i64,
}

/// A username and its password, as the summary prints them.
pub(crate) struct Login {
    /// The username.
    pub(crate) username: String,
    /// Its password, random for this run.
    pub(crate) password: String,
}

/// A signed-in account whose access token is renewed, by signing in again,
/// shortly before it expires (the demo knows the password; it never fails a
/// login, so lock-out does not apply).
pub(crate) struct Session {
    /// Who.
    pub(crate) login: Login,
    token: String,
    renew_at: Instant,
}

impl Session {
    /// Signs `login` in.
    ///
    /// # Errors
    /// As `Api::call`.
    pub(crate) async fn open(api: &Api, login: Login) -> Result<Session, ApiError> {
        let (token, renew_at) = sign_in(api, &login).await?;
        Ok(Session {
            login,
            token,
            renew_at,
        })
    }

    /// A live access token.
    ///
    /// # Errors
    /// As `Api::call`, when signing in again fails.
    pub(crate) async fn token(&mut self, api: &Api) -> Result<&str, ApiError> {
        if Instant::now() >= self.renew_at {
            let (token, renew_at) = sign_in(api, &self.login).await?;
            self.token = token;
            self.renew_at = renew_at;
        }
        Ok(&self.token)
    }

    /// Makes the next [`Session::token`] sign in again (after a 401).
    pub(crate) fn expire(&mut self) {
        self.renew_at = Instant::now();
    }
}

/// Signs in: the access token, and when to renew it (a minute early).
async fn sign_in(api: &Api, login: &Login) -> Result<(String, Instant), ApiError> {
    let body = json!({"username": login.username, "password": login.password});
    let reply: TokenReply = api.post("/api/auth/login", None, &body).await?;
    let secs = u64::try_from(reply.expires_in.saturating_sub(60))
        .unwrap_or(0)
        .max(10);
    let now = Instant::now();
    let renew_at = now.checked_add(Duration::from_secs(secs)).unwrap_or(now);
    Ok((reply.token, renew_at))
}
