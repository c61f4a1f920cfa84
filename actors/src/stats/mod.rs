//! Analytics figures, kept as sums per (doctor or author, clinic day) in
//! the same transaction as the change that moves them (see `store::stats`):
//! [`appointments`] per doctor, [`records`] per author of medical records.
//!
//! Each figure is a function of one record as it stands: a change tallies
//! the record's figures after it minus its figures before it. The sums are
//! therefore exactly what a recount of the records gives ([`rebuild`]
//! recounts them), and a change that does not move a figure writes nothing.
//!
//! Days are the clinic's (`analytics.time_zone`, kept with the store as
//! [`Store::stats_zone`](crate::store::Store::stats_zone)): a store opened with another zone recounts at
//! start.

pub mod appointments;
pub mod rebuild;
pub mod records;
#[cfg(test)]
mod tests;

pub use crate::store::Figures;
