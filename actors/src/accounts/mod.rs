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
//!
//! # Layout
//! - `records`: what the store keeps for an account.
//! - `register`: sign-up.
//! - `revocations`: revoked tokens and sessions, in memory.
//! - `actor`: `AccountActor` and its messages.

mod actor;
mod records;
mod register;
mod revocations;

pub use actor::*;
pub use records::*;
pub use register::*;
pub use revocations::*;

#[cfg(test)]
mod tests;
