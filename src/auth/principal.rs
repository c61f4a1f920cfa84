//! The authenticated caller of a request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use medrelay_protocol::{Role, UserId};
use secrecy::SecretString;

use super::tokens::{Claims, TokenError, TokenKind};
use crate::error::AppError;
use crate::state::AppState;

/// Who is asking, from a valid, unrevoked access token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// The access token's claims.
    pub claims: Claims,
    /// The token itself, for a board replica to present to the owner node
    /// (redacted in `Debug`).
    pub token: SecretString,
}

impl Principal {
    /// Checks an access token: signature, expiry, kind, revocation.
    ///
    /// # Errors
    /// [`AppError::Unauthorized`] saying why.
    pub fn from_token(state: &AppState, token: &str) -> Result<Principal, AppError> {
        let claims = state
            .tokens
            .verify(token, TokenKind::Access)
            .map_err(|e| match e {
                TokenError::Expired => AppError::Unauthorized("access token expired".into()),
                TokenError::Invalid => AppError::Unauthorized("invalid access token".into()),
            })?;
        if state.revocations.is_revoked(&claims.jti, &claims.fam) {
            return Err(AppError::Unauthorized("access token was revoked".into()));
        }
        Ok(Principal {
            user_id: claims.sub.clone(),
            role: claims.role,
            claims,
            token: token.into(),
        })
    }

    /// Like [`Principal::from_token`], but also accepts a display token (for
    /// WebSocket connections only: REST routes never call this).
    ///
    /// # Errors
    /// [`AppError::Unauthorized`] saying why.
    pub fn from_socket_token(state: &AppState, token: &str) -> Result<Principal, AppError> {
        let access = Principal::from_token(state, token);
        if access.is_ok() {
            return access;
        }
        match state.tokens.verify(token, TokenKind::Display) {
            Ok(claims) if !state.revocations.is_revoked(&claims.jti, &claims.fam) => {
                Ok(Principal {
                    user_id: claims.sub.clone(),
                    role: Role::Patient,
                    claims,
                    token: token.into(),
                })
            }
            _ => access,
        }
    }

    /// For a display token: the one board it may watch.
    pub fn display_board(&self) -> Option<&medrelay_protocol::ProviderId> {
        if self.claims.typ == TokenKind::Display {
            self.claims.board.as_ref()
        } else {
            None
        }
    }

    /// Passes only the given roles.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] for any other role.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the role {}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
///
/// # Errors
/// [`AppError::Unauthorized`] when the header is present but not a bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("malformed Authorization header".into()))?;
    bearer_token(value).map(Some)
}

/// The token of an `Authorization` value `Bearer <token>` (HTTP or NATS).
///
/// # Errors
/// [`AppError::Unauthorized`] for any other scheme or an empty token.
pub fn bearer_token(value: &str) -> Result<&str, AppError> {
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AppError::Unauthorized(
            "Authorization must be \"Bearer <token>\"".into(),
        )),
    }
}

impl FromRequestParts<std::sync::Arc<AppState>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &std::sync::Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?
            .ok_or_else(|| AppError::Unauthorized("this needs a bearer token".into()))?;
        let principal = Principal::from_token(state, token)?;
        state
            .limits
            .check_user(&principal.user_id)
            .map_err(AppError::RateLimited)?;
        Ok(principal)
    }
}

/// A [`Principal`] when the request carries a token, `None` when it carries none.
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<std::sync::Arc<AppState>> for MaybePrincipal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &std::sync::Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if bearer(&parts.headers)?.is_none() {
            return Ok(MaybePrincipal(None));
        }
        Principal::from_request_parts(parts, state)
            .await
            .map(|p| MaybePrincipal(Some(p)))
    }
}
