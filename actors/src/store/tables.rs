//! Every redb table medrelay keeps, in one place.
//!
//! Record tables map a string key to a versioned value ([`super::Record`]);
//! the writer's own tables hold channel history, the outbox and counters.

use redb::TableDefinition;

/// Record tables: string key → versioned JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// user id → account (credentials, role, profile ids).
    Users,
    /// lower-cased username → user id (uniqueness index).
    Usernames,
    /// patient id → patient profile, its fields sealed.
    Patients,
    /// provider id → provider (doctor) profile.
    Providers,
    /// refresh-token id → its family, owner, expiry and whether it was used.
    RefreshTokens,
    /// revoked access-token id → its expiry.
    RevokedTokens,
    /// revoked session (refresh family) id → when the revocation may be forgotten.
    RevokedFamilies,
    /// appointment id → appointment.
    Appointments,
    /// `provider/appointment` → (index of a doctor's appointments).
    ProviderAppointments,
    /// `patient/appointment` → (index of a patient's appointments).
    PatientAppointments,
    /// `patient/<5-minute cell>` → the appointment holding it; a patient's
    /// overlapping bookings collide here.
    PatientCells,
    /// `provider/<5-minute cell>` → the appointment holding it; a doctor's
    /// overlapping bookings collide here, whichever actor wrote them.
    ProviderCells,
    /// notification id → its delivery record.
    Notifications,
    /// notification id → (deliveries not yet final; replayed at start-up).
    NotificationQueue,
    /// `<due ms, 13 digits>/<appointment>/<kind>` → a reminder or notice to
    /// fire; the key order is the firing order.
    Reminders,
    /// appointment id → the keys of its pending reminders.
    AppointmentReminders,
    /// user id → notification preferences.
    NotificationPrefs,
    /// `<user>/<device token>` → a registered push device.
    Devices,
    /// patient id → how far the patient's devices acknowledged in-app
    /// notifications (a seq of `patient:<id>`).
    SessionAcks,
    /// Scratch table used by benchmarks and store tests.
    Scratch,
    /// Blind indexes of patient profiles (see [`crate::patients`]).
    PatientLookup,
    /// record id → a medical record, its clinical fields sealed.
    MedicalRecords,
    /// `<record>/<version, 10 digits>` → one version of a medical record.
    RecordVersions,
    /// `<patient>/<record>` → (index of a patient's medical records).
    PatientRecords,
    /// SHA-256 of an invitation token → the invitation.
    Invites,
    /// `<patient>/<version, 10 digits>` → a version of their medical history.
    HistoryVersions,
    /// patient id → their billing account.
    BillingAccounts,
    /// bill id → a bill, its service lines sealed.
    Bills,
    /// `<bill>/<revision, 10 digits>` → the bill as one change left it.
    BillRevisions,
    /// `<patient>/<bill>` → (index of a patient's bills).
    PatientBills,
    /// claim id → an insurance claim.
    Claims,
    /// `<claim>/<version, 10 digits>` → the claim as one change left it.
    ClaimVersions,
    /// payment id → a payment.
    Payments,
    /// `<patient>/<payment>` → (index of a patient's payments).
    PatientPayments,
    /// payment id → (payments not yet final; settled again at start-up).
    PaymentQueue,
    /// `<user>/<key>` → a request's idempotency key and its kept answer.
    IdempotencyKeys,
    /// `INV-000001`, ... → an issued invoice, its body sealed.
    Invoices,
    /// card gateway event id → (an event acted on, kept 30 days).
    GatewayEvents,
    /// `<due ms, 13 digits>/<bill, payment or claim>/<change>` → a billing
    /// notice to send the patient.
    BillingNotices,
    /// hex SHA-256 of a calendar feed's token → the feed (owner, settings).
    CalendarFeeds,
    /// user id → the key of their calendar feed.
    CalendarFeedLinks,
    /// `<due ms, 13 digits>/<provider>/<id>` → a notice to a doctor.
    DoctorNotices,
    /// provider id → the doctor's daily agenda plan.
    DoctorAgendas,
    /// `<provider>/<hold>` → a slot hold.
    SlotHolds,
    /// `<patient>/<hold>` → the patient's hold (for their limit).
    PatientHolds,
    /// `<provider>/<entry>` → a waitlist entry, in the order joined.
    Waitlist,
    /// `<due ms, 13 digits>/<hold>` → an offer to tell its patient of.
    OfferNotices,
    /// `<due ms, 13 digits>/<appointment>/b` → a booking to confirm.
    BookingConfirmations,
    /// `<table>/<key>/<ms, 13 digits>` → a row that could not be read, set aside.
    SetAside,
}

