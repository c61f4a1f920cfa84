//! Who is asking: tokens, passwords, login lock-out, and the [`Principal`]
//! every protected route and WebSocket command is checked against.
//!
//! # Layout
//! - [`tokens`]: JWT access and refresh tokens (HS256, secret in the data folder).
//! - [`password`]: argon2 hashing on the blocking pool, with bounded concurrency.
//! - [`lockout`]: failed-login counting per username.
//! - [`principal`]: the authenticated caller, as an axum extractor.

pub mod lockout;
pub mod password;
pub mod principal;
pub mod tokens;

pub use principal::Principal;
