//! medrelay's domain: supervised actors and the durable store they write through.
//!
//! Nothing here knows HTTP, WebSocket or NATS; the gateway (`src/`) turns
//! wire messages into the typed messages defined here.
//!
//! # Layout
//! - [`store`]: the redb file, its tables, the group-commit writer and the redo log.
//! - [`hub`]: in-memory fan-out of committed events to live subscribers.
//! - [`system`]: the actix system, the lazy actor registry, panic-safe supervision,
//!   and the keyed-actor template ([`system::keyed`]).
//! - [`accounts`]: users, profiles, sessions, revocations; `AccountActor`.
//! - [`billing`]: billing accounts and bills, their lines sealed, every
//!   revision kept.
//! - [`calendar`]: calendar feed tokens, and the appointments a feed shows.
//! - [`audit`]: audit entries (FHIR AuditEvent fields) for every access to
//!   patient data; the store chains them.
//! - [`medical`]: medical records, sealed, with every version kept.
//! - [`patients`]: patient profiles, sealed at rest, and their blind indexes.
//! - [`rekey`]: re-sealing values after a key rotation, in the background.
//! - [`phi`]: the [`phi::Vault`] that seals health data, and blind indexes.
//! - [`schedule`]: doctors' hours, appointments; `ScheduleActor`.
//! - [`notify`]: notification records, preferences, devices, durable reminders,
//!   and the reminder policy ([`notify::policy`]).
//! - [`stats`]: analytics figures, summed per doctor and clinic day as
//!   changes commit, and their recount.
//! - [`session`]: `PatientSession`, one per connected patient: their sockets,
//!   unacknowledged in-app notifications, presence.
//! - [`channels`]: who may subscribe to a channel, and its snapshot.
//! - [`idempotency`]: the kept answers of requests that move money.
//! - [`ids`]: generated ids and random secrets.
//! - [`fault`]: [`fault::Fault`], the cause of a storage failure, kept whole.

#![warn(missing_docs)]

pub mod accounts;
pub mod audit;
pub mod billing;
pub mod calendar;
pub mod channels;
pub mod fault;
pub mod hub;
pub mod idempotency;
pub mod ids;
pub mod medical;
pub mod notify;
pub mod patients;
pub mod phi;
pub mod rekey;
pub mod schedule;
pub mod session;
pub mod stats;
pub mod store;
pub mod system;
#[cfg(test)]
mod test_support;
