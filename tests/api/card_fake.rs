//! A fake card gateway in the shape of Stripe's PaymentIntents API, on
//! wiremock: it keeps the first answer per `Idempotency-Key` and gives it
//! again for the same key (as Stripe does), so the tests can count charges
//! (distinct keys) apart from requests. The card token decides the
//! outcome, as Stripe's test tokens do: `pm_card_visa` succeeds,
//! `pm_card_chargeDeclined` is declined, `pm_card_processing` stays
//! processing until the test settles it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};

use crate::child::{FAR_CHECKPOINTS, Process, data_with_admin};
use crate::helpers::{TestApp, eventually};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const SECRET_KEY: &str = "sk_test_medrelay";
pub const WEBHOOK_SECRET: &str = "whsec_test_medrelay";

#[derive(Default)]
struct Books {
    /// Idempotency-Key → (status, body) first answered.
    answers: HashMap<String, (u16, Value)>,
    /// PaymentIntent id → its current state.
    intents: HashMap<String, Value>,
    /// Requests that take `hold` before their answer (the next n).
    holds: usize,
    /// 500s to answer before taking charges.
    outages: usize,
}

/// The fake gateway: a wiremock server and what it has been asked.
#[derive(Clone)]
pub struct CardFake {
    pub server: Arc<MockServer>,
    books: Arc<Mutex<Books>>,
    hold: Duration,
}

impl CardFake {
    pub async fn start() -> CardFake {
        let fake = CardFake {
            server: Arc::new(MockServer::start().await),
            books: Arc::default(),
            hold: Duration::from_secs(3),
        };
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(Charges(fake.clone()))
            .mount(&fake.server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/payment_intents/pi_[0-9]+$"))
            .respond_with(Lookups(fake.clone()))
            .mount(&fake.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/refunds"))
            .respond_with(Refunds(fake.clone()))
            .mount(&fake.server)
            .await;
        fake
    }

    /// The settings that point medrelay at this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MEDRELAY__BILLING__CARD__SECRET_KEY", SECRET_KEY.into()),
            (
                "MEDRELAY__BILLING__CARD__WEBHOOK_SECRET",
                WEBHOOK_SECRET.into(),
            ),
            ("MEDRELAY__BILLING__CARD__BASE_URL", self.server.uri()),
        ]
    }

    /// Points `settings` at this fake.
    pub fn configure(&self, settings: &mut medrelay::config::Settings) {
        let card = &mut settings.billing.card;
        card.secret_key = SECRET_KEY.into();
        card.webhook_secret = WEBHOOK_SECRET.into();
        card.base_url = self.server.uri();
    }

    /// The next `n` charges or refunds are held (3 s) before their answer.
    pub fn hold_next(&self, n: usize) {
        self.books.lock().unwrap().holds = n;
    }

    /// The next `n` charge requests answer 500.
    pub fn fail_next(&self, n: usize) {
        self.books.lock().unwrap().outages = n;
    }

    /// Charges made: the PaymentIntents created (a request under a key seen
    /// before gets the first answer again and creates none).
    pub fn intents(&self) -> usize {
        self.books.lock().unwrap().intents.len()
    }

    /// Refunds made: one per distinct refund key answered.
    pub fn refunds_made(&self) -> usize {
        let books = self.books.lock().unwrap();
        books
            .answers
            .keys()
            .filter(|k| k.contains("-refund-"))
            .count()
    }

    /// Requests received at `path` (method and path), in order.
    pub async fn requests(&self, verb: &str, at: &str) -> Vec<Request> {
        let all = self.server.received_requests().await.unwrap_or_default();
        all.into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path() == at)
            .collect()
    }

    /// Moves PaymentIntent `id` to `status`, as the gateway does on its own.
    pub fn settle(&self, id: &str, status: &str) -> Value {
        let mut books = self.books.lock().unwrap();
        let intent = books.intents.get_mut(id).expect("a known PaymentIntent");
        intent["status"] = json!(status);
        intent.clone()
    }

    /// A webhook request body for `intent` and the `Stripe-Signature` made at
    /// unix time `t` with `secret`.
    pub fn event(id: &str, kind: &str, intent: &Value, t: i64, secret: &str) -> (String, String) {
        let body = json!({"id": id, "object": "event", "type": kind,
                          "data": {"object": intent}})
        .to_string();
        (body.clone(), signature(secret, t, &body))
    }
}

/// `t=...,v1=...` over `body`, computed here independently of the server.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

