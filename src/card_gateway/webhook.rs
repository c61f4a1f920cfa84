//! The card gateway's webhook: `Stripe-Signature` checked, the event read.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; each `v1` is
//! HMAC-SHA256 under the webhook's signing secret over `"{t}.{body}"`. An
//! event is taken when one `v1` matches and `t` is within 300 seconds of
//! now, so a captured request cannot be replayed later; an event replayed
//! within those seconds is caught by its id (the store keeps every id acted
//! on).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::PaymentIntent;

/// How far the signed time may be from now, in seconds.
pub const TOLERANCE_SECS: i64 = 300;
/// The largest webhook body read.
pub const MAX_BODY: usize = 256 * 1024;

/// Why a webhook request is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No usable `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing or malformed")]
    Unsigned,
    /// Signed too long ago (or in the future).
    #[error("the signature's time is more than {TOLERANCE_SECS} s from now")]
    Stale,
    /// No signature matches.
    #[error("no signature matches")]
    Forged,
}

/// Checks `header` over `body` with `secret` at `now` (unix seconds).
///
/// # Errors
/// [`Rejected`] saying why.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), Rejected> {
    let mut time: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => time = Some(t.parse().map_err(|_| Rejected::Unsigned)?),
            Some(("v1", hex)) => signatures.push(from_hex(hex).ok_or(Rejected::Unsigned)?),
            _ => {}
        }
    }
    let (Some(time), false) = (time, signatures.is_empty()) else {
        return Err(Rejected::Unsigned);
    };
    if now.abs_diff(time) > TOLERANCE_SECS.unsigned_abs() {
        return Err(Rejected::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(Rejected::Forged)
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || hex.len() > 128 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A webhook event, as far as medrelay reads it.
#[derive(Debug, Deserialize)]
pub struct Event {
    /// `evt_...`: the same event delivered again has the same id.
    pub id: String,
    /// `payment_intent.succeeded`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about.
    pub data: EventData,
}

/// An event's object.
#[derive(Debug, Deserialize)]
pub struct EventData {
    /// The object, read as a PaymentIntent for `payment_intent.*` events.
    pub object: serde_json::Value,
}

impl Event {
    /// The PaymentIntent of a `payment_intent.*` event that tells how a
    /// charge stands (others: none).
    pub fn payment_intent(&self) -> Option<PaymentIntent> {
        let tells = matches!(
            self.kind.as_str(),
            "payment_intent.succeeded"
                | "payment_intent.payment_failed"
                | "payment_intent.canceled"
                | "payment_intent.processing"
        );
        if !tells {
            return None;
        }
        serde_json::from_value(self.data.object.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_signature_is_taken_only_fresh_and_matching() {
        let (secret, body, now) = (
            b"whsec_test".as_slice(),
            br#"{"id":"evt_1"}"#.as_slice(),
            1_700_000_000,
        );
        let good = sign(secret, now, body);
        let header = format!("t={now},v1=00ff,v1={good}");
        assert_eq!(verify(secret, &header, body, now + 10), Ok(()));
        assert_eq!(
            verify(secret, &header, body, now + 301),
            Err(Rejected::Stale)
        );
        assert_eq!(
            verify(secret, &header, body, now - 301),
            Err(Rejected::Stale)
        );
        assert_eq!(verify(b"other", &header, body, now), Err(Rejected::Forged));
        assert_eq!(verify(secret, &header, b"{}", now), Err(Rejected::Forged));
        for bad in [
            "",
            "t=1",
            &format!("v1={good}"),
            "t=x,v1=00",
            &format!("t={now},v1=zz"),
        ] {
            assert_eq!(
                verify(secret, bad, body, now),
                Err(Rejected::Unsigned),
                "{bad}"
            );
        }
    }
}
