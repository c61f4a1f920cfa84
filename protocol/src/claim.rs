//! Insurance claims (seed: healthcare-api section 3, "Claim Submission",
//! "Track"): a claim's lifecycle apart from its bill's.
//!
//! `draft` → `submitted` → `in_review` → `approved` | `partially_approved`
//! | `denied` → `paid`; a denied claim is corrected (through the bill's
//! `insuranceClaim`) and submitted again, its earlier versions kept.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{BillId, ClaimId, PatientId, UserId};
use crate::money::Money;

/// Where a claim stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Named on the bill; not yet sent.
    Draft,
    /// Sent to the insurer.
    Submitted,
    /// The insurer is looking at it.
    InReview,
    /// The insurer pays the whole claim.
    Approved,
    /// The insurer pays part of it (`approvedAmount`).
    PartiallyApproved,
    /// The insurer pays nothing (`reason`); it may be corrected and resubmitted.
    Denied,
    /// The insurer's payment is recorded against the bill.
    Paid,
}

impl ClaimStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Draft => "draft",
            ClaimStatus::Submitted => "submitted",
            ClaimStatus::InReview => "in_review",
            ClaimStatus::Approved => "approved",
            ClaimStatus::PartiallyApproved => "partially_approved",
            ClaimStatus::Denied => "denied",
            ClaimStatus::Paid => "paid",
        }
    }

    /// Whether its claim may still be corrected on the bill.
    pub fn correctable(self) -> bool {
        matches!(self, ClaimStatus::Draft | ClaimStatus::Denied)
    }
}

/// `PUT /api/claims/{claimId}`: the insurer's progress or decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimDecision {
    /// `in_review`, `approved`, `partially_approved`, `denied` or `paid`.
    pub status: ClaimStatus,
    /// With `partially_approved`: what the insurer pays (more than zero,
    /// less than the claim). With `approved` it must equal the claim.
    #[serde(default)]
    pub approved_amount: Option<Money>,
    /// With `denied`: why (1 to 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
    /// With `paid`: what the insurer paid (default: the approved amount).
    #[serde(default)]
    pub paid_amount: Option<Money>,
}

/// One version of a claim: where it stood after a change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVersionView {
    /// From 1.
    pub version: u32,
    /// Its state then.
    pub status: ClaimStatus,
    /// The insurer then.
    pub insurance_provider: String,
    /// The amount claimed then.
    pub claim_amount: Money,
    /// What was approved then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<Money>,
    /// Why it was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// Who.
    #[schema(value_type = String)]
    pub by: UserId,
}

/// A claim, with what it leaves the patient to pay.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    /// Its id.
    #[schema(value_type = String)]
    pub claim_id: ClaimId,
    /// The bill it claims for.
    #[schema(value_type = String)]
    pub bill_id: BillId,
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// The insurer.
    pub insurance_provider: String,
    /// What the insurer is asked to pay.
    pub claim_amount: Money,
    /// Its state.
    pub status: ClaimStatus,
    /// What the insurer approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<Money>,
    /// What the insurer paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_amount: Option<Money>,
    /// Why it was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The bill's total less what the insurer approved (the whole total
    /// until a decision).
    pub patient_share: Money,
    /// The clinic's currency (ISO 4217).
    pub currency: String,
    /// Its version, from 1.
    pub version: u32,
    /// Every version, oldest first.
    pub history: Vec<ClaimVersionView>,
}

/// What changing a claim answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimWritten {
    /// The claim.
    #[schema(value_type = String)]
    pub claim_id: ClaimId,
    /// Its new state.
    pub status: ClaimStatus,
}

/// A page of `GET /api/claims`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimList {
    /// The claims, by id, without their history.
    pub claims: Vec<ClaimView>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