fn form(request: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn key_of(request: &Request) -> String {
    request
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn authorised(request: &Request) -> bool {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"))
}

fn answer(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

struct Charges(CardFake);

impl Respond for Charges {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !authorised(request) {
            return answer(401, json!({"error": {"type": "invalid_request_error"}}));
        }
        let mut books = self.0.books.lock().unwrap();
        if books.outages > 0 {
            books.outages -= 1;
            return answer(500, json!({"error": {"type": "api_error"}}));
        }
        let key = key_of(request);
        let held = books.holds > 0;
        books.holds = books.holds.saturating_sub(1);
        let (status, body) = match books.answers.get(&key) {
            Some(first) => first.clone(),
            None => {
                let params = form(request);
                let n = books.intents.len() + 1;
                let id = format!("pi_{n}");
                let token = params.get("payment_method").cloned().unwrap_or_default();
                let metadata = json!({"payment_id": params.get("metadata[payment_id]"),
                                      "patient_id": params.get("metadata[patient_id]")});
                let status = match token.as_str() {
                    "pm_card_visa" => "succeeded",
                    "pm_card_processing" => "processing",
                    _ => "requires_payment_method",
                };
                let intent = json!({"id": id, "object": "payment_intent", "status": status,
                    "amount": params.get("amount").map(|a| a.parse::<i64>().unwrap()),
                    "currency": params.get("currency"), "metadata": metadata,
                    "latest_charge": {"id": format!("ch_{n}"),
                        "payment_method_details": {"card": {"last4": "4242"}}}});
                books.intents.insert(id, intent.clone());
                let first = if status == "requires_payment_method" {
                    (
                        402,
                        json!({"error": {"type": "card_error", "code": "card_declined",
                                           "message": "Your card was declined.",
                                           "payment_intent": intent}}),
                    )
                } else {
                    (200, intent)
                };
                books.answers.insert(key, first.clone());
                first
            }
        };
        let template = answer(status, body);
        if held {
            template.set_delay(self.0.hold)
        } else {
            template
        }
    }
}

struct Lookups(CardFake);

impl Respond for Lookups {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        match self.0.books.lock().unwrap().intents.get(id) {
            Some(intent) if authorised(request) => answer(200, intent.clone()),
            _ => answer(404, json!({"error": {"type": "invalid_request_error"}})),
        }
    }
}

struct Refunds(CardFake);

impl Respond for Refunds {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !authorised(request) {
            return answer(401, json!({"error": {"type": "invalid_request_error"}}));
        }
        let mut books = self.0.books.lock().unwrap();
        let key = key_of(request);
        let held = books.holds > 0;
        books.holds = books.holds.saturating_sub(1);
        let body = match books.answers.get(&key) {
            Some((_, body)) => body.clone(),
            None => {
                let n = books.answers.len() + 1;
                let body = json!({"id": format!("re_{n}"), "object": "refund", "status": "succeeded",
                                  "payment_intent": form(request).get("payment_intent")});
                books.answers.insert(key, (200, body.clone()));
                body
            }
        };
        let template = answer(200, body);
        if held {
            template.set_delay(self.0.hold)
        } else {
            template
        }
    }
}

/// Posts `body` to `path` under `Idempotency-Key: key` in the background,
/// waits until `fake` holds the request it makes at `held_at`, kills the
/// server (SIGKILL), and checks that the request got no answer.
pub async fn kill_while_held(
    server: Process,
    app: &TestApp,
    token: &str,
    (path, key, body): (&str, &str, Value),
    fake: &CardFake,
    held_at: &str,
) {
    let before = fake.requests("POST", held_at).await.len();
    let sending = {
        let app = TestApp::attached(app.addr, &app.data_dir);
        let (url, token, key) = (app.url(path), token.to_owned(), key.to_owned());
        tokio::spawn(async move {
            app.http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let held = eventually(Duration::from_secs(10), || async {
        fake.requests("POST", held_at).await.len() > before
    })
    .await;
    assert!(held, "the request reached the gateway at {held_at}");
    server.kill();
    let answered = sending.await.unwrap();
    assert!(
        answered.is_err(),
        "the request lost its server before an answer: {answered:?}"
    );
}

/// A data folder with an admin, served by a process pointed at a fake
/// gateway, with checkpoints far apart (a kill leaves a log to replay).
pub struct Killable {
    _dir: tempfile::TempDir,
    /// The data folder.
    pub data: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Killable {
    pub async fn new(fake: &CardFake) -> Killable {
        let (dir, data) = data_with_admin().await;
        let mut env = fake.env();
        env.extend(FAR_CHECKPOINTS.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Killable {
            _dir: dir,
            data,
            env,
        }
    }

    /// Starts (or restarts) the server on the folder.
    pub fn start(&self) -> Process {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Process::start(&self.data, &env)
    }
}
