//! `[billing]`: the clinic's currency and the largest amount it accepts.

use anyhow::bail;
use medrelay_protocol::Money;
use secrecy::{ExposeSecret, SecretString};
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
    /// `[billing.card]`
    pub card: CardSettings,
}

/// `[billing.card]`: the card gateway (Stripe's PaymentIntents API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSettings {
    /// The gateway's secret API key; empty: no card payments.
    pub secret_key: SecretString,
    /// The signing secret of the gateway's webhook.
    pub webhook_secret: SecretString,
    /// The gateway's API base URL.
    pub base_url: String,
    /// How long one request to the gateway may take, in milliseconds.
    pub timeout_ms: u64,
}

impl CardSettings {
    /// Whether card payments are taken.
    pub fn enabled(&self) -> bool {
        !self.secret_key.expose_secret().trim().is_empty()
    }
}

/// Currencies without cents: card gateways take them in whole units, which
/// the cents sent here would overstate a hundredfold.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

impl BillingSettings {
    /// Where appointments take place, as calendars show it: the clinic's
    /// name, and its address when one is set.
    pub fn clinic_location(&self) -> String {
        if self.clinic_address.trim().is_empty() {
            self.clinic_name.clone()
        } else {
            format!("{}, {}", self.clinic_name, self.clinic_address)
        }
    }

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
        if self.card.enabled() {
            if ZERO_DECIMAL.contains(&self.currency.as_str()) {
                bail!(
                    "invalid configuration: billing.card takes amounts in cents, which {} has not",
                    self.currency
                );
            }
            if self.card.webhook_secret.expose_secret().trim().is_empty() {
                bail!(
                    "invalid configuration: billing.card.webhook_secret must be set with secret_key (the gateway's outcomes arrive signed with it)"
                );
            }
            if reqwest::Url::parse(self.card.base_url.trim()).is_err() {
                bail!("invalid configuration: billing.card.base_url is not a URL");
            }
            if !(100..=120_000).contains(&self.card.timeout_ms) {
                bail!("invalid configuration: billing.card.timeout_ms must be 100 to 120000");
            }
        }
        match Money::parse(&self.max_amount) {
            Ok(max) if max > Money::ZERO && max.check(max).is_ok() => Ok(()),
            _ => bail!(
                "invalid configuration: billing.max_amount must be a positive amount with at most two decimals, such as \"1000000.00\""
            ),
        }
    }
}
