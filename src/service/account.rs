//! Account operations: sign-up, login, token refresh, logout and the
//! caller's own account (seed: user-management). The REST routes in
//! `http/auth.rs` call these.

use medrelay_actors::accounts::{
    self, BeginSession, EndSession, NewAccount, NewProfile, RegisterError, RotateRefresh,
    UserRecord,
};
use medrelay_actors::audit::{Action, Agent};
use medrelay_actors::ids::new_id;
use medrelay_actors::patients::StoredPatient;
use medrelay_actors::patients::invites;
use medrelay_protocol::account::{
    LoginRequest, LogoutRequest, LogoutResponse, MeResponse, RefreshRequest, SignupRequest,
    SignupResponse, TokenResponse,
};
use medrelay_protocol::{Email, Role, UserId, Username};

use crate::auth::Principal;
use crate::auth::password::PASSWORD_LEN;
use crate::auth::tokens::{TokenError, TokenKind};
use crate::error::AppError;
use crate::service::audit::{Origin, entity, entry_by};
use crate::state::AppState;

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
    origin: &Origin,
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
    if let Some(token) = &req.invite_token {
        let sent = [
            ("role", req.role.is_some_and(|r| r != Role::Patient)),
            ("name", req.name.is_some()),
            ("dob", req.dob.is_some()),
            ("contactInfo", req.contact_info.is_some()),
            ("medicalHistory", req.medical_history.is_some()),
        ];
        if let Some((field, _)) = sent.iter().find(|(_, sent)| *sent) {
            return Err(AppError::invalid(
                field,
                "an invited patient's record already holds this; sign up without it",
            ));
        }
        let profile = claim(state, token, origin)?;
        return finish(state, req.username, req.email, req.password, profile).await;
    }
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
    finish(state, req.username, req.email, req.password, profile).await
}

/// The profile an invitation claims, with the audit entry of the claim (a
/// change to the patient's record: it gains a login).
fn claim(state: &AppState, token: &str, origin: &Origin) -> Result<NewProfile, AppError> {
    let bad = |e: &dyn std::fmt::Display| AppError::invalid("inviteToken", e.to_string());
    let (invite_key, invite) =
        invites::usable(&state.store, token, jiff::Timestamp::now())?.map_err(|e| bad(&e))?;
    let patient = state
        .store
        .get::<StoredPatient>(invite.patient_id.as_str())?
        .filter(|p| p.user_id.is_none() && p.deleted_at.is_none())
        .ok_or_else(|| bad(&"the invited patient is gone or has a login already"))?;
    let id = &patient.patient_id;
    let mut about = entity("Patient", Some(id.as_str()), vec![id.clone()]);
    about.detail = Some("login claimed with an invitation".into());
    let agent = Agent {
        role: Some(Role::Patient),
        ..Agent::default()
    };
    let entry = entry_by(agent, origin, Action::U, about);
    Ok(NewProfile::Claim {
        invite_key,
        invite,
        patient: Box::new(patient),
        audit: serde_json::to_vec(&entry).map_err(AppError::internal)?,
    })
}

/// Hashes the password and writes the account with its profile.
async fn finish(
    state: &AppState,
    username: Username,
    email: Email,
    password: String,
    profile: NewProfile,
) -> Result<SignupResponse, AppError> {
    let password_hash = state
        .passwords
        .hash(password)
        .await
        .map_err(AppError::internal)?;
    let registered = accounts::register(
        &state.store,
        &state.vault,
        NewAccount {
            username,
            email,
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
        RegisterError::InviteSpent => AppError::invalid("inviteToken", e.to_string()),
        RegisterError::Store(e) => AppError::internal(e),
    })?;
    tracing::info!(user = %registered.user_id, role = %registered.role, "account registered");
    if let Some(provider) = &registered.provider_id {
        state.notifier.replan_agenda(provider).await;
    }
    Ok(SignupResponse {
        user_id: registered.user_id,
        role: registered.role,
        patient_id: registered.patient_id,
        provider_id: registered.provider_id,
        status: "Registered",
    })
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
    if let Some(patient) = &user.patient_id
        && state
            .store
            .get::<StoredPatient>(patient.as_str())?
            .is_some_and(|p| p.deleted_at.is_some())
    {
        return Err(AppError::Forbidden(
            "this account's patient record was deleted; ask the clinic".into(),
        ));
    }
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
