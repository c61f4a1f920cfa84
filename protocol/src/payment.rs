//! Payments and refunds (seed: user-management-billing, "Payment by patient
//! Id", "Track payment by payment Id").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{BillId, PatientId, PaymentId, UserId};
use crate::money::Money;

/// How a payment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Cash at the front desk, recorded by staff.
    Cash,
    /// A card on the front desk's terminal, recorded by staff.
    CardTerminal,
    /// A card charged through the clinic's card gateway, by the patient
    /// (or staff on their behalf) with the gateway's token for the card.
    Card,
}

impl PaymentMethod {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Cash => "cash",
            PaymentMethod::CardTerminal => "card_terminal",
            PaymentMethod::Card => "card",
        }
    }
}

/// Where a payment stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Accepted, not yet sent to its gateway.
    Pending,
    /// With its gateway.
    Processing,
    /// Paid and applied to bills (or credit).
    Succeeded,
    /// The gateway refused it.
    Failed,
    /// Withdrawn before it was paid.
    Canceled,
    /// Part of it was given back.
    PartiallyRefunded,
    /// All of it was given back.
    Refunded,
}

impl PaymentStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// Whether nothing more happens to it but refunds.
    pub fn is_final(self) -> bool {
        !matches!(self, PaymentStatus::Pending | PaymentStatus::Processing)
    }
}

/// `POST /api/patients/{patientId}/payments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// What is paid.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// The bills it pays, in this order (default: the patient's oldest
    /// open bills); what is left over becomes credit.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub bill_ids: Option<Vec<BillId>>,
    /// For `card`: the card gateway's token for the card (with Stripe, a
    /// PaymentMethod id such as `pm_...` made by Stripe.js in the browser).
    /// Card numbers never reach medrelay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_token: Option<String>,
}

/// What making a payment answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentWritten {
    /// The payment.
    #[schema(value_type = String)]
    pub payment_id: PaymentId,
    /// Where it stands.
    pub status: PaymentStatus,
}

/// What a payment paid on one bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The bill.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// What it paid on it (less what refunds took back).
    pub amount: Money,
}

/// One step of a payment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStep {
    /// The state it entered.
    pub status: PaymentStatus,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Who (absent for the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub by: Option<UserId>,
    /// What happened (a refund's amount and reason, a gateway's refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /api/payments/{paymentId}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// Its id.
    #[schema(value_type = String)]
    pub payment_id: PaymentId,
    /// Who paid.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// What was paid.
    pub amount: Money,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// How.
    pub method: PaymentMethod,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The bills it paid.
    pub allocations: Vec<Allocation>,
    /// What went to the patient's credit.
    pub credited: Money,
    /// What was given back.
    pub refunded: Money,
    /// The gateway's reference for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_reference: Option<String>,
    /// The last four digits of the card, as the card gateway gave them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<String>,
    /// Its steps, oldest first.
    pub history: Vec<PaymentStep>,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// A page of `GET /api/payments`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentList {
    /// The payments, by id.
    pub payments: Vec<PaymentView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /api/payments/{paymentId}/refunds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    /// What to give back; not more than what is left of the payment.
    pub amount: Money,
    /// Why (1 to 200 characters).
    pub reason: String,
}
