//! Payment gateways behind one trait. The embedded default is the front
//! desk: cash or the desk's card terminal, recorded by staff, paid at once.
//! Card payments go to the card gateway the server configures (Stripe's
//! PaymentIntents API), whose answers may also come later, by webhook.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use medrelay_protocol::Money;
use medrelay_protocol::payment::PaymentMethod;

use super::payments::PaymentRecord;

/// What a gateway says about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Paid: the gateway's reference, and the card's last four digits when
    /// the gateway gives them.
    Paid {
        /// The gateway's reference for the charge.
        reference: String,
        /// The card's last four digits.
        last4: Option<String>,
    },
    /// Taken, its outcome still to come (a webhook, or asking again).
    Processing {
        /// The gateway's reference for the charge.
        reference: String,
    },
    /// Refused for good; why.
    Refused(String),
    /// Withdrawn at the gateway before it was paid; why.
    Canceled(String),
}

/// A failure that may pass (a timeout, a 5xx): the gateway is asked again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway unavailable: {0}")]
pub struct Transient(pub String);

/// What a gateway says about a refund: its reference, or why it refused.
pub type Refunded = Result<String, String>;

/// Takes and gives back money for payments. Asking twice for one payment
/// charges once: a gateway is given the payment's id as its idempotency
/// key, and a refund the key its caller names.
pub trait Gateway: Send + Sync + 'static {
    /// Charges `payment` (or, asked again, answers what the first charge
    /// came to).
    fn charge(&self, payment: &PaymentRecord) -> BoxFuture<'static, Result<Charge, Transient>>;

    /// What became of a charge the gateway took as processing.
    fn outcome(
        &self,
        payment: &PaymentRecord,
        reference: &str,
    ) -> BoxFuture<'static, Result<Charge, Transient>>;

    /// The charge the gateway already holds for `payment`, found by the
    /// payment's id rather than by its idempotency key (which a gateway
    /// forgets: Stripe after 24 hours). `None`: it holds none. Asked before
    /// charging a payment old enough for its key to be forgotten.
    fn find(
        &self,
        _payment: &PaymentRecord,
    ) -> BoxFuture<'static, Result<Option<Charge>, Transient>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// The refund the gateway made for `payment` under `key`, found
    /// without the key's help (for a refund whose key the gateway may have
    /// forgotten). `None`: it made none.
    fn find_refund(
        &self,
        _payment: &PaymentRecord,
        _key: &str,
    ) -> BoxFuture<'static, Result<Option<Refunded>, Transient>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Gives back `amount` of the paid `payment`; `key` makes asking twice
    /// give back once.
    fn refund(
        &self,
        payment: &PaymentRecord,
        amount: Money,
        key: String,
    ) -> BoxFuture<'static, Result<Refunded, Transient>>;
}

/// The front desk: the money is in hand when staff record it, and handed
/// back across the desk.
#[derive(Debug, Default, Clone, Copy)]
pub struct Desk;

impl Gateway for Desk {
    fn charge(&self, payment: &PaymentRecord) -> BoxFuture<'static, Result<Charge, Transient>> {
        let paid = Charge::Paid {
            reference: format!("desk_{}", payment.payment_id),
            last4: None,
        };
        Box::pin(std::future::ready(Ok(paid)))
    }

    fn outcome(
        &self,
        payment: &PaymentRecord,
        _reference: &str,
    ) -> BoxFuture<'static, Result<Charge, Transient>> {
        self.charge(payment)
    }

    fn refund(
        &self,
        _payment: &PaymentRecord,
        _amount: Money,
        key: String,
    ) -> BoxFuture<'static, Result<Refunded, Transient>> {
        Box::pin(std::future::ready(Ok(Ok(format!("desk_{key}")))))
    }
}

/// The gateway of each payment method: the desk, and the card gateway if
/// the clinic has one.
#[derive(Clone)]
pub struct Gateways {
    desk: Arc<dyn Gateway>,
    card: Option<Arc<dyn Gateway>>,
}

impl Gateways {
    /// The desk, and `card` for card payments.
    pub fn new(card: Option<Arc<dyn Gateway>>) -> Self {
        Self {
            desk: Arc::new(Desk),
            card,
        }
    }

    /// The gateway that takes `method`; none for cards without a card
    /// gateway.
    pub fn of(&self, method: PaymentMethod) -> Option<&Arc<dyn Gateway>> {
        match method {
            PaymentMethod::Cash | PaymentMethod::CardTerminal => Some(&self.desk),
            PaymentMethod::Card => self.card.as_ref(),
        }
    }
}
