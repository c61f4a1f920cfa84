//! JWT access and refresh tokens.
//!
//! Both are HS256 JWTs signed with a secret generated into the data folder on
//! first start (mode 0600), so tokens survive restarts. An access token is
//! short-lived and checked statelessly plus against the revocation set; a
//! refresh token is also recorded in the store, which is what makes rotation
//! and reuse detection possible.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use medrelay_actors::ids::{new_id, random_bytes};
use medrelay_protocol::{ProviderId, Role, UserId};
use serde::{Deserialize, Serialize};

/// The subject of display tokens: no account has this id (generated ids
/// always carry a `_`).
pub const DISPLAY_SUBJECT: &str = "display";

/// What a token is for; a refresh token is never accepted as an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Authorises requests.
    Access,
    /// Buys a new pair of tokens, once.
    Refresh,
    /// Lets a display (a waiting-room screen) watch one board, redacted,
    /// over the WebSocket only.
    Display,
}

/// The claims medrelay puts in its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// Their role at issue time.
    pub role: Role,
    /// This token's id.
    pub jti: String,
    /// The session (refresh family) it belongs to.
    pub fam: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Access, refresh or display.
    pub typ: TokenKind,
    /// Display tokens: the one board they may watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<ProviderId>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Bad signature, malformed, or the wrong kind.
    #[error("invalid token")]
    Invalid,
}

/// Signing keys and lifetimes.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl: i64,
    refresh_ttl: i64,
}

/// A freshly issued token.
pub struct Issued {
    /// The encoded JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl TokenKeys {
    /// Loads the signing secret from `data_dir/jwt.secret`, creating it (mode
    /// 0600) on first start.
    ///
    /// # Errors
    /// When the file cannot be read or created, or holds too short a secret.
    pub fn load_or_create(
        data_dir: &Path,
        access_ttl: u64,
        refresh_ttl: u64,
    ) -> anyhow::Result<Self> {
        let path = data_dir.join("jwt.secret");
        let engine = base64::engine::general_purpose::STANDARD;
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => engine
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = random_bytes(64);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(&path)
                    .with_context(|| format!("could not create {}", path.display()))?;
                file.write_all(engine.encode(&secret).as_bytes())?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "generated a new JWT signing secret");
                secret
            }
            Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
        };
        anyhow::ensure!(
            secret.len() >= 32,
            "{} holds fewer than 32 bytes",
            path.display()
        );
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            access_ttl: i64::try_from(access_ttl).unwrap_or(i64::MAX),
            refresh_ttl: i64::try_from(refresh_ttl).unwrap_or(i64::MAX),
        })
    }

    /// Issues a token of `kind` for a user's session.
    ///
    /// # Errors
    /// Only if signing itself fails.
    pub fn issue(
        &self,
        user: &UserId,
        role: Role,
        family: &str,
        kind: TokenKind,
    ) -> anyhow::Result<Issued> {
        let now = jiff::Timestamp::now().as_second();
        let (ttl, prefix) = match kind {
            TokenKind::Access => (self.access_ttl, "at"),
            TokenKind::Refresh => (self.refresh_ttl, "rt"),
            TokenKind::Display => anyhow::bail!("display tokens are issued by issue_display"),
        };
        self.sign(Claims {
            sub: user.clone(),
            role,
            jti: new_id(prefix),
            fam: family.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl),
            typ: kind,
            board: None,
        })
    }

    /// Issues a display token for `board`, valid for `ttl_secs`. Its subject
    /// is the synthetic `display`, which names no account.
    ///
    /// # Errors
    /// Only if signing itself fails.
    pub fn issue_display(&self, board: &ProviderId, ttl_secs: i64) -> anyhow::Result<Issued> {
        let now = jiff::Timestamp::now().as_second();
        self.sign(Claims {
            sub: UserId::parse(DISPLAY_SUBJECT).expect("a valid id"),
            role: Role::Patient,
            jti: new_id("dt"),
            fam: DISPLAY_SUBJECT.to_owned(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            typ: TokenKind::Display,
            board: Some(board.clone()),
        })
    }

    fn sign(&self, claims: Claims) -> anyhow::Result<Issued> {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("could not sign a token")?;
        Ok(Issued { token, claims })
    }

    /// Checks signature, expiry and kind.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        if data.claims.typ != kind {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }

    /// How long refresh tokens live, in seconds.
    pub fn refresh_ttl(&self) -> i64 {
        self.refresh_ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_token(keys: &TokenKeys) -> Issued {
        let user = UserId::parse("u").unwrap();
        keys.issue(&user, Role::Patient, "f", TokenKind::Access)
            .unwrap()
    }

    #[test]
    fn tokens_round_trip_and_kinds_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TokenKeys::load_or_create(dir.path(), 60, 600).unwrap();
        let user = UserId::parse("usr_1").unwrap();
        let access = keys
            .issue(&user, Role::Doctor, "ses_1", TokenKind::Access)
            .unwrap();
        let claims = keys.verify(&access.token, TokenKind::Access).unwrap();
        assert_eq!(claims, access.claims);
        assert_eq!(
            keys.verify(&access.token, TokenKind::Refresh),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify("garbage", TokenKind::Access),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn the_secret_persists_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKeys::load_or_create(dir.path(), 60, 600).unwrap();
        let token = access_token(&first).token;
        let second = TokenKeys::load_or_create(dir.path(), 60, 600).unwrap();
        assert!(second.verify(&token, TokenKind::Access).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt.secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TokenKeys::load_or_create(dir.path(), 60, 600).unwrap();
        let mut claims = access_token(&keys).claims;
        claims.exp = jiff::Timestamp::now().as_second() - 5;
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(
            keys.verify(&token, TokenKind::Access),
            Err(TokenError::Expired)
        );
    }
}
