//! Checks on billing input: a bill's body (every amount exact and under the
//! ceiling, the total the sum of the services, the claim within the total)
//! and a card payment's token. Each failure is a 422 naming the field
//! (`services[1].amount`, `totalAmount`, `cardToken`, ...).

use medrelay_actors::billing::Bill;
use medrelay_protocol::billing::{BillBody, BillStatus, ClaimRequest, ServiceLine};
use medrelay_protocol::money::MoneyError;
use medrelay_protocol::payment::PaymentMethod;
use medrelay_protocol::{ErrorCode, Money};

use crate::error::AppError;
use crate::service::text;

/// Most service lines on one bill.
pub const MAX_LINES: usize = 100;
const MAX_SERVICE_ID: usize = 64;
const MAX_DESCRIPTION: usize = 200;
const MAX_INSURER: usize = 100;

/// `amount` if acceptable, else a 422 naming `field`.
pub fn amount(field: &str, amount: Money, ceiling: Money) -> Result<Money, AppError> {
    amount
        .check(ceiling)
        .map_err(|e| AppError::invalid(field, e))
}

/// Applies the body's services, claim, total and status to `bill`; returns
/// the names of the fields that changed.
///
/// # Errors
/// 422 naming the field; `total_mismatch` when `totalAmount` is not the sum
/// of the services.
pub fn apply(bill: &mut Bill, body: &BillBody, ceiling: Money) -> Result<Vec<String>, AppError> {
    let mut changed = Vec::new();
    if let Some(services) = &body.services {
        let services = lines(services, ceiling)?;
        if services != bill.services {
            bill.total = sum(&services, ceiling)?;
            bill.services = services;
            changed.push("services".to_owned());
        }
    }
    if let Some(sent) = body.total_amount {
        let sent = amount("totalAmount", sent, ceiling)?;
        if sent != bill.total {
            return Err(AppError::Domain {
                code: ErrorCode::TotalMismatch,
                message: format!(
                    "totalAmount {sent} is not the sum of the services, {}",
                    bill.total
                ),
                field: Some("totalAmount".into()),
            });
        }
    }
    if let Some(claim) = &body.insurance_claim {
        let claim = checked_claim(claim, ceiling)?;
        if bill.insurance_claim.as_ref() != Some(&claim) {
            bill.insurance_claim = Some(claim);
            changed.push("insuranceClaim".to_owned());
        }
    }
    if let Some(claim) = &bill.insurance_claim
        && claim.claim_amount > bill.total
    {
        return Err(AppError::invalid(
            "insuranceClaim.claimAmount",
            format!("must not exceed the bill's total, {}", bill.total),
        ));
    }
    if let Some(status) = body.status {
        if !matches!(status, BillStatus::Draft | BillStatus::Issued) {
            return Err(AppError::invalid(
                "status",
                "a bill is set Draft or Issued; payments make it PartiallyPaid or Paid, DELETE makes it Void",
            ));
        }
        if status != bill.status && bill.paid > Money::ZERO {
            return Err(AppError::Domain {
                code: ErrorCode::InvalidTransition,
                message: format!(
                    "{} is paid on this bill; its status follows its payments",
                    bill.paid
                ),
                field: Some("status".into()),
            });
        }
        if status != bill.status {
            bill.status = status;
            changed.push("status".to_owned());
        }
    }
    Ok(changed)
}

fn lines(services: &[ServiceLine], ceiling: Money) -> Result<Vec<ServiceLine>, AppError> {
    if services.is_empty() || services.len() > MAX_LINES {
        return Err(AppError::invalid(
            "services",
            format!("a bill has 1 to {MAX_LINES} services"),
        ));
    }
    services
        .iter()
        .enumerate()
        .map(|(i, line)| {
            Ok(ServiceLine {
                service_id: text(
                    &format!("services[{i}].serviceId"),
                    &line.service_id,
                    MAX_SERVICE_ID,
                )?,
                description: text(
                    &format!("services[{i}].description"),
                    &line.description,
                    MAX_DESCRIPTION,
                )?,
                amount: amount(&format!("services[{i}].amount"), line.amount, ceiling)?,
            })
        })
        .collect()
}

/// The sum of the lines, itself under the ceiling.
fn sum(services: &[ServiceLine], ceiling: Money) -> Result<Money, AppError> {
    let over = |_| {
        AppError::invalid(
            "services",
            format!("the services add up to more than {ceiling}"),
        )
    };
    let total = services
        .iter()
        .try_fold(Money::ZERO, |sum, line| sum.plus(line.amount))
        .map_err(over)?;
    if total > ceiling {
        return Err(over(MoneyError::OverCeiling(ceiling)));
    }
    Ok(total)
}

