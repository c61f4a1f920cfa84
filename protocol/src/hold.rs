//! Slot holds: a slot kept for one patient for a few minutes while they
//! fill in a booking form (`POST /api/providers/{id}/holds`, the `hold`
//! command); a booking quoting the hold takes it.

use jiff::Timestamp;
use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{PatientId, ProviderId};
use crate::schedule::{ClockTime, SlotTime};

/// Hold a slot for a few minutes (`POST /api/providers/{id}/holds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldSlot {
    /// The patient (a patient's own when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub patient_id: Option<PatientId>,
    /// The date in the doctor's time zone.
    #[schemars(with = "String")]
    #[schema(value_type = String, format = Date)]
    pub appointment_date: Date,
    /// The slot's start in the doctor's time zone, `HH:MM`.
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time_slot: ClockTime,
}

/// A slot hold, as `POST /api/providers/{id}/holds` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotHold {
    /// Its id: pass it as `holdId` when booking.
    pub hold_id: String,
    /// The doctor.
    #[schema(value_type = String)]
    pub provider_id: ProviderId,
    /// The patient it is kept for.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The slot.
    pub slot: SlotTime,
    /// When it lapses (UTC).
    #[schemars(with = "String")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}
