//! Desk payments: applied to the oldest open bills (or those named), the
//! rest as credit; idempotency keys (replay, mismatch, 100 racing identical
//! requests make one payment); refunds, partial then full, never more than
//! is left; who may pay and read.

use serde_json::{Value, json};

use crate::care::{CareClinic, care_clinic};
use crate::helpers::*;

async fn bill(c: &CareClinic, id: &str, amount: &str) {
    let (status, body) = c
        .app
        .post(
            "/api/bills",
            json!({"billId": id, "patientId": c.alice.patient_id,
                   "services": [{"serviceId": "s", "description": "Visit", "amount": amount}]}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Posts `body` with an optional idempotency key; status and raw body.
async fn pay(c: &CareClinic, token: &str, key: Option<&str>, body: &Value) -> (u16, String) {
    let path = format!("/api/patients/{}/payments", c.alice.patient_id);
    let mut request = c
        .app
        .http
        .post(c.app.url(&path))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn id_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["paymentId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_payment_pays_the_oldest_bills_first_and_the_rest_becomes_credit() {
    let c = care_clinic(|_| {}).await;
    bill(&c, "b1", "100.00").await;
    bill(&c, "b2", "50.00").await;
    let (status, body) = pay(
        &c,
        &c.admin,
        None,
        &json!({"amount": "120.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.contains(r#""status":"succeeded""#), "{body}");
    let first = id_of(&body);
    let payment = get_text(
        &c.app,
        &format!("/api/payments/{first}"),
        &c.alice.tokens.token,
    )
    .await;
    assert!(
        payment.contains(
            r#""allocations":[{"billId":"b1","amount":100.00},{"billId":"b2","amount":20.00}]"#
        ),
        "{payment}"
    );
    assert!(
        payment.contains(r#""credited":0.00"#) && payment.contains(r#""currency":"USD""#),
        "{payment}"
    );
    assert!(
        get_text(&c.app, "/api/bills/b1", &c.admin)
            .await
            .contains(r#""status":"Paid""#)
    );
    let b2 = get_text(&c.app, "/api/bills/b2", &c.admin).await;
    assert!(
        b2.contains(r#""status":"PartiallyPaid""#) && b2.contains(r#""balanceDue":30.00"#),
        "{b2}"
    );

    // Naming the bill; what is left over is credit.
    let (status, body) = pay(
        &c,
        &c.admin,
        None,
        &json!({"amount": 50, "method": "card_terminal", "billIds": ["b2"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let account = get_text(
        &c.app,
        &format!("/api/billing-accounts/{}", c.alice.patient_id),
        &c.alice.tokens.token,
    )
    .await;
    assert!(
        account.contains(r#""balance":0.00"#) && account.contains(r#""credit":20.00"#),
        "{account}"
    );
    let listed: Value = serde_json::from_str(&account).unwrap();
    assert_eq!(listed["payments"].as_array().unwrap().len(), 2, "{account}");
    assert_eq!(
        listed["payments"][1]["paymentId"],
        first.as_str(),
        "newest first"
    );

    // Who may pay and read.
    let (status, _) = pay(
        &c,
        &c.alice.tokens.token,
        None,
        &json!({"amount": 5, "method": "cash"}),
    )
    .await;
    assert_eq!(status, 403, "patients do not record desk payments");
    for who in [&c.bob.tokens.token, &c.dr] {
        let (status, _) = c
            .app
            .get(&format!("/api/payments/{first}"), Some(who))
            .await;
        assert_eq!(status, 403);
    }
    let (status, list) = c
        .app
        .get("/api/payments", Some(&c.alice.tokens.token))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["payments"].as_array().unwrap().len(), 2);
    let (_, list) = c
        .app
        .get("/api/payments?status=succeeded&limit=1", Some(&c.admin))
        .await;
    assert_eq!(list["payments"].as_array().unwrap().len(), 1);
    assert!(list["next"].is_string());

    // Bad input names the field.
    for (body, status, field) in [
        (json!({"amount": -1, "method": "cash"}), 422, "amount"),
        (json!({"amount": 0, "method": "cash"}), 422, "amount"),
        (json!({"amount": "1.001", "method": "cash"}), 422, "amount"),
        (
            json!({"amount": 5, "method": "cash", "billIds": ["b1"]}),
            422,
            "billIds[0]",
        ),
        (
            json!({"amount": 5, "method": "cash", "billIds": ["nope"]}),
            422,
            "billIds[0]",
        ),
        (json!({"amount": 5, "method": "bitcoin"}), 400, "method"),
    ] {
        let (got, reply) = pay(&c, &c.admin, None, &body).await;
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            (got, reply["error"]["field"].as_str()),
            (status, Some(field)),
            "{body}: {reply}"
        );
    }
    let (status, reply) = pay(
        &c,
        &c.admin,
        Some(&"k".repeat(256)),
        &json!({"amount": 5, "method": "cash"}),
    )
    .await;
    assert_eq!(status, 422, "{reply}");
}

#[tokio::test]
async fn a_bill_with_payments_takes_its_status_from_them() {
    let c = care_clinic(|_| {}).await;
    bill(&c, "b1", "100.00").await;
    let (status, body) = pay(
        &c,
        &c.admin,
        None,
        &json!({"amount": "60.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = c
        .app
        .put("/api/bills/b1", json!({"status": "Draft"}), &c.admin)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "{body}"
    );
    // Corrected down to what is paid: the bill is paid.
    let lowered =
        json!({"services": [{"serviceId": "s", "description": "Visit", "amount": "60.00"}]});
    let (status, body) = c.app.put("/api/bills/b1", lowered, &c.admin).await;
    assert_eq!(status, 200, "{body}");
    let b1 = get_text(&c.app, "/api/bills/b1", &c.admin).await;
    assert!(
        b1.contains(r#""status":"Paid""#) && b1.contains(r#""balanceDue":0.00"#),
        "{b1}"
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_one_payment_however_often_it_is_sent() {
    let c = care_clinic(|_| {}).await;
    bill(&c, "b1", "100.00").await;
    let body = json!({"amount": "10.00", "method": "cash"});
    let (status, first) = pay(&c, &c.admin, Some("key-1"), &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = pay(&c, &c.admin, Some("key-1"), &body).await;
    assert_eq!(
        (status, again.as_str()),
        (201, first.as_str()),
        "replayed byte for byte"
    );
    let (status, reply) = pay(
        &c,
        &c.admin,
        Some("key-1"),
        &json!({"amount": "11.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply.contains("idempotency_mismatch"), "{reply}");

    // 100 identical requests at once: one payment; every answer is the
    // payment's or "in flight".
    let racing = json!({"amount": "1.00", "method": "cash"});
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, url, token, body) = (
            c.app.http.clone(),
            c.app
                .url(&format!("/api/patients/{}/payments", c.alice.patient_id)),
            c.admin.clone(),
            racing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "race-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut made = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                made.insert(id_of(&body));
            }
            409 => assert!(body.contains("in flight"), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(made.len(), 1, "one payment: {made:?}");
    let (_, list) = c
        .app
        .get(
            &format!("/api/payments?patientId={}", c.alice.patient_id),
            Some(&c.admin),
        )
        .await;
    assert_eq!(list["payments"].as_array().unwrap().len(), 2, "{list}");
    let b1 = get_text(&c.app, "/api/bills/b1", &c.admin).await;
    assert!(b1.contains(r#""paymentsApplied":11.00"#), "{b1}");
}

#[tokio::test]
async fn refunds_take_credit_first_reopen_bills_and_never_exceed_the_payment() {
    let c = care_clinic(|_| {}).await;
    bill(&c, "b1", "100.00").await;
    let (status, body) = pay(
        &c,
        &c.admin,
        None,
        &json!({"amount": "130.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = id_of(&body);
    let refunds = format!("/api/payments/{id}/refunds");
    let (status, body) = c
        .app
        .post(
            &refunds,
            json!({"amount": "40.00", "reason": "overpaid"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("partially_refunded")),
        "{body}"
    );
    // 30.00 came from credit, 10.00 from the bill, which is open again.
    let account = get_text(
        &c.app,
        &format!("/api/billing-accounts/{}", c.alice.patient_id),
        &c.admin,
    )
    .await;
    assert!(
        account.contains(r#""credit":0.00"#) && account.contains(r#""balance":10.00"#),
        "{account}"
    );
    let (status, body) = c
        .app
        .post(
            &refunds,
            json!({"amount": "90.01", "reason": "too much"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (409, Some("amount")),
        "{body}"
    );
    let (status, body) = c
        .app
        .post(
            &refunds,
            json!({"amount": "90.00", "reason": "cancelled visit"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("refunded")),
        "{body}"
    );
    let b1 = get_text(&c.app, "/api/bills/b1", &c.admin).await;
    assert!(
        b1.contains(r#""status":"Issued""#) && b1.contains(r#""balanceDue":100.00"#),
        "{b1}"
    );
    let payment = get_text(&c.app, &format!("/api/payments/{id}"), &c.admin).await;
    assert!(payment.contains(r#""refunded":130.00"#), "{payment}");
    assert!(
        payment.contains(&format!(
            "refunded 90.00 (desk_{id}-refund-2): cancelled visit"
        )),
        "{payment}"
    );
    let (status, _) = c
        .app
        .post(
            &refunds,
            json!({"amount": "1", "reason": "x"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 409, "nothing is left");
    let (status, _) = c
        .app
        .post(
            &refunds,
            json!({"amount": "1", "reason": "x"}),
            Some(&c.alice.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_patient_watches_their_payment_succeed_live() {
    let c = care_clinic(|_| {}).await;
    bill(&c, "b1", "40.00").await;
    let mut ws = c.app.ws(Some(&c.alice.tokens.token)).await;
    let channel = format!("billing:{}", c.alice.patient_id);
    let sub = ws
        .call(json!({"type": "subscribe", "channel": channel}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    let mut other = c.app.ws(Some(&c.bob.tokens.token)).await;
    let refused = other
        .call(json!({"type": "subscribe", "channel": channel}))
        .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");

    let (status, body) = pay(
        &c,
        &c.admin,
        None,
        &json!({"amount": "40.00", "method": "cash"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Paid at the desk, it is recorded and applied at once: never seen
    // pending.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = ws.next_event().await;
        let e = &event["event"];
        seen.push((
            e["kind"].as_str().unwrap().to_owned(),
            e["status"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("bill_changed".to_owned(), "Paid".to_owned()),
            ("payment_changed".to_owned(), "succeeded".to_owned()),
        ]
    );
    // A reconnect catches up from the store's history, amounts intact.
    let mut again = c.app.ws(Some(&c.alice.tokens.token)).await;
    let sub = again
        .call(json!({"type": "subscribe", "channel": channel, "since": 0}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");
    let first = again.next_event().await;
    assert_eq!(first["event"]["kind"], "bill_changed", "{first}");
    assert_eq!(first["event"]["totalAmount"], "40.00", "{first}");
}

/// Patients paying at once when the server is killed.
const PAYERS: usize = 4;
/// Payments each sends.
const EACH: usize = 60;
/// Answered payments after which the server is killed, mid-flight.
const KILL_AFTER: usize = 40;

#[tokio::test]
async fn a_kill_mid_payments_leaves_each_key_one_payment_applied_once() {
    let (_dir, data) = data_with_admin().await;
    let env = FAR_CHECKPOINTS;
    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    let mut patients = Vec::new();
    for i in 0..PAYERS {
        let (status, body) = app
            .post(
                "/api/patients",
                json!({"name": format!("Payer {i}")}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["patientId"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(
                "/api/bills",
                json!({"billId": format!("bill_k{i}"), "patientId": id,
                       "services": [{"serviceId": "s", "description": "Visit", "amount": "1000.00"}]}),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        patients.push(id);
    }
    let send = |http: reqwest::Client, url: String, admin: String, key: String| async move {
        let r = http
            .post(url)
            .bearer_auth(admin)
            .header("Idempotency-Key", key)
            .json(&json!({"amount": "1.00", "method": "cash"}))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        let body = r.text().await.ok()?;
        Some((status, body))
    };
    // Every payer pays in a loop; the kill lands while payments are in flight.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (p, patient) in patients.iter().enumerate() {
        let url = app.url(&format!("/api/patients/{patient}/payments"));
        let (http, admin, answered) = (app.http.clone(), admin.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..EACH {
                let key = format!("kill-{p}-{k}");
                match send(http.clone(), url.clone(), admin.clone(), key.clone()).await {
                    Some((201, body)) => {
                        acked.push((key, id_of(&body)));
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    while answered.load(std::sync::atomic::Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    server.kill();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert!(
        acked.len() >= KILL_AFTER && acked.len() < PAYERS * EACH,
        "the kill landed while payments were being made: {} answered",
        acked.len()
    );

    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    // Every key sent again: an answered one gets its payment back; each key
    // ends with exactly one payment.
    for (p, patient) in patients.iter().enumerate() {
        let url = app.url(&format!("/api/patients/{patient}/payments"));
        for k in 0..EACH {
            let key = format!("kill-{p}-{k}");
            let answer = eventually(std::time::Duration::from_secs(10), || {
                let (http, url, admin, key) =
                    (app.http.clone(), url.clone(), admin.clone(), key.clone());
                async move { matches!(send(http, url, admin, key).await, Some((201, _))) }
            })
            .await;
            assert!(answer, "{key} never answered 201 after the restart");
            let (_, body) = send(app.http.clone(), url.clone(), admin.clone(), key.clone())
                .await
                .unwrap();
            if let Some((_, id)) = acked.iter().find(|(k, _)| *k == key) {
                assert_eq!(&id_of(&body), id, "{key} answered with its first payment");
            }
        }
        let (status, list) = app
            .get(&format!("/api/payments?patientId={patient}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{list}");
        let payments = list["payments"].as_array().unwrap();
        assert_eq!(payments.len(), EACH, "one payment per key: {list}");
        assert!(
            payments.iter().all(|p| p["status"] == "succeeded"),
            "{list}"
        );
        let bill = get_text(&app, &format!("/api/bills/bill_k{p}"), &admin).await;
        let applied = format!(r#""paymentsApplied":{EACH}.00"#);
        assert!(bill.contains(&applied), "each applied once: {bill}");
    }
}