impl Table {
    /// All record tables; each is created when the store opens.
    pub const ALL: [Table; 49] = [
        Table::Users,
        Table::Usernames,
        Table::Patients,
        Table::Providers,
        Table::RefreshTokens,
        Table::RevokedTokens,
        Table::RevokedFamilies,
        Table::Appointments,
        Table::ProviderAppointments,
        Table::PatientAppointments,
        Table::PatientCells,
        Table::ProviderCells,
        Table::Notifications,
        Table::NotificationQueue,
        Table::Reminders,
        Table::AppointmentReminders,
        Table::NotificationPrefs,
        Table::Devices,
        Table::SessionAcks,
        Table::Scratch,
        Table::PatientLookup,
        Table::MedicalRecords,
        Table::RecordVersions,
        Table::PatientRecords,
        Table::Invites,
        Table::HistoryVersions,
        // New tables go last: the redo log names tables by position.
        Table::BillingAccounts,
        Table::Bills,
        Table::BillRevisions,
        Table::PatientBills,
        Table::Claims,
        Table::ClaimVersions,
        Table::Payments,
        Table::PatientPayments,
        Table::PaymentQueue,
        Table::IdempotencyKeys,
        Table::Invoices,
        Table::GatewayEvents,
        Table::BillingNotices,
        Table::CalendarFeeds,
        Table::CalendarFeedLinks,
        Table::DoctorNotices,
        Table::DoctorAgendas,
        Table::SlotHolds,
        Table::PatientHolds,
        Table::Waitlist,
        Table::OfferNotices,
        Table::BookingConfirmations,
        Table::SetAside,
    ];

    /// The table's position in [`Table::ALL`].
    pub(crate) fn index(self) -> usize {
        Table::ALL
            .iter()
            .position(|t| *t == self)
            .expect("every Table is in Table::ALL")
    }

    /// The table's name in the redb file.
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Usernames => "usernames",
            Table::Patients => "patients",
            Table::Providers => "providers",
            Table::RefreshTokens => "refresh_tokens",
            Table::RevokedTokens => "revoked_tokens",
            Table::RevokedFamilies => "revoked_families",
            Table::Appointments => "appointments",
            Table::ProviderAppointments => "provider_appointments",
            Table::PatientAppointments => "patient_appointments",
            Table::PatientCells => "patient_cells",
            Table::ProviderCells => "provider_cells",
            Table::Notifications => "notifications",
            Table::NotificationQueue => "notification_queue",
            Table::Reminders => "reminders",
            Table::AppointmentReminders => "appointment_reminders",
            Table::NotificationPrefs => "notification_prefs",
            Table::Devices => "devices",
            Table::SessionAcks => "session_acks",
            Table::Scratch => "scratch",
            Table::PatientLookup => "patient_lookup",
            Table::MedicalRecords => "medical_records",
            Table::RecordVersions => "record_versions",
            Table::PatientRecords => "patient_records",
            Table::Invites => "invites",
            Table::HistoryVersions => "history_versions",
            Table::BillingAccounts => "billing_accounts",
            Table::Bills => "bills",
            Table::BillRevisions => "bill_revisions",
            Table::PatientBills => "patient_bills",
            Table::Claims => "claims",
            Table::ClaimVersions => "claim_versions",
            Table::Payments => "payments",
            Table::PatientPayments => "patient_payments",
            Table::PaymentQueue => "payment_queue",
            Table::IdempotencyKeys => "idempotency_keys",
            Table::Invoices => "invoices",
            Table::GatewayEvents => "gateway_events",
            Table::BillingNotices => "billing_notices",
            Table::CalendarFeeds => "calendar_feeds",
            Table::CalendarFeedLinks => "calendar_feed_links",
            Table::DoctorNotices => "doctor_notices",
            Table::DoctorAgendas => "doctor_agendas",
            Table::SlotHolds => "slot_holds",
            Table::PatientHolds => "patient_holds",
            Table::Waitlist => "waitlist",
            Table::OfferNotices => "offer_notices",
            Table::BookingConfirmations => "booking_confirmations",
            Table::SetAside => "set_aside",
        }
    }

    pub(crate) fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.name())
    }
}

/// (channel name, seq) → stored event. Only the newest `channel_history`
/// events of each channel are kept.
pub(crate) const CHANNEL_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("channel_events");

/// channel name → the seq of its newest event.
pub(crate) const CHANNEL_HEADS: TableDefinition<&str, u64> = TableDefinition::new("channel_heads");

/// Global outbox position → event envelope, written in the transaction of the
/// change that caused it.
pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Audit sequence number → SHA-256 chain hash (32 bytes) followed by the
/// entry's JSON. Append-only: nothing deletes or changes an entry.
pub(crate) const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");

/// (patient id, audit sequence number) → (): a patient's entries.
pub(crate) const AUDIT_BY_PATIENT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("audit_by_patient");

/// Named counters (`outbox_head`, `outbox_acked`, `schema_version`, and those
/// set through [`super::WriteBatch::set_counter`]).
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

pub(crate) const OUTBOX_HEAD: &str = "outbox_head";
pub(crate) const OUTBOX_ACKED: &str = "outbox_acked";
pub(crate) const SCHEMA_VERSION: &str = "schema_version";
/// The number of the last write group redb holds (see `store::wal`).
pub(crate) const WAL_APPLIED: &str = "wal_applied";
