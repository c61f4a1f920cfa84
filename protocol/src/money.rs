//! Money: an exact decimal amount, never a float.
//!
//! On the wire an amount is a JSON number with exactly two decimals
//! (`150.00`, as the seeds show), written from the decimal's own text. It is
//! read from a number (`100.00`) or a string (`"100.00"`) by looking at the
//! JSON text itself (serde_json's `RawValue`), so no amount ever passes
//! through `f64`. Whether an amount is acceptable where it is used (not
//! negative, at most two decimals, under the clinic's ceiling) is
//! [`Money::check`]'s answer, so the service can name the field in a 422.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The longest amount text accepted (digits, sign and point).
const MAX_TEXT: usize = 32;

/// An exact amount of money in the clinic's currency.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// Why an amount is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a plain decimal (`12.50`): an exponent, a sign other than a
    /// leading `-`, separators, too many digits.
    #[error("an amount is a plain decimal such as 12.50")]
    NotDecimal,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// More than two decimals (cents).
    #[error("at most two decimals")]
    TooPrecise,
    /// Over the clinic's ceiling.
    #[error("must not exceed {0}")]
    OverCeiling(Money),
    /// A sum too large to represent.
    #[error("the sum is too large")]
    Overflow,
}

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses a plain decimal's text (`-`? digits, `.` digits?), exactly.
    ///
    /// # Errors
    /// [`MoneyError::NotDecimal`] for anything else.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (digits, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if text.len() > MAX_TEXT || !all_digits(whole) || !fraction.is_none_or(all_digits) {
            return Err(MoneyError::NotDecimal);
        }
        Decimal::from_str_exact(text)
            .map(Money)
            .map_err(|_| MoneyError::NotDecimal)
    }

    /// An amount from whole cents.
    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    /// The amount in whole cents (what card gateways take), if it fits.
    pub fn in_cents(self) -> Option<i64> {
        let mut d = self.0;
        d.rescale(2);
        i64::try_from(d.mantissa()).ok()
    }

    /// The exact decimal.
    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// The amount if it is acceptable as a charge or a payment: not negative,
    /// at most two decimals, at most `ceiling`; kept at two decimals.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check(self, ceiling: Money) -> Result<Money, MoneyError> {
        if self.0.is_sign_negative() && !self.0.is_zero() {
            return Err(MoneyError::Negative);
        }
        if self.0.normalize().scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        if self > ceiling {
            return Err(MoneyError::OverCeiling(ceiling));
        }
        Ok(self.cents())
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn plus(self, other: Money) -> Result<Money, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .ok_or(MoneyError::Overflow)
    }

    /// `self - other`, never below zero.
    pub fn less(self, other: Money) -> Money {
        if other >= self {
            Money::ZERO
        } else {
            Money(self.0 - other.0)
        }
    }

    /// The same amount written with two decimals.
    fn cents(self) -> Money {
        let mut d = self.0.normalize();
        d.rescale(2);
        Money(d)
    }
}

impl fmt::Display for Money {
    /// Two decimals, from the decimal's own digits: `1050.75`, `0.30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = self.0;
        if d.scale() != 2 {
            d = d.normalize();
            d.rescale(2);
        }
        if d.is_zero() {
            // Never "-0.00".
            d.set_sign_positive(true);
        }
        write!(f, "{d}")
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let parsed = if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(serde::de::Error::custom)?;
            Money::parse(&inner)
        } else {
            Money::parse(text)
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// Money as a JSON string with two decimals (`"150.00"`), for events.
///
/// Events are an internally tagged enum, which serde reads through a buffer
/// that has already turned numbers into floats; a string passes through it
/// exactly. Use as `#[serde(with = "crate::money::as_text")]`.
pub mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Money;

    /// Writes `"150.00"`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    /// Reads `"150.00"`.
    ///
    /// # Errors
    /// When it is not a string holding a plain decimal.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "An exact amount with two decimals; sent as a number or a string, never rounded",
            ))
            .minimum(Some(0.0))
            .multiple_of(Some(0.01))
            .examples([serde_json::json!(150.00)])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["number", "string"],
            "description": "An exact amount with at most two decimals, as a number or a string"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    #[test]
    fn reads_numbers_and_strings_exactly_and_writes_two_decimals() {
        let values: Vec<Money> = serde_json::from_str(
            r#"[100.00, "100.00", 0.1, "0.2", 1050.75, 7, 12345678901234567.89]"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&values).unwrap(),
            "[100.00,100.00,0.10,0.20,1050.75,7.00,12345678901234567.89]"
        );
        // 0.10 + 0.20 is exactly 0.30.
        assert_eq!(values[2].plus(values[3]).unwrap(), money("0.3"));
        assert_eq!(values[2].plus(values[3]).unwrap().to_string(), "0.30");
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for body in [
            "1e2",
            "\"1e2\"",
            "\"+1\"",
            "\" 1\"",
            "\"1_000\"",
            "\"1.\"",
            "\".5\"",
            "\"\"",
            "true",
            "null",
            "\"12,50\"",
        ] {
            assert!(serde_json::from_str::<Money>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn checks_sign_precision_and_ceiling() {
        let ceiling = money("1000.00");
        assert_eq!(money("-0.01").check(ceiling), Err(MoneyError::Negative));
        assert_eq!(money("0.001").check(ceiling), Err(MoneyError::TooPrecise));
        assert_eq!(
            money("1000.01").check(ceiling),
            Err(MoneyError::OverCeiling(ceiling))
        );
        assert_eq!(
            money("100.500").check(ceiling).unwrap().to_string(),
            "100.50"
        );
        assert_eq!(money("-0").check(ceiling).unwrap().to_string(), "0.00");
    }

    #[test]
    fn less_never_goes_below_zero() {
        assert_eq!(money("5").less(money("7.5")), Money::ZERO);
        assert_eq!(money("7.5").less(money("5")).to_string(), "2.50");
    }
}
