//! Card payments through the card gateway (a Stripe-shaped fake on
//! wiremock): the exact request, patients paying their own bills, declines,
//! refunds through the gateway, racing requests, retries, webhooks (forged,
//! stale, replayed) and crash recovery (SIGKILL while the gateway holds a
//! charge; a restart while a charge is processing).

use std::time::Duration;

use serde_json::{Value, json};

use crate::card_fake::{self, CardFake};
use crate::helpers::*;

/// A server pointed at a fresh fake gateway, an admin, patient alice with
/// one bill of 100.00, and patient bob.
struct CardClinic {
    app: TestApp,
    fake: CardFake,
    admin: String,
    alice: Patient,
    bob: Patient,
}

async fn card_clinic() -> CardClinic {
    let fake = CardFake::start().await;
    let app = spawn_app_with(|s| fake.configure(s)).await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    bill(&app, &admin, &alice.patient_id, "bill_a", "100.00").await;
    CardClinic {
        app,
        fake,
        admin,
        alice,
        bob,
    }
}

async fn bill(app: &TestApp, admin: &str, patient: &str, id: &str, amount: &str) {
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": id, "patientId": patient,
                   "services": [{"serviceId": "s", "description": "Visit", "amount": amount}]}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn pay(
    app: &TestApp,
    token: &str,
    patient: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/api/patients/{patient}/payments")))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}

fn card(amount: &str, token: &str) -> Value {
    json!({"amount": amount, "method": "card", "cardToken": token})
}

async fn webhook(app: &TestApp, body: &str, signature: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/payments/webhook"))
        .header("Stripe-Signature", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Alice pays `amount` with a card the gateway keeps `processing`; its id.
async fn processing(c: &CardClinic, amount: &str) -> String {
    let token = &c.alice.tokens.token;
    let body = card(amount, "pm_card_processing");
    let (status, taken) = pay(&c.app, token, &c.alice.patient_id, None, body).await;
    assert_eq!(
        (status, taken["status"].clone()),
        (201, json!("processing")),
        "{taken}"
    );
    taken["paymentId"].as_str().unwrap().to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_patient_pays_their_bill_by_card_with_the_exact_gateway_request() {
    let c = card_clinic().await;
    let (status, paid) = pay(
        &c.app,
        &c.alice.tokens.token,
        &c.alice.patient_id,
        None,
        card("60.00", "pm_card_visa"),
    )
    .await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "succeeded");
    let id = paid["paymentId"].as_str().unwrap();

    let sent = c.fake.requests("POST", "/v1/payment_intents").await;
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        header("authorization"),
        format!("Bearer {}", card_fake::SECRET_KEY)
    );
    assert_eq!(header("idempotency-key"), id);
    assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
    let expected = format!(
        "amount=6000&currency=usd&payment_method=pm_card_visa&confirm=true\
         &automatic_payment_methods%5Benabled%5D=true\
         &automatic_payment_methods%5Ballow_redirects%5D=never\
         &metadata%5Bpayment_id%5D={id}&metadata%5Bpatient_id%5D={}\
         &expand%5B%5D=latest_charge",
        c.alice.patient_id
    );
    assert_eq!(String::from_utf8_lossy(&request.body), expected);

    let (status, view) = c
        .app
        .get(&format!("/api/payments/{id}"), Some(&c.alice.tokens.token))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["cardLast4"], "4242");
    assert_eq!(view["gatewayReference"], "pi_1");
    let text = get_text(
        &c.app,
        &format!("/api/payments/{id}"),
        &c.alice.tokens.token,
    )
    .await;
    assert!(
        text.contains(r#""allocations":[{"billId":"bill_a","amount":60.00}]"#),
        "{text}"
    );
    let (_, bill) = c.app.get("/api/bills/bill_a", Some(&c.admin)).await;
    assert_eq!(bill["status"], "PartiallyPaid", "{bill}");

    // A refund goes back through the gateway, under a key of its own.
    let (status, refunded) = c
        .app
        .post(
            &format!("/api/payments/{id}/refunds"),
            json!({"amount": "20.00", "reason": "overcharged"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 201, "{refunded}");
    assert_eq!(refunded["status"], "partially_refunded");
    let refunds = c.fake.requests("POST", "/v1/refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0]
            .headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("{id}-refund-1")
    );
    assert_eq!(
        String::from_utf8_lossy(&refunds[0].body),
        format!(
            "payment_intent=pi_1&amount=2000&metadata%5Bpayment_id%5D={id}\
             &metadata%5Brefund_key%5D={id}-refund-1"
        )
    );
}

#[tokio::test]
async fn card_payments_refuse_strangers_card_numbers_and_bad_input() {
    let c = card_clinic().await;
    let alice = c.alice.patient_id.as_str();
    let token = c.alice.tokens.token.as_str();
    // Bob cannot pay alice's bills; a patient cannot record desk money.
    let (status, body) = pay(
        &c.app,
        &c.bob.tokens.token,
        alice,
        None,
        card("10.00", "pm_card_visa"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = pay(
        &c.app,
        token,
        alice,
        None,
        json!({"amount": "10.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let refused = [
        (card("10.00", "4242 4242 4242 4242"), "cardToken"),
        (card("10.00", "4242424242424242"), "cardToken"),
        (json!({"amount": "10.00", "method": "card"}), "cardToken"),
        (card("10.00", "pm_<script>"), "cardToken"),
        (card("10.00", &"x".repeat(300)), "cardToken"),
        (card("0.00", "pm_card_visa"), "amount"),
        (card("10.001", "pm_card_visa"), "amount"),
        (card("-1.00", "pm_card_visa"), "amount"),
    ];
    for (body, field) in refused {
        let (status, answer) = pay(&c.app, token, alice, None, body.clone()).await;
        assert!(status == 422 || status == 400, "{body}: {status} {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = pay(
        &c.app,
        &c.admin,
        alice,
        None,
        json!({"amount": "1.00", "method": "cash", "cardToken": "pm_card_visa"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (422, json!("cardToken"))
    );
    assert!(
        c.fake
            .requests("POST", "/v1/payment_intents")
            .await
            .is_empty()
    );

    // A declined card: the payment fails, nothing is applied.
    let (status, declined) = pay(
        &c.app,
        token,
        alice,
        None,
        card("10.00", "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(
        (status, declined["status"].clone()),
        (201, json!("failed")),
        "{declined}"
    );
    let (_, view) = c
        .app
        .get(
            &format!("/api/payments/{}", declined["paymentId"].as_str().unwrap()),
            Some(token),
        )
        .await;
    let note = view["history"].as_array().unwrap().last().unwrap()["note"].to_string();
    assert!(note.contains("declined"), "{view}");
    let (_, bill) = c.app.get("/api/bills/bill_a", Some(&c.admin)).await;
    assert_eq!(bill["status"], "Issued", "{bill}");
}

#[tokio::test]
async fn racing_identical_card_requests_make_one_charge_and_a_passing_outage_is_retried() {
    let c = card_clinic().await;
    let mut racing = Vec::new();
    for _ in 0..100 {
        let (app, token, patient) = (
            TestApp::attached(c.app.addr, &c.app.data_dir),
            c.alice.tokens.token.clone(),
            c.alice.patient_id.clone(),
        );
        racing.push(tokio::spawn(async move {
            pay(
                &app,
                &token,
                &patient,
                Some("race-1"),
                card("5.00", "pm_card_visa"),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in racing {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                ids.insert(body["paymentId"].as_str().unwrap().to_owned());
            }
            409 => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "one payment for one key: {ids:?}");
    assert_eq!(
        c.fake.requests("POST", "/v1/payment_intents").await.len(),
        1
    );

    // Two 500s, then the gateway answers: one charge, three requests, one key.
    c.fake.fail_next(2);
    let (status, paid) = pay(
        &c.app,
        &c.alice.tokens.token,
        &c.alice.patient_id,
        None,
        card("5.00", "pm_card_visa"),
    )
    .await;
    assert_eq!(
        (status, paid["status"].clone()),
        (201, json!("succeeded")),
        "{paid}"
    );
    let sent = c.fake.requests("POST", "/v1/payment_intents").await;
    assert_eq!(sent.len(), 4);
    let id = paid["paymentId"].as_str().unwrap();
    assert!(
        sent[1..]
            .iter()
            .all(|r| r.headers.get("idempotency-key").unwrap() == id)
    );
    assert_eq!(c.fake.intents(), 2);

    // A gateway away for longer: taken (202) with its id, left pending for
    // the sweep, and not made twice under its key.
    c.fake.fail_next(100);
    let body = card("5.00", "pm_card_visa");
    let token = &c.alice.tokens.token;
    let (status, taken) = pay(
        &c.app,
        token,
        &c.alice.patient_id,
        Some("away-1"),
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, taken["status"].clone()),
        (202, json!("pending")),
        "{taken}"
    );
    let (status, _) = pay(&c.app, token, &c.alice.patient_id, Some("away-1"), body).await;
    assert_eq!(status, 409, "in flight until the sweep settles it");
}

#[tokio::test]
async fn webhooks_are_taken_signed_fresh_and_once() {
    let c = card_clinic().await;
    let token = c.alice.tokens.token.as_str();
    let id = processing(&c, "100.00").await;
    let mut board = c.app.ws(Some(token)).await;
    let channel = format!("billing:{}", c.alice.patient_id);
    let sub = board
        .call(json!({"type": "subscribe", "channel": channel}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");

    let intent = c.fake.settle("pi_1", "succeeded");
    let (body, good) = CardFake::event(
        "evt_1",
        "payment_intent.succeeded",
        &intent,
        now(),
        card_fake::WEBHOOK_SECRET,
    );
    let forged = card_fake::signature("whsec_other", now(), &body);
    let stale = card_fake::signature(card_fake::WEBHOOK_SECRET, now() - 301, &body);
    for (signature, why) in [
        (forged.as_str(), "forged"),
        (stale.as_str(), "stale"),
        ("t=1", "unsigned"),
    ] {
        let (status, answer) = webhook(&c.app, &body, signature).await;
        assert_eq!(status, 400, "{why}: {answer}");
        assert_eq!(answer["error"]["field"], "Stripe-Signature");
    }
    let (status, answer) = webhook(&c.app, &body.replace("100", "999"), &good).await;
    assert_eq!(status, 400, "a body changed after signing: {answer}");
    let (_, still) = c.app.get(&format!("/api/payments/{id}"), Some(token)).await;
    assert_eq!(still["status"], "processing");

    let (status, answer) = webhook(&c.app, &body, &good).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (200, json!("taken")),
        "{answer}"
    );
    let live = loop {
        let event = board.next_event().await;
        if event["event"]["kind"] == "payment_changed" {
            break event;
        }
    };
    assert_eq!(live["event"]["status"], "succeeded", "{live}");
    let (_, paid) = c.app.get(&format!("/api/payments/{id}"), Some(token)).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let (_, bill) = c.app.get("/api/bills/bill_a", Some(&c.admin)).await;
    assert_eq!(bill["status"], "Paid", "{bill}");

    // The same event again, freshly signed, is known by its id; a later
    // contrary event is recorded and changes nothing, once.
    let (_, again) = CardFake::event(
        "evt_1",
        "payment_intent.succeeded",
        &intent,
        now(),
        card_fake::WEBHOOK_SECRET,
    );
    let (status, answer) = webhook(&c.app, &body, &again).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (200, json!("replayed"))
    );
    let mut failed = intent.clone();
    failed["status"] = json!("requires_payment_method");
    let (late, signed) = CardFake::event(
        "evt_2",
        "payment_intent.payment_failed",
        &failed,
        now(),
        card_fake::WEBHOOK_SECRET,
    );
    let (status, answer) = webhook(&c.app, &late, &signed).await;
    assert_eq!((status, answer["outcome"].clone()), (200, json!("taken")));
    let (status, answer) = webhook(&c.app, &late, &signed).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (200, json!("replayed"))
    );
    let (_, after) = c.app.get(&format!("/api/payments/{id}"), Some(token)).await;
    assert_eq!(after["history"], paid["history"], "{after}");
    let bill_after = get_text(&c.app, "/api/bills/bill_a", &c.admin).await;
    assert!(
        bill_after.contains(r#""paymentsApplied":100.00"#),
        "{bill_after}"
    );
    board.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_processing_charge_is_asked_about_after_a_restart() {
    let c = card_clinic().await;
    let token = c.alice.tokens.token.clone();
    let id = processing(&c, "40.00").await;
    c.fake.settle("pi_1", "succeeded");
    let fake = c.fake.clone();
    let app = c.app.restart(|s| fake.configure(s)).await;
    let settled = eventually(Duration::from_secs(10), || async {
        app.get(&format!("/api/payments/{id}"), Some(&token))
            .await
            .1["status"]
            == "succeeded"
    })
    .await;
    assert!(
        settled,
        "the restarted server asked the gateway and settled it"
    );
    assert_eq!(
        fake.requests("GET", "/v1/payment_intents/pi_1").await.len(),
        1
    );
    assert_eq!(fake.requests("POST", "/v1/payment_intents").await.len(), 1);
}

#[tokio::test]
async fn a_kill_while_the_gateway_holds_a_charge_charges_once() {
    let fake = CardFake::start().await;
    let clinic = card_fake::Killable::new(&fake).await;
    let data = clinic.data.clone();
    let server = clinic.start();
    let app = server.app(&data);
    let alice = app.signup_patient("alice").await;
    let admin = app.admin_token().await;
    bill(&app, &admin, &alice.patient_id, "bill_k", "80.00").await;

    fake.hold_next(1);
    let path = format!("/api/patients/{}/payments", alice.patient_id);
    let body = card("80.00", "pm_card_visa");
    let token = alice.tokens.token.clone();
    let at = "/v1/payment_intents";
    card_fake::kill_while_held(server, &app, &token, (&path, "kill-1", body), &fake, at).await;

    let server = clinic.start();
    let app = server.app(&data);
    let (status, list) = app
        .get(
            &format!("/api/payments?patientId={}", alice.patient_id),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let id = list["payments"][0]["paymentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = eventually(Duration::from_secs(15), || async {
        let (_, p) = app.get(&format!("/api/payments/{id}"), Some(&admin)).await;
        p["status"] == "succeeded" || p["status"] == "failed"
    })
    .await;
    assert!(ended, "the payment is not left pending");
    // The same key again answers with that payment.
    let (status, again) = pay(
        &app,
        &alice.tokens.token,
        &alice.patient_id,
        Some("kill-1"),
        card("80.00", "pm_card_visa"),
    )
    .await;
    assert_eq!(
        (status, again["paymentId"].as_str()),
        (201, Some(id.as_str())),
        "{again}"
    );
    let sent = fake.requests("POST", "/v1/payment_intents").await;
    assert!(
        sent.iter()
            .all(|r| r.headers.get("idempotency-key").unwrap() == id.as_str())
    );
    assert_eq!(fake.intents(), 1, "one charge at the gateway");
    let bill = get_text(&app, "/api/bills/bill_k", &admin).await;
    assert!(bill.contains(r#""paymentsApplied":80.00"#), "{bill}");
    assert!(bill.contains(r#""status":"Paid""#), "{bill}");
}
