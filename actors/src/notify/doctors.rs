//! Notices to doctors: durable like patients' notices, fired by the same
//! scheduler, keyed by when they are due.

use jiff::Timestamp;
use medrelay_protocol::ProviderId;
use medrelay_protocol::schedule::AppointmentId;
use serde::{Deserialize, Serialize};

use crate::store::{Record, Table, WriteBatch};

/// What a doctor is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoctorNoticeKind {
    /// Their hours changed and these appointments no longer fit them (the
    /// patients were asked to move them).
    NeedsReschedule,
}

/// A notice to a doctor (table `doctor_notices`, keyed
/// `<due ms, 13 digits>/<provider>/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorNotice {
    /// The doctor.
    pub provider_id: ProviderId,
    /// What it says.
    pub kind: DoctorNoticeKind,
    /// The appointments it lists, by start.
    pub appointments: Vec<AppointmentId>,
}

impl Record for DoctorNotice {
    const TABLE: Table = Table::DoctorNotices;
    const VERSION: u16 = 1;
}

/// Adds a notice due at `now` to `batch`.
pub fn notify_doctor(batch: &mut WriteBatch, now: Timestamp, notice: &DoctorNotice) {
    let key = format!(
        "{:013}/{}/{}",
        now.as_millisecond().max(0),
        notice.provider_id,
        crate::ids::new_id("dn")
    );
    batch.put(key, notice);
}