fn checked_claim(claim: &ClaimRequest, ceiling: Money) -> Result<ClaimRequest, AppError> {
    Ok(ClaimRequest {
        insurance_provider: text(
            "insuranceClaim.insuranceProvider",
            &claim.insurance_provider,
            MAX_INSURER,
        )?,
        claim_amount: amount("insuranceClaim.claimAmount", claim.claim_amount, ceiling)?,
    })
}

/// Longest card token taken (Stripe's ids are far shorter).
const MAX_CARD_TOKEN: usize = 255;

/// The card token a card payment needs (and no other payment takes), when
/// the clinic takes cards (`card_enabled`).
pub(super) fn card_token(
    card_enabled: bool,
    method: PaymentMethod,
    token: Option<&str>,
) -> Result<Option<String>, AppError> {
    let field = "cardToken";
    match (method, token) {
        (PaymentMethod::Card, _) if !card_enabled => Err(AppError::invalid(
            "method",
            "this clinic takes no card payments online",
        )),
        (PaymentMethod::Card, None) => Err(AppError::invalid(
            field,
            "a card payment needs the card gateway's token for the card",
        )),
        (PaymentMethod::Card, Some(token)) => {
            // A card number sent by mistake is refused without being kept.
            let digits = token.bytes().filter(u8::is_ascii_digit).count();
            if (12..=19).contains(&digits)
                && token
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
            {
                return Err(AppError::invalid(
                    field,
                    "card numbers are not taken: send the card gateway's token for the card",
                ));
            }
            let well_formed = !token.is_empty()
                && token.len() <= MAX_CARD_TOKEN
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !well_formed {
                return Err(AppError::invalid(
                    field,
                    format!("1 to {MAX_CARD_TOKEN} letters, digits or underscores"),
                ));
            }
            Ok(Some(token.to_owned()))
        }
        (_, Some(_)) => Err(AppError::invalid(
            field,
            "only card payments take a card token",
        )),
        (_, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use medrelay_protocol::{BillId, PatientId, UserId};

    use super::*;

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn empty() -> Bill {
        Bill {
            bill_id: BillId::parse("bill_1").unwrap(),
            patient_id: PatientId::parse("pat_1").unwrap(),
            appointment_id: None,
            services: Vec::new(),
            insurance_claim: None,
            claim_id: None,
            total: Money::ZERO,
            paid: Money::ZERO,
            status: BillStatus::Issued,
            created_by: UserId::parse("usr_1").unwrap(),
            created_at: Timestamp::now(),
            updated_at: None,
            revision: 1,
        }
    }

    fn body(json: &str) -> BillBody {
        crate::http::json::parse(json.as_bytes()).unwrap()
    }

    fn field_of(e: AppError) -> String {
        match e {
            AppError::InvalidField { field, .. } => field,
            AppError::Domain { field, code, .. } => format!("{}:{}", code.as_str(), field.unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_total_is_the_exact_sum() {
        let mut bill = empty();
        let b = body(
            r#"{"services":[{"serviceId":"a","description":"A","amount":0.10},
                {"serviceId":"b","description":"B","amount":"0.20"}],"totalAmount":0.30}"#,
        );
        apply(&mut bill, &b, money("1000")).unwrap();
        assert_eq!(bill.total.to_string(), "0.30");
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let ceiling = money("1000.00");
        let cases = [
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":1},{"serviceId":"b","description":"B","amount":-1}]}"#,
                "services[1].amount",
            ),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":1.005}]}"#,
                "services[0].amount",
            ),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":1000.01}]}"#,
                "services[0].amount",
            ),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":600},{"serviceId":"b","description":"B","amount":600}]}"#,
                "services",
            ),
            (
                r#"{"services":[{"serviceId":" ","description":"A","amount":1}]}"#,
                "services[0].serviceId",
            ),
            (r#"{"services":[]}"#, "services"),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":100}],"totalAmount":100.01}"#,
                "total_mismatch:totalAmount",
            ),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":100}],
                   "insuranceClaim":{"insuranceProvider":"HealthInsure","claimAmount":100.01}}"#,
                "insuranceClaim.claimAmount",
            ),
            (
                r#"{"services":[{"serviceId":"a","description":"A","amount":100}],"status":"Paid"}"#,
                "status",
            ),
        ];
        for (json, field) in cases {
            let e = apply(&mut empty(), &body(json), ceiling).unwrap_err();
            assert_eq!(field_of(e), field, "{json}");
        }
    }
}
