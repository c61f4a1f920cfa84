//! The card gateway: Stripe's PaymentIntents API through `reqwest` (any
//! service of the same shape at `billing.card.base_url`), and the webhook
//! events it posts back ([`webhook`]).
//!
//! A charge is a PaymentIntent created and confirmed in one request, with
//! the payment's id as Stripe's `Idempotency-Key`: sent again after a crash
//! or a lost answer, it is answered with the first PaymentIntent, never a
//! second charge. A PaymentIntent still `processing` is asked about by its
//! id until it ends, or its webhook event says how it ended.

pub mod webhook;

use std::time::Duration;

use futures_util::future::BoxFuture;
use medrelay_actors::billing::gateway::{Charge, Gateway, Refunded, Transient};
use medrelay_actors::billing::payments::PaymentRecord;
use medrelay_protocol::Money;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::CardSettings;

/// Charges cards through the card gateway.
#[derive(Clone)]
pub struct CardGateway {
    http: reqwest::Client,
    base: String,
    secret_key: SecretString,
    currency: String,
}

impl std::fmt::Debug for CardGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardGateway")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl CardGateway {
    /// The gateway `settings` name, charging in `currency` (ISO 4217).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: &CardSettings, currency: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            base: settings.base_url.trim().trim_end_matches('/').to_owned(),
            secret_key: settings.secret_key.clone(),
            currency: currency.to_ascii_lowercase(),
        })
    }

    /// Sends `request` (authenticated) and reads the PaymentIntent or
    /// Refund it answers with.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Result<T, String>, Transient> {
        let response = request
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| Transient(format!("card gateway: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Transient(format!("card gateway: reading the answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map(Ok)
                .map_err(|e| Transient(format!("card gateway: unreadable answer: {e}")));
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|b| b.error.message.unwrap_or(b.error.kind))
            .unwrap_or_default();
        let why = format!("card gateway {status}: {message}");
        if refuses_for_good(status) {
            Ok(Err(why))
        } else {
            // 401/403 are our keys, 409 a request under this key still in
            // flight there, 429/5xx the gateway's trouble: none is the
            // card's fault, so the payment waits rather than fails.
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                tracing::error!(%status, "the card gateway refuses medrelay's key (billing.card.secret_key)");
            }
            Err(Transient(why))
        }
    }
}

/// 400 (a request it will never take), 402 (a declined card) and 404: the
/// same request would be refused again.
fn refuses_for_good(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYMENT_REQUIRED | StatusCode::NOT_FOUND
    )
}

/// The parts of a PaymentIntent medrelay reads.
#[derive(Debug, Deserialize)]
pub struct PaymentIntent {
    /// `pi_...`
    pub id: String,
    /// `succeeded`, `processing`, `canceled`, `requires_payment_method`, ...
    pub status: String,
    /// The charge, expanded (an object) or not (its id).
    #[serde(default)]
    pub latest_charge: Option<serde_json::Value>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_payment_error: Option<GatewayMessage>,
    /// Why it was canceled.
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    /// What medrelay attached to it.
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

/// A gateway's message about a failure.
#[derive(Debug, Default, Deserialize)]
pub struct GatewayMessage {
    /// In words.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<String>,
}

/// A page of Stripe's search.
#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<PaymentIntent>,
}

#[derive(Debug, Deserialize)]
struct RefundObject {
    id: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

impl RefundObject {
    /// Its reference, or why it was not made.
    fn outcome(self) -> Refunded {
        if self.status == "failed" || self.status == "canceled" {
            Err(self
                .failure_reason
                .unwrap_or_else(|| format!("the refund {}", self.status)))
        } else {
            Ok(self.id)
        }
    }
}

/// A page of Stripe's refund list.
#[derive(Debug, Deserialize)]
struct RefundList {
    data: Vec<RefundObject>,
}

impl PaymentIntent {
    /// What the PaymentIntent says of the charge.
    pub fn charge(&self) -> Charge {
        let why = || {
            self.last_payment_error
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| format!("the card gateway says {}", self.status))
        };
        match self.status.as_str() {
            "succeeded" => Charge::Paid {
                reference: self.id.clone(),
                last4: self.last4(),
            },
            "processing" => Charge::Processing {
                reference: self.id.clone(),
            },
            "canceled" => Charge::Canceled(
                self.cancellation_reason
                    .clone()
                    .unwrap_or_else(|| "canceled at the card gateway".into()),
            ),
            // `requires_action` asks the cardholder to authenticate (3-D
            // Secure) in their browser, which a server-side charge cannot.
            "requires_action" => Charge::Refused(
                "the card asks its holder to authenticate, which this payment cannot do".into(),
            ),
            _ => Charge::Refused(why()),
        }
    }

