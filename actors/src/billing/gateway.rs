//! Payment gateways behind one trait. The embedded default is the front
//! desk: cash or the desk's card terminal, recorded by staff, paid at once.

use futures_util::future::BoxFuture;

use super::payments::PaymentRecord;

/// What a gateway says about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Paid; the gateway's reference.
    Paid(String),
    /// Refused for good; why.
    Refused(String),
}

/// A failure that may pass (a timeout, a 5xx): the charge is asked again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway unavailable: {0}")]
pub struct Transient(pub String);

/// Takes money for a payment. Asking twice for one payment charges once:
/// a gateway is given the payment's id as its idempotency key.
pub trait Gateway: Send + Sync + 'static {
    /// Charges `payment`.
    fn charge(&self, payment: &PaymentRecord) -> BoxFuture<'static, Result<Charge, Transient>>;
}

/// The front desk: the money is in hand when staff record it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Desk;

impl Gateway for Desk {
    fn charge(&self, payment: &PaymentRecord) -> BoxFuture<'static, Result<Charge, Transient>> {
        let reference = format!("desk_{}", payment.payment_id);
        Box::pin(std::future::ready(Ok(Charge::Paid(reference))))
    }
}
