//! medrelay: a clinic's live state behind HTTP, WebSocket and NATS.
//!
//! This crate is the edge: it turns HTTP requests and WebSocket frames into
//! the typed messages of `medrelay-actors`, and their results back into the
//! wire contract of `medrelay-protocol`.
//!
//! # Layout
//! - [`config`]: layered settings (defaults, file, `MEDRELAY__*` environment).
//! - [`telemetry`]: logs and Prometheus metrics.
//! - [`state`]: [`state::AppState`], what every surface and task shares.
//! - [`app`]: building, running and gracefully stopping the server.
//! - [`listener`] and [`tls`]: the listening socket, plain or HTTPS with a
//!   certificate read again when its files change.
//! - [`auth`]: tokens, passwords, lock-out, the authenticated [`auth::Principal`].
//! - [`error`]: [`error::AppError`], the one error of every operation, with its wire code.
//! - [`ratelimit`]: per-IP and per-user request limits, shared by every surface.
//! - [`http`]: routes, middleware and the JSON error contract.
//! - [`card_gateway`]: card payments through Stripe's PaymentIntents API, and
//!   its signed webhook events.
//! - [`ical`]: the iCalendar (RFC 5545) writer of feeds and e-mail invitations.
//! - [`service`]: the application layer: each domain's operations, called by
//!   REST, WebSocket and NATS alike.
//! - [`nats`]: the NATS bridge (outbox publisher, commands, board replicas).
//! - [`delivery`]: sending notifications: channel workers, providers, the
//!   reminder scheduler. (What a notification record is lives in
//!   `medrelay_actors::notify`.)
//! - [`ws`]: the WebSocket gateway (protocol v1).
//! - [`pages`]: the browser pages (live board, patient booking, dashboard),
//!   compiled in.
//! - [`admin`]: offline administration (bootstrap the first admin).
//! - `demo` (feature `demo`, on by default): `serve --demo`, a seeded demo
//!   clinic made through the public HTTP API, with optional live traffic.

pub mod admin;
pub mod app;
pub mod auth;
pub mod card_gateway;
pub mod config;
pub mod delivery;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod http;
pub mod ical;
pub mod listener;
pub mod nats;
pub mod pages;
pub mod ratelimit;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod ws;
