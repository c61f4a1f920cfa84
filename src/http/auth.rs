//! `/api/auth/*`: sign-up, login, token refresh, logout and `me` (seed:
//! user-management). Each route parses, calls [`crate::service::account`],
//! and renders.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::auth::Principal;
use crate::auth::principal::MaybePrincipal;
use crate::error::AppError;
use crate::service::account;
use crate::state::AppState;
use medrelay_protocol::account::{
    LoginRequest, LogoutRequest, LogoutResponse, MeResponse, RefreshRequest, SignupRequest,
    SignupResponse, TokenResponse,
};

/// `/api/auth/*`
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Registers a user and the profile for its role.
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, body = SignupResponse),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security((), ("bearer" = [])))]
async fn signup(
    State(state): State<Arc<AppState>>,
    MaybePrincipal(caller): MaybePrincipal,
    origin: crate::service::audit::Origin,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<SignupResponse>), AppError> {
    let created = account::signup(&state, caller.as_ref(), &origin, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Exchanges a username and password for tokens.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn login(
    State(state): State<Arc<AppState>>,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<TokenResponse>, AppError> {
    account::login(&state, req).await.map(axum::Json)
}

/// Rotates a refresh token: returns a new pair; presenting a used refresh
/// token revokes its whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorEnvelope)))]
async fn refresh(
    State(state): State<Arc<AppState>>,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<TokenResponse>, AppError> {
    account::refresh(&state, req).await.map(axum::Json)
}

/// Ends a session: the access token and every refresh token of its session
/// are refused from now on.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 200, body = LogoutResponse), (status = 401, body = ErrorEnvelope)))]
async fn logout(
    State(state): State<Arc<AppState>>,
    Json(req): Json<LogoutRequest>,
) -> Result<axum::Json<LogoutResponse>, AppError> {
    account::logout(&state, req).await.map(axum::Json)
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn me(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<MeResponse>, AppError> {
    account::me(&state, &principal).map(axum::Json)
}
