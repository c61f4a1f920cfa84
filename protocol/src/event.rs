//! Domain events: what subscribers of a channel are told, in `seq` order.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{PatientId, ProviderId, Role, UserId, Username};
use crate::notification::NotificationCategory;
use crate::schedule::{AppointmentId, AppointmentStatus, SlotTime};

/// One event, tagged by `kind`. Stored as written, so new variants may be
/// added but existing ones keep their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// An account was created (channel `users`).
    UserRegistered {
        /// The new account.
        user_id: UserId,
        /// Its login name.
        username: Username,
        /// Its role.
        role: Role,
        /// When it was created.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// The account signed in and a new session (refresh-token family) began.
    SignedIn {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A session was ended by logout.
    SignedOut {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A session was revoked because its refresh token was presented twice
    /// (a sign that it was stolen).
    SessionRevoked {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A slot is held for a patient until `expiresAt`; nobody else may
    /// book it meanwhile.
    SlotHeld {
        /// The doctor.
        provider_id: ProviderId,
        /// The hold.
        hold_id: String,
        /// The patient it is kept for (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
        /// When the hold lapses.
        #[schemars(with = "String")]
        expires_at: Timestamp,
    },
    /// A hold ended: `booked` (its patient booked the slot), `cancelled`
    /// or `expired` (the slot is free again).
    SlotReleased {
        /// The doctor.
        provider_id: ProviderId,
        /// The hold.
        hold_id: String,
        /// The patient it was kept for (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
        /// Why it ended.
        reason: String,
    },
    /// A freed slot is offered to a waitlisted patient, held for them
    /// until `expiresAt`: booking it with `holdId` accepts it.
    OfferMade {
        /// The doctor.
        provider_id: ProviderId,
        /// The hold keeping the slot.
        hold_id: String,
        /// The patient it is offered to (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
        /// When the offer lapses and passes to the next patient.
        #[schemars(with = "String")]
        expires_at: Timestamp,
    },
    /// An offer was taken: the slot is booked.
    OfferAccepted {
        /// The doctor.
        provider_id: ProviderId,
        /// The hold that kept the slot.
        hold_id: String,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
    },
    /// An offer lapsed unanswered (it passes to the next patient, if any).
    OfferExpired {
        /// The doctor.
        provider_id: ProviderId,
        /// The hold that kept the slot.
        hold_id: String,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
    },
    /// A slot was booked.
    AppointmentBooked {
        /// The appointment.
        appointment_id: AppointmentId,
        /// The doctor.
        provider_id: ProviderId,
        /// The patient; absent on boards shown to patients and displays.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
    },
    /// An appointment moved; `from` is free again and `to` is taken.
    AppointmentRescheduled {
        /// The appointment.
        appointment_id: AppointmentId,
        /// The doctor.
        provider_id: ProviderId,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot it left.
        from: SlotTime,
        /// The slot it took.
        to: SlotTime,
    },
    /// An appointment was cancelled; its slot is free again.
    AppointmentCancelled {
        /// The appointment.
        appointment_id: AppointmentId,
        /// The doctor.
        provider_id: ProviderId,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot it held.
        slot: SlotTime,
        /// When it was cancelled, so that a consumer of the stream tells a
        /// late cancellation (under 24 h before the start) from an early
        /// one however late it reads the event (absent from older events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        cancelled_at: Option<Timestamp>,
    },
    /// An appointment's status changed (checked in, completed, no-show).
    AppointmentStatusChanged {
        /// The appointment.
        appointment_id: AppointmentId,
        /// The doctor.
        provider_id: ProviderId,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The slot.
        slot: SlotTime,
        /// The new status.
        status: AppointmentStatus,
    },
    /// The doctor's hours changed so that an appointment no longer fits them
    /// (`needsReschedule: true`, with the next free slots to offer), or fit
    /// again (`false`). The appointment keeps its time either way; only the
    /// patient moves it.
    AppointmentNeedsReschedule {
        /// The appointment.
        appointment_id: AppointmentId,
        /// The doctor.
        provider_id: ProviderId,
        /// The patient (see `AppointmentBooked`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<PatientId>,
        /// The time it holds.
        slot: SlotTime,
        /// Whether it must be moved.
        needs_reschedule: bool,
        /// The doctor's next free slots at or after it, under the new hours.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suggestions: Vec<SlotTime>,
    },
    /// A doctor's working hours, slot length or time zone changed; boards
    /// should fetch a fresh snapshot.
    AvailabilityChanged {
        /// The doctor.
        provider_id: ProviderId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A patient was registered (at the desk or by sign-up); channel `patients`.
    PatientRegistered {
        /// The patient.
        patient_id: PatientId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A patient's profile changed (or was restored); which fields, never
    /// their values.
    PatientUpdated {
        /// The patient.
        patient_id: PatientId,
        /// The fields that changed (`name`, `contactInfo`, `restored`, ...).
        fields: Vec<String>,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A patient was deleted (hidden; purged after the retention).
    PatientDeleted {
        /// The patient.
        patient_id: PatientId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A medical record was written.
    RecordCreated(RecordChange),
    /// A medical record changed.
    RecordUpdated(RecordChange),
    /// A medical record was deleted (a tombstone).
    RecordDeleted(RecordChange),
    /// Today's headline figures changed (channel `analytics`; at most one a
    /// second).
    AnalyticsToday(crate::analytics::Headline),
    /// A bill was written, changed, paid, refunded or voided (channel
    /// `billing:<patientId>`). Amounts are strings with two decimals.
    BillChanged {
        /// The bill.
        bill_id: crate::ids::BillId,
        /// Its patient.
        patient_id: PatientId,
        /// `created`, `updated`, `paid`, `refunded` or `voided`.
        change: String,
        /// Its state now.
        status: crate::billing::BillStatus,
        /// Its total.
        #[serde(with = "crate::money::as_text")]
        #[schemars(with = "String")]
        total_amount: crate::money::Money,
        /// What is still owed on it.
        #[serde(with = "crate::money::as_text")]
        #[schemars(with = "String")]
        balance_due: crate::money::Money,
        /// Its revision.
        revision: u32,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// An insurance claim moved (channel `billing:<patientId>`).
    ClaimChanged {
        /// The claim.
        claim_id: crate::ids::ClaimId,
        /// Its bill.
        bill_id: crate::ids::BillId,
        /// Its patient.
        patient_id: PatientId,
        /// Its state now.
        status: crate::claim::ClaimStatus,
        /// What the insurer approved, once decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        approved_amount: Option<String>,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A payment was made, settled or refunded (channel `billing:<patientId>`).
    PaymentChanged {
        /// The payment.
        payment_id: crate::ids::PaymentId,
        /// Its patient.
        patient_id: PatientId,
        /// Its state now.
        status: crate::payment::PaymentStatus,
        /// What was paid.
        #[serde(with = "crate::money::as_text")]
        #[schemars(with = "String")]
        amount: crate::money::Money,
        /// What was given back.
        #[serde(with = "crate::money::as_text")]
        #[schemars(with = "String")]
        refunded: crate::money::Money,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// An in-app notification for a patient (channel `patient:<id>`).
    Notification {
        /// The notification's id (its delivery report).
        notification_id: String,
        /// What it is about.
        category: NotificationCategory,
        /// The appointment it concerns, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        appointment_id: Option<AppointmentId>,
        /// A short title.
        title: String,
        /// The text.
        body: String,
        /// When it was sent.
        #[schemars(with = "String")]
        at: Timestamp,
    },
}

/// What a `record_*` event says: ids and field names, never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordChange {
    /// The record.
    pub record_id: crate::ids::RecordId,
    /// Its patient.
    pub patient_id: PatientId,
    /// The fields that changed.
    pub fields: Vec<String>,
    /// When.
    #[schemars(with = "String")]
    pub at: Timestamp,
}

impl Event {
    /// The text fields that may name a patient or describe their care (an
    /// in-app notification's title and body), with the id of what they
    /// belong to; `None` for events that carry ids and field names only.
    /// Whoever keeps events at rest seals these.
    pub fn phi_text_mut(&mut self) -> Option<(&str, [(&'static str, &mut String); 2])> {
        match self {
            Event::Notification {
                notification_id,
                title,
                body,
                ..
            } => Some((notification_id.as_str(), [("title", title), ("body", body)])),
            _ => None,
        }
    }

    /// Whether [`Event::phi_text_mut`] has fields to give (checked without
    /// a copy, on the store writer's path for every event).
    pub fn carries_phi_text(&self) -> bool {
        matches!(self, Event::Notification { .. })
    }

    /// The event's `kind` tag, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::UserRegistered { .. } => "user_registered",
            Event::SignedIn { .. } => "signed_in",
            Event::SignedOut { .. } => "signed_out",
            Event::SessionRevoked { .. } => "session_revoked",
            Event::SlotHeld { .. } => "slot_held",
            Event::SlotReleased { .. } => "slot_released",
            Event::OfferMade { .. } => "offer_made",
            Event::OfferAccepted { .. } => "offer_accepted",
            Event::OfferExpired { .. } => "offer_expired",
            Event::AppointmentBooked { .. } => "appointment_booked",
            Event::AppointmentRescheduled { .. } => "appointment_rescheduled",
            Event::AppointmentCancelled { .. } => "appointment_cancelled",
            Event::AppointmentStatusChanged { .. } => "appointment_status_changed",
            Event::AppointmentNeedsReschedule { .. } => "appointment_needs_reschedule",
            Event::AvailabilityChanged { .. } => "availability_changed",
            Event::Notification { .. } => "notification",
            Event::BillChanged { .. } => "bill_changed",
            Event::ClaimChanged { .. } => "claim_changed",
            Event::PaymentChanged { .. } => "payment_changed",
            Event::PatientRegistered { .. } => "patient_registered",
            Event::PatientUpdated { .. } => "patient_updated",
            Event::PatientDeleted { .. } => "patient_deleted",
            Event::RecordCreated(_) => "record_created",
            Event::RecordUpdated(_) => "record_updated",
            Event::RecordDeleted(_) => "record_deleted",
            Event::AnalyticsToday(_) => "analytics_today",
        }
    }

    /// The event as someone who may not know the patient sees it: the same
    /// event with the patient's identity removed. `None` when nothing needs
    /// hiding.
    pub fn redacted(&self) -> Option<Event> {
        let mut copy = self.clone();
        let patient = match &mut copy {
            Event::AppointmentBooked { patient_id, .. }
            | Event::AppointmentRescheduled { patient_id, .. }
            | Event::AppointmentCancelled { patient_id, .. }
            | Event::AppointmentStatusChanged { patient_id, .. }
            | Event::AppointmentNeedsReschedule { patient_id, .. }
            | Event::SlotHeld { patient_id, .. }
            | Event::SlotReleased { patient_id, .. }
            | Event::OfferMade { patient_id, .. }
            | Event::OfferAccepted { patient_id, .. }
            | Event::OfferExpired { patient_id, .. } => patient_id,
            _ => return None,
        };
        patient.take()?;
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_kind_tag() {
        let event = Event::SignedIn {
            user_id: UserId::parse("usr_1").unwrap(),
            at: Timestamp::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "signed_in");
        assert_eq!(event.kind(), "signed_in");
        assert_eq!(json["userId"], "usr_1");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }
}
