//! The billing figures of one clinic day, under `b/<yyyy-mm-dd>/clinic`.
//! Each record counts on the days its own fields name:
//! - a bill, on the day it was written: what it charges, and what is still
//!   owed on it, split between the patient and the insurer its claim is
//!   with ([`BillState`]);
//! - a payment, on the day it succeeded: what it collected; each refund of
//!   it on the day the refund was recorded (`billing::payments`);
//! - a claim, on the day of the insurer's first answer: answered, denied or
//!   clean; and on the day the insurer's payment was recorded: what they paid.
//!
//! Amounts are whole cents.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use medrelay_protocol::Money;
use medrelay_protocol::billing::BillStatus;
use medrelay_protocol::claim::ClaimStatus;

use super::{Counted, Figures};
use crate::billing::claims::{Claim, FirstDecision, StoredClaim};
use crate::billing::{Bill, StoredBill};

/// Cents charged on bills written that day (issued, part-paid or paid).
pub const CHARGES: u16 = 0;
/// Those bills.
pub const BILLS: u16 = 1;
/// Cents still owed on them by patients.
pub const OWED_BY_PATIENTS: u16 = 2;
/// Cents still owed on them by insurers: what a claim with them expects,
/// up to what the bill still owes.
pub const OWED_BY_INSURERS: u16 = 3;
/// Cents of patients' payments that succeeded that day.
pub const COLLECTED: u16 = 4;
/// Those payments.
pub const PAYMENTS: u16 = 5;
/// Cents refunded that day.
pub const REFUNDED: u16 = 6;
/// Cents insurers paid that day.
pub const INSURERS_PAID: u16 = 7;
/// Claims the insurer first answered that day.
pub const CLAIMS_ANSWERED: u16 = 8;
/// Of those, claims first denied.
pub const CLAIMS_DENIED: u16 = 9;
/// Of those, claims approved in full at the first answer.
pub const CLAIMS_CLEAN: u16 = 10;

/// The row key of the clinic's billing figures on clinic day `day`.
pub fn key(day: Date) -> String {
    format!("b/{day}/clinic")
}

/// The row of clinic day `at` falls on, with `figures`.
pub fn row(at: Timestamp, zone: &TimeZone, figures: Figures) -> (String, Figures) {
    (key(at.to_zoned(zone.clone()).date()), figures)
}

/// Whole cents of `m` (amounts are checked far below `i64` cents on input).
pub fn cents(m: Money) -> i64 {
    m.in_cents().unwrap_or(0)
}

/// What the figures read of a bill: its own amounts and state, and what its
/// claim still expects of the insurer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BillState {
    /// When the bill was written.
    pub created_at: Timestamp,
    /// Its total.
    pub total: Money,
    /// Paid on it so far.
    pub paid: Money,
    /// Its state.
    pub status: BillStatus,
    /// What its claim still expects of the insurer
    /// ([`crate::billing::claims::insurer_due`]); zero without one.
    pub insurer_due: Money,
}

impl BillState {
    /// The state of `bill` whose claim expects `insurer_due`.
    pub fn of(bill: &Bill, insurer_due: Money) -> Self {
        Self {
            created_at: bill.created_at,
            total: bill.total,
            paid: bill.paid,
            status: bill.status,
            insurer_due,
        }
    }

    /// The state of a stored bill whose claim expects `insurer_due`.
    pub fn stored(bill: &StoredBill, insurer_due: Money) -> Self {
        Self {
            created_at: bill.created_at,
            total: bill.total,
            paid: bill.paid,
            status: bill.status,
            insurer_due,
        }
    }
}

impl Counted for BillState {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        let mut f = Figures::new();
        if matches!(
            self.status,
            BillStatus::Issued | BillStatus::PartiallyPaid | BillStatus::Paid
        ) {
            f.insert(CHARGES, cents(self.total));
            f.insert(BILLS, 1);
        }
        if self.status.is_open() {
            let due = self.total.less(self.paid);
            let insurer = due.min(self.insurer_due);
            f.insert(OWED_BY_INSURERS, cents(insurer));
            f.insert(OWED_BY_PATIENTS, cents(due.less(insurer)));
        }
        vec![row(self.created_at, zone, f)]
    }
}

/// What the figures read of a claim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClaimState {
    /// The insurer's first answer.
    pub first_decision: Option<FirstDecision>,
    /// Where it stands.
    pub status: ClaimStatus,
    /// What the insurer paid.
    pub paid_amount: Option<Money>,
    /// When it last changed (for a paid claim, when the payment was recorded).
    pub at: Timestamp,
}

impl From<&Claim> for ClaimState {
    fn from(c: &Claim) -> Self {
        Self {
            first_decision: c.first_decision,
            status: c.status,
            paid_amount: c.paid_amount,
            at: c.at,
        }
    }
}

impl From<&StoredClaim> for ClaimState {
    fn from(c: &StoredClaim) -> Self {
        Self {
            first_decision: c.first_decision,
            status: c.status,
            paid_amount: c.paid_amount,
            at: c.at,
        }
    }
}

impl Counted for ClaimState {
    fn rows(&self, zone: &TimeZone) -> Vec<(String, Figures)> {
        let mut rows = Vec::new();
        if let Some(first) = self.first_decision {
            let mut f = Figures::from([(CLAIMS_ANSWERED, 1)]);
            match first.status {
                ClaimStatus::Denied => f.insert(CLAIMS_DENIED, 1),
                ClaimStatus::Approved => f.insert(CLAIMS_CLEAN, 1),
                _ => None,
            };
            rows.push(row(first.at, zone, f));
        }
        if self.status == ClaimStatus::Paid {
            let paid = cents(self.paid_amount.unwrap_or(Money::ZERO));
            rows.push(row(self.at, zone, [(INSURERS_PAID, paid)].into()));
        }
        rows
    }
}