    /// The card's last four digits, when the charge came expanded.
    fn last4(&self) -> Option<String> {
        let last4 = self
            .latest_charge
            .as_ref()?
            .pointer("/payment_method_details/card/last4")?
            .as_str()?;
        (last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())).then(|| last4.to_owned())
    }
}

/// The form that creates and confirms the PaymentIntent of `payment`.
pub fn charge_form(payment: &PaymentRecord, currency: &str) -> Vec<(&'static str, String)> {
    let cents = payment.amount.in_cents().unwrap_or_default();
    vec![
        ("amount", cents.to_string()),
        ("currency", currency.to_owned()),
        (
            "payment_method",
            payment.card_token.clone().unwrap_or_default(),
        ),
        ("confirm", "true".into()),
        // Confirmed here, with no page to send the cardholder back to.
        ("automatic_payment_methods[enabled]", "true".into()),
        ("automatic_payment_methods[allow_redirects]", "never".into()),
        ("metadata[payment_id]", payment.payment_id.to_string()),
        ("metadata[patient_id]", payment.patient_id.to_string()),
        ("expand[]", "latest_charge".into()),
    ]
}

impl Gateway for CardGateway {
    fn charge(&self, payment: &PaymentRecord) -> BoxFuture<'static, Result<Charge, Transient>> {
        let this = self.clone();
        let form = charge_form(payment, &self.currency);
        let key = payment.payment_id.to_string();
        Box::pin(async move {
            let request = this
                .http
                .post(format!("{}/v1/payment_intents", this.base))
                .header("Idempotency-Key", key)
                .form(&form);
            Ok(match this.call::<PaymentIntent>(request).await? {
                Ok(intent) => intent.charge(),
                Err(refused) => Charge::Refused(refused),
            })
        })
    }

    fn outcome(
        &self,
        _payment: &PaymentRecord,
        reference: &str,
    ) -> BoxFuture<'static, Result<Charge, Transient>> {
        let this = self.clone();
        // The reference came from the gateway; encoded all the same.
        let url = format!(
            "{}/v1/payment_intents/{}?expand%5B%5D=latest_charge",
            self.base,
            form_urlencoded::byte_serialize(reference.as_bytes()).collect::<String>()
        );
        Box::pin(async move {
            let request = this.http.get(url);
            Ok(match this.call::<PaymentIntent>(request).await? {
                Ok(intent) => intent.charge(),
                // A reference the gateway does not know: it took no money.
                Err(refused) => Charge::Refused(refused),
            })
        })
    }

    fn find(
        &self,
        payment: &PaymentRecord,
    ) -> BoxFuture<'static, Result<Option<Charge>, Transient>> {
        let this = self.clone();
        // Stripe's search language; the id holds only letters, digits and `_`.
        let query = format!("metadata['payment_id']:'{}'", payment.payment_id);
        let url = format!(
            "{}/v1/payment_intents/search?query={}&expand%5B%5D=data.latest_charge",
            self.base,
            form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        Box::pin(async move {
            let request = this.http.get(url);
            match this.call::<SearchResult>(request).await? {
                Ok(found) => Ok(found.data.first().map(PaymentIntent::charge)),
                // A search the gateway will not run: nothing can be known,
                // and charging could charge twice; wait for it.
                Err(refused) => Err(Transient(refused)),
            }
        })
    }

    fn find_refund(
        &self,
        payment: &PaymentRecord,
        key: &str,
    ) -> BoxFuture<'static, Result<Option<Refunded>, Transient>> {
        let this = self.clone();
        let intent = payment.gateway_reference.clone().unwrap_or_default();
        let url = format!(
            "{}/v1/refunds?payment_intent={}&limit=100",
            self.base,
            form_urlencoded::byte_serialize(intent.as_bytes()).collect::<String>()
        );
        let key = key.to_owned();
        Box::pin(async move {
            let found = match this.call::<RefundList>(this.http.get(url)).await? {
                Ok(list) => list.data,
                Err(refused) => return Err(Transient(refused)),
            };
            Ok(found
                .into_iter()
                .find(|r| r.metadata.get("refund_key") == Some(&key))
                .map(RefundObject::outcome))
        })
    }

    fn refund(
        &self,
        payment: &PaymentRecord,
        amount: Money,
        key: String,
    ) -> BoxFuture<'static, Result<Refunded, Transient>> {
        let this = self.clone();
        let form = vec![
            (
                "payment_intent",
                payment.gateway_reference.clone().unwrap_or_default(),
            ),
            ("amount", amount.in_cents().unwrap_or_default().to_string()),
            ("metadata[payment_id]", payment.payment_id.to_string()),
            ("metadata[refund_key]", key.clone()),
        ];
        Box::pin(async move {
            let request = this
                .http
                .post(format!("{}/v1/refunds", this.base))
                .header("Idempotency-Key", key)
                .form(&form);
            Ok(match this.call::<RefundObject>(request).await? {
                Ok(refund) => refund.outcome(),
                Err(refused) => Err(refused),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use medrelay_protocol::payment::{PaymentMethod, PaymentStatus};
    use medrelay_protocol::{PatientId, PaymentId, UserId};
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn payment(id: &str) -> PaymentRecord {
        PaymentRecord {
            payment_id: PaymentId::parse(id).unwrap(),
            patient_id: PatientId::parse("pat_1").unwrap(),
            amount: Money::parse("12.50").unwrap(),
            method: PaymentMethod::Card,
            status: PaymentStatus::Pending,
            requested: Vec::new(),
            allocations: Vec::new(),
            credited: Money::ZERO,
            refunded: Money::ZERO,
            gateway_reference: None,
            card_token: Some("pm_card_visa".into()),
            card_last4: None,
            refunding: None,
            refunds_asked: 0,
            refunds_made: Vec::new(),
            history: Vec::new(),
            idempotency_key: None,
            created_by: UserId::parse("usr_1").unwrap(),
            created_at: jiff::Timestamp::now(),
        }
    }

    /// A gateway client for the mock `stripe`.
    fn at(stripe: &MockServer) -> CardGateway {
        let settings = CardSettings {
            secret_key: "sk_test_1".into(),
            webhook_secret: "whsec_1".into(),
            base_url: stripe.uri(),
            timeout_ms: 5_000,
        };
        CardGateway::new(&settings, "USD").unwrap()
    }

    #[tokio::test]
    async fn a_charge_is_found_by_the_payments_id_when_its_key_may_be_forgotten() {
        let stripe = MockServer::start().await;
        let intent = serde_json::json!({"id": "pi_7", "status": "succeeded",
            "metadata": {"payment_id": "pay_old"},
            "latest_charge": {"payment_method_details": {"card": {"last4": "4242"}}}});
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents/search"))
            .and(query_param("query", "metadata['payment_id']:'pay_old'"))
            .and(query_param("expand[]", "data.latest_charge"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"object": "search_result", "data": [intent]}),
                ),
            )
            .mount(&stripe)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents/search"))
            .and(query_param("query", "metadata['payment_id']:'pay_new'"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"object": "search_result", "data": []})),
            )
            .mount(&stripe)
            .await;
        let gateway = at(&stripe);
        let found = gateway.find(&payment("pay_old")).await.unwrap();
        assert_eq!(
            found,
            Some(Charge::Paid {
                reference: "pi_7".into(),
                last4: Some("4242".into())
            })
        );
        assert_eq!(gateway.find(&payment("pay_new")).await.unwrap(), None);
        let asked = stripe.received_requests().await.unwrap();
        assert!(
            asked
                .iter()
                .all(|r| r.headers.get("authorization").unwrap() == "Bearer sk_test_1")
        );
    }

    #[tokio::test]
    async fn a_refund_is_found_by_its_key_in_the_payments_refunds() {
        let stripe = MockServer::start().await;
        let refunds = serde_json::json!({"object": "list", "data": [
            {"id": "re_1", "status": "succeeded", "metadata": {"refund_key": "pay_old-refund-1"}},
            {"id": "re_2", "status": "succeeded", "metadata": {"refund_key": "pay_old-refund-2"}}]});
        Mock::given(method("GET"))
            .and(path("/v1/refunds"))
            .and(query_param("payment_intent", "pi_9"))
            .and(query_param("limit", "100"))
            .respond_with(ResponseTemplate::new(200).set_body_json(refunds))
            .mount(&stripe)
            .await;
        let gateway = at(&stripe);
        let mut paid = payment("pay_old");
        paid.gateway_reference = Some("pi_9".into());
        let found = gateway
            .find_refund(&paid, "pay_old-refund-2")
            .await
            .unwrap();
        assert_eq!(found, Some(Ok("re_2".to_owned())));
        let none = gateway
            .find_refund(&paid, "pay_old-refund-3")
            .await
            .unwrap();
        assert_eq!(none, None);
    }
}
