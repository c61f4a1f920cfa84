//! Account operations: sign-up, login, token refresh, logout and the
//! caller's own account (seed: user-management). The REST routes in
//! `http/auth.rs` call these.

use medrelay_actors::accounts::{
    self, BeginSession, EndSession, NewAccount, NewProfile, RegisterError, RotateRefresh,
    UserRecord,
};
use medrelay_actors::ids::new_id;
use medrelay_protocol::profile::{ContactInfo, MedicalHistory};
use medrelay_protocol::{Email, PatientId, ProviderId, Role, UserId, Username};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::auth::password::PASSWORD_LEN;
use crate::auth::tokens::{TokenError, TokenKind};
use crate::error::AppError;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    /// 3 to 32 letters, digits, `.`, `-`, `_`; case-insensitive.
    #[schema(value_type = String, example = "jdoe", pattern = "^[A-Za-z0-9._-]{3,32}$")]
    username: Username,
    /// At most 254 characters (`Email::parse`).
    #[schema(value_type = String, example = "johndoe@example.com", max_length = 254,
        pattern = "^[^@\\s]{1,64}@[^@\\s.]+(\\.[^@\\s.]+)+$")]
    email: Email,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    /// `patient` (default, open sign-up), `doctor` or `admin` (an admin's token needed).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "patient", pattern = "^(patient|doctor|admin)$")]
    role: Option<Role>,
    /// Full name (patients and doctors); defaults to the username.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: Option<String>,
    /// Date of birth, `YYYY-MM-DD` (patients), not in the future.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "1980-01-01")]
    dob: Option<jiff::civil::Date>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    contact_info: Option<ContactInfo>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    medical_history: Option<MedicalHistory>,
    /// Doctors: specialization.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    specialization: Option<String>,
    /// Doctors: IANA time zone of their availability (default `UTC`).
    #[serde(default)]
    time_zone: Option<String>,
    /// Doctors: the provider id to use (generated when absent).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    provider_id: Option<ProviderId>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = String)]
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    patient_id: Option<PatientId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    provider_id: Option<ProviderId>,
    /// Always `Registered`.
    status: &'static str,
}

const MAX_TEXT: usize = 200;

fn bounded_text(field: &str, value: Option<String>, default: &str) -> Result<String, AppError> {
    let value = value
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| default.to_owned());
    if value.is_empty() || value.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    Ok(value)
}

