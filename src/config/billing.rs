//! `[billing]`: the clinic's currency and the largest amount it accepts.

use anyhow::bail;
use medrelay_protocol::Money;
use serde::Deserialize;

/// `[billing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// The clinic's one currency, an ISO 4217 code (`USD`, `EUR`, `INR`).
    pub currency: String,
    /// The largest amount a service line, a bill or a payment may carry, as
    /// decimal text (the config file's numbers are floats; amounts never are).
    pub max_amount: String,
    /// The clinic's name, printed on invoices.
    pub clinic_name: String,
    /// The clinic's address, printed on invoices.
    pub clinic_address: String,
}

impl BillingSettings {
    /// The ceiling on every amount.
    pub fn ceiling(&self) -> Money {
        // `validate` refused a ceiling that does not parse.
        Money::parse(&self.max_amount).unwrap_or(Money::ZERO)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let code = self.currency.as_bytes();
        if code.len() != 3 || !code.iter().all(u8::is_ascii_uppercase) {
            bail!("invalid configuration: billing.currency must be an ISO 4217 code such as USD");
        }
        match Money::parse(&self.max_amount) {
            Ok(max) if max > Money::ZERO && max.check(max).is_ok() => Ok(()),
            _ => bail!(
                "invalid configuration: billing.max_amount must be a positive amount with at most two decimals, such as \"1000000.00\""
            ),
        }
    }
}
