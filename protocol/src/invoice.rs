//! Invoices (seed: user-management-billing, "Generates invoice for all
//! payments", "invoice by patient IDs"): the services that payments paid,
//! line by line, in the seed's shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::PatientId;
use crate::money::Money;

/// One line: a service on a bill that payments paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// Their name.
    pub patient_name: String,
    /// The service (its id on the bill).
    pub item: String,
    /// What was done.
    pub description: String,
    /// Its price.
    pub amount: Money,
}

/// An invoice: a preview (`GET /api/invoices`, `invoiceId` `draft`) or one
/// issued with a number from a gapless sequence, which never changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// `INV-000001`, ... (or `draft` for a preview).
    pub invoice_id: String,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub invoice_date: jiff::Timestamp,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// The patients it covers (empty: every patient).
    #[schema(value_type = Vec<String>)]
    pub patient_ids: Vec<PatientId>,
    /// Payments made on or after this day (UTC), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub from: Option<jiff::civil::Date>,
    /// Payments made on or before this day (UTC), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub to: Option<jiff::civil::Date>,
    /// The lines, in the order they were paid.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines.
    pub total_amount: Money,
    /// What the payments paid on these bills.
    pub payments_applied: Money,
    /// What is still owed on them.
    pub balance_due: Money,
}

/// `POST /api/invoices`: which payments to invoice.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceRequest {
    /// Only these patients (default: all; patients: themselves).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub patient_ids: Option<Vec<PatientId>>,
    /// Payments made on or after this day (UTC).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub from: Option<jiff::civil::Date>,
    /// Payments made on or before this day (UTC).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub to: Option<jiff::civil::Date>,
}