fn check_password(password: &str) -> Result<(), AppError> {
    if !PASSWORD_LEN.contains(&password.chars().count()) {
        return Err(AppError::invalid(
            "password",
            format!(
                "must be {} to {} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ));
    }
    Ok(())
}

/// Registers an account: a patient by anyone, a doctor or an admin by an
/// admin (`caller`).
///
/// # Errors
/// 401/403 for a role the caller may not create, 422 naming the field, 409
/// for a taken username or provider id.
pub async fn signup(
    state: &AppState,
    caller: Option<&Principal>,
    req: SignupRequest,
) -> Result<SignupResponse, AppError> {
    let role = req.role.unwrap_or(Role::Patient);
    if role != Role::Patient {
        let caller = caller.ok_or_else(|| {
            AppError::Unauthorized(format!("creating a {role} account needs an admin's token"))
        })?;
        caller.require(&[Role::Admin])?;
    }
    check_password(&req.password)?;
    let name = bounded_text("name", req.name, req.username.as_str())?;
    let profile = match role {
        Role::Patient => {
            if let Some(dob) = req.dob
                && dob > jiff::Zoned::now().date()
            {
                return Err(AppError::invalid("dob", "must not be in the future"));
            }
            NewProfile::Patient {
                name,
                dob: req.dob,
                contact_info: req.contact_info.unwrap_or_default(),
                medical_history: req.medical_history.unwrap_or_default(),
            }
        }
        Role::Doctor => {
            let time_zone = req.time_zone.unwrap_or_else(|| "UTC".into());
            jiff::tz::TimeZone::get(&time_zone).map_err(|_| {
                AppError::invalid("timeZone", format!("unknown IANA time zone {time_zone:?}"))
            })?;
            NewProfile::Doctor {
                provider_id: req.provider_id,
                name,
                specialization: bounded_text(
                    "specialization",
                    req.specialization,
                    "General practice",
                )?,
                contact_info: req.contact_info.unwrap_or_default(),
                time_zone,
            }
        }
        Role::Admin => NewProfile::Admin,
    };
    let password_hash = state
        .passwords
        .hash(req.password)
        .await
        .map_err(AppError::internal)?;
    let registered = accounts::register(
        &state.store,
        NewAccount {
            username: req.username,
            email: req.email,
            password_hash,
            profile,
        },
    )
    .await
    .map_err(|e| match e {
        RegisterError::UsernameTaken => AppError::Conflict {
            message: "username is already taken".into(),
            field: Some("username".into()),
        },
        RegisterError::ProviderIdTaken => AppError::Conflict {
            message: "providerId is already taken".into(),
            field: Some("providerId".into()),
        },
        RegisterError::Store(e) => AppError::internal(e),
    })?;
    tracing::info!(user = %registered.user_id, role = %registered.role, "account registered");
    Ok(SignupResponse {
        user_id: registered.user_id,
        role: registered.role,
        patient_id: registered.patient_id,
        provider_id: registered.provider_id,
        status: "Registered",
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// As at sign-up (3 to 32 letters, digits, `.`, `-`, `_`); anything else
    /// is refused with 422 before any password is checked.
    #[schema(pattern = "^[A-Za-z0-9._-]{3,32}$")]
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Access token (JWT) for `Authorization: Bearer`.
    token: String,
    /// Exchange at `/api/auth/refresh` for a new pair, once.
    refresh_token: String,
    /// Always `Authenticated`.
    status: &'static str,
    /// Seconds until `token` expires.
    expires_in: i64,
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = String)]
    role: Role,
}

fn token_pair(
    state: &AppState,
    user: &UserId,
    role: Role,
    family: &str,
) -> Result<(TokenResponse, String, i64), AppError> {
    let access = state
        .tokens
        .issue(user, role, family, TokenKind::Access)
        .map_err(AppError::internal)?;
    let refresh = state
        .tokens
        .issue(user, role, family, TokenKind::Refresh)
        .map_err(AppError::internal)?;
    let response = TokenResponse {
        expires_in: access.claims.exp - access.claims.iat,
        token: access.token,
        refresh_token: refresh.token,
        status: "Authenticated",
        user_id: user.clone(),
        role,
    };
    Ok((response, refresh.claims.jti, refresh.claims.exp))
}

/// Exchanges a username and password for tokens.
///
/// # Errors
/// 422 for a name no account can have, 429 while the name is locked after
/// failed logins, 401 for a wrong name or password.
pub async fn login(state: &AppState, req: LoginRequest) -> Result<TokenResponse, AppError> {
    // No account can have a name sign-up refuses, so such a login fails
    // before the failed-login table or argon2 is touched: the table is keyed
    // by valid names only, and a flood of made-up ones costs nothing but the
    // request. The rule is public, so saying so leaks nothing.
    let username =
        Username::parse(&req.username).map_err(|e| AppError::invalid("username", e.0))?;
    state
        .lockout
        .check(&username)
        .map_err(AppError::LockedOut)?;
    let user: Option<UserRecord> = accounts::find_by_username(&state.store, &username)?;
    let ok = state
        .passwords
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(AppError::internal)?;
    let Some(user) = user.filter(|_| ok) else {
        if let Some(lock) = state.lockout.failed(&username) {
            tracing::warn!(%username, lock_secs = lock.as_secs(), "login locked after repeated failures");
        }
        return Err(AppError::Unauthorized(
            "invalid username or password".into(),
        ));
    };
    state.lockout.succeeded(&username);
    let family = new_id("ses");
    let (response, refresh_jti, refresh_exp) =
        token_pair(state, &user.user_id, user.role, &family)?;
    state
        .accounts
        .send(
            user.user_id.as_str(),
            BeginSession {
                family,
                refresh_jti,
                refresh_exp,
            },
        )
        .await?
        .map_err(AppError::from)?;
    tracing::info!(user = %user.user_id, "signed in");
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Rotates a refresh token: a new pair; presenting a used refresh token
/// revokes its whole session.
///
/// # Errors
/// 401 for an expired, invalid, revoked or reused refresh token.
pub async fn refresh(state: &AppState, req: RefreshRequest) -> Result<TokenResponse, AppError> {
    let claims = state
        .tokens
        .verify(&req.refresh_token, TokenKind::Refresh)
        .map_err(|e| match e {
            TokenError::Expired => AppError::Unauthorized("refresh token expired".into()),
            TokenError::Invalid => AppError::Unauthorized("invalid refresh token".into()),
        })?;
    if state.revocations.is_family_revoked(&claims.fam) {
        return Err(AppError::Unauthorized("the session was revoked".into()));
    }
    let (response, new_jti, new_exp) = token_pair(state, &claims.sub, claims.role, &claims.fam)?;
    state
        .accounts
        .send(
            claims.sub.as_str(),
            RotateRefresh {
                presented_jti: claims.jti,
                new_jti,
                new_exp,
            },
        )
        .await?
        .map_err(AppError::from)?;
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The access token to end (its whole session ends with it).
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogoutResponse {
    /// Always `Logged out`.
    status: &'static str,
}

/// Ends the session of an access token: it and every refresh token of its
/// session are refused from now on.
///
/// # Errors
/// 401 for a token that is not a valid, live access token.
pub async fn logout(state: &AppState, req: LogoutRequest) -> Result<LogoutResponse, AppError> {
    let principal = Principal::from_token(state, &req.token)?;
    let claims = principal.claims;
    let family_exp = jiff::Timestamp::now()
        .as_second()
        .saturating_add(state.tokens.refresh_ttl());
    state
        .accounts
        .send(
            claims.sub.as_str(),
            EndSession {
                access_jti: claims.jti,
                access_exp: claims.exp,
                family: claims.fam,
                family_exp,
            },
        )
        .await?
        .map_err(AppError::from)?;
    tracing::info!(user = %claims.sub, "signed out");
    Ok(LogoutResponse {
        status: "Logged out",
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = String)]
    username: Username,
    #[schema(value_type = String)]
    email: Email,
    #[schema(value_type = String)]
    role: Role,
    #[schema(value_type = Option<String>)]
    patient_id: Option<PatientId>,
    #[schema(value_type = Option<String>)]
    provider_id: Option<ProviderId>,
}

/// The caller's own account.
///
/// # Errors
/// 401 when the account no longer exists.
pub fn me(state: &AppState, principal: &Principal) -> Result<MeResponse, AppError> {
    let user = state
        .store
        .get::<UserRecord>(principal.user_id.as_str())?
        .ok_or_else(|| AppError::Unauthorized("the account no longer exists".into()))?;
    Ok(MeResponse {
        user_id: user.user_id,
        username: user.username,
        email: user.email,
        role: user.role,
        patient_id: user.patient_id,
        provider_id: user.provider_id,
    })
}
