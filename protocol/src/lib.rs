//! medrelay's wire contract: the types every client speaks, and nothing else.
//!
//! No I/O and no actors live here. Every value that crosses the wire is parsed
//! into a type that cannot hold an invalid value, so the server never handles
//! a raw, unchecked string.
//!
//! # Layout
//! - [`account`]: the bodies of sign-up, login, refresh, logout and `me`.
//! - [`analytics`]: the clinic's reports.
//! - [`audit`]: audit entries and a patient's access log.
//! - [`billing`]: bills and billing accounts.
//! - [`calendar`]: calendar feeds (private iCalendar URLs).
//! - [`claim`]: insurance claims and their lifecycle.
//! - [`money`]: [`Money`], exact amounts read and written without floats.
//! - [`ids`]: identifiers and account values that validate when parsed
//!   ([`ids::UserId`], [`ids::ProviderId`], [`ids::Username`], [`ids::Email`], ...).
//! - [`error`]: the error codes shared by REST, WebSocket and (later) NATS replies.
//! - [`channel`]: names of live channels (`users`, `user:<id>`, ...).
//! - [`event`]: domain events pushed to channel subscribers.
//! - [`profile`]: contact details, address and medical history (seed shapes).
//! - [`patient`]: the bodies of registering, changing and listing patients.
//! - [`provider`]: doctors' profiles and hours, the directory, display tokens.
//! - [`record`]: medical records, their bodies and their history.
//! - [`report`]: notification delivery reports and statistics.
//! - [`schedule`]: availability, slots, appointments and their command bodies.
//! - [`nats`]: NATS subjects and the published event envelope.
//! - [`invoice`]: invoices in the seed's shape.
//! - [`payment`]: payments, refunds and their states.
//! - [`notification`]: notification channels, statuses and preferences.
//! - [`ws`]: WebSocket protocol v1 frames: client commands, replies, pushed events.

#![warn(missing_docs)]

pub mod account;
pub mod analytics;
pub mod audit;
pub mod billing;
pub mod calendar;
pub mod channel;
pub mod claim;
pub mod error;
pub mod event;
pub mod hold;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod nats;
pub mod notification;
pub mod patient;
pub mod payment;
pub mod profile;
pub mod provider;
pub mod record;
pub mod report;
pub mod schedule;
pub mod waitlist;
pub mod ws;

pub use channel::Channel;
pub use error::{ErrorBody, ErrorCode};
pub use event::Event;
pub use ids::{
    BillId, ClaimId, Email, PatientId, PaymentId, ProviderId, RecordId, Role, UserId, Username,
};
pub use money::Money;

/// The WebSocket subprotocol a client must offer (`Sec-WebSocket-Protocol`).
pub const WS_SUBPROTOCOL: &str = "medrelay.v1";
