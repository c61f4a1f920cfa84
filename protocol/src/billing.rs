//! Bills and billing accounts as the REST contract shows them (seed:
//! healthcare-api section 3; patient-management's `GetBillingAccount`).
//! Every amount is [`Money`]; every object holding amounts names the
//! clinic's `currency`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::claim::ClaimStatus;
use crate::ids::{BillId, ClaimId, PatientId, UserId};
use crate::money::Money;
use crate::schedule::AppointmentId;

/// A bill's state. `PartiallyPaid` and `Paid` follow from payments; `Void`
/// from `DELETE`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
pub enum BillStatus {
    /// Being prepared; not yet owed.
    Draft,
    /// Owed by the patient.
    Issued,
    /// Some of it is paid.
    PartiallyPaid,
    /// All of it is paid.
    Paid,
    /// Cancelled; owes nothing.
    Void,
}

impl BillStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::Draft => "Draft",
            BillStatus::Issued => "Issued",
            BillStatus::PartiallyPaid => "PartiallyPaid",
            BillStatus::Paid => "Paid",
            BillStatus::Void => "Void",
        }
    }

    /// Whether the patient owes on it.
    pub fn is_open(self) -> bool {
        matches!(self, BillStatus::Issued | BillStatus::PartiallyPaid)
    }
}

/// One service charged on a bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLine {
    /// The clinic's code for the service (1 to 64 characters).
    pub service_id: String,
    /// What was done (1 to 200 characters).
    pub description: String,
    /// Its price.
    pub amount: Money,
}

/// The insurance claim a bill names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// The insurer (1 to 100 characters).
    pub insurance_provider: String,
    /// What the insurer is asked to pay; not more than the bill's total.
    pub claim_amount: Money,
}

/// The body of `POST /api/bills` (`patientId` and `services` required) and
/// `PUT /api/bills/{id}` (the fields sent change). `totalAmount`, when
/// sent, must equal the sum of the services.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillBody {
    /// The id to use (`POST`; generated when absent).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub bill_id: Option<BillId>,
    /// The patient billed.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub patient_id: Option<PatientId>,
    /// The appointment the bill charges for, if any.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub appointment_id: Option<AppointmentId>,
    /// The services charged (1 to 100).
    #[serde(default)]
    pub services: Option<Vec<ServiceLine>>,
    /// The insurance claim.
    #[serde(default)]
    pub insurance_claim: Option<ClaimRequest>,
    /// The sum of the services, as a check.
    #[serde(default)]
    pub total_amount: Option<Money>,
    /// `Draft` or `Issued` (the default on `POST`).
    #[serde(default)]
    pub status: Option<BillStatus>,
}

/// What writing a bill answers: `Created`, `Updated` or `Deleted`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillWritten {
    /// The bill.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// `Created`, `Updated` or `Deleted`.
    pub status: String,
}

/// A bill: the seed's shape, plus what is paid and still due.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillView {
    /// Its id.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// The patient billed.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The appointment charged for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub appointment_id: Option<AppointmentId>,
    /// The services charged.
    pub services: Vec<ServiceLine>,
    /// The insurance claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insurance_claim: Option<ClaimRequest>,
    /// The sum of the services.
    pub total_amount: Money,
    /// Its state.
    pub status: BillStatus,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// Payments applied to it so far.
    pub payments_applied: Money,
    /// What the patient still owes on it.
    pub balance_due: Money,
    /// The total less what the insurer approved (the whole total until the
    /// claim is decided).
    pub patient_share: Money,
    /// The claim made from `insuranceClaim`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub claim_id: Option<ClaimId>,
    /// Where that claim stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_status: Option<ClaimStatus>,
    /// Its revision, from 1; every change adds one.
    pub revision: u32,
    /// When it was written.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When it last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<jiff::Timestamp>,
}

/// A page of `GET /api/bills`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillList {
    /// The bills, by id.
    pub bills: Vec<BillView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One revision of a bill, as it stood after a change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillRevisionView {
    /// The revision, from 1.
    pub revision: u32,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Who.
    #[schema(value_type = String)]
    pub by: UserId,
    /// `created`, `updated`, `paid` (an insurer's payment) or `voided`.
    pub change: String,
    /// The services then.
    pub services: Vec<ServiceLine>,
    /// The claim then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insurance_claim: Option<ClaimRequest>,
    /// The total then.
    pub total_amount: Money,
    /// The state then.
    pub status: BillStatus,
}

/// `GET /api/bills/{id}/revisions`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillRevisions {
    /// The bill.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// Its revisions, oldest first.
    pub revisions: Vec<BillRevisionView>,
}

/// A bill the patient still owes on, as the account lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenBill {
    /// The bill.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// `Issued` or `PartiallyPaid`.
    pub status: BillStatus,
    /// Its total.
    pub total_amount: Money,
    /// What is still due on it.
    pub balance_due: Money,
    /// When it was written.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// A payment as the account lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSummary {
    /// The payment.
    #[schema(value_type = String)]
    pub payment_id: crate::ids::PaymentId,
    /// What was paid.
    pub amount: Money,
    /// What was given back.
    pub refunded: Money,
    /// Where it stands.
    pub status: crate::payment::PaymentStatus,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// `GET /api/billing-accounts/{patientId}` (the seed's `GetBillingAccount`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingAccountView {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// What the patient owes over all open bills.
    pub balance: Money,
    /// Money paid beyond what was owed, kept for later bills.
    pub credit: Money,
    /// The bills still owed on, oldest first.
    pub open_bills: Vec<OpenBill>,
    /// The patient's payments, newest first (at most 100; the rest through
    /// `GET /api/payments`).
    pub payments: Vec<PaymentSummary>,
    /// When the account was opened.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: jiff::Timestamp,
}
