//! Commands over NATS request/reply: answers like the WebSocket, and bad requests.

use std::time::Duration;

use serde_json::{Value, json};

use super::{all_day_provider, booking, slots, with_nats};
use crate::helpers::*;
use crate::nats_harness::NatsServer;

async fn request(
    client: &async_nats::Client,
    subject: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    request_raw(client, subject, token, body.to_string().into_bytes()).await
}

async fn request_raw(
    client: &async_nats::Client,
    subject: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(token) = token {
        headers.insert("Authorization", format!("Bearer {token}").as_str());
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request_with_headers(subject.to_owned(), headers, body.into()),
    )
    .await
    .expect("a reply within 10 s")
    .expect("a reply, not no-responders");
    serde_json::from_slice(&response.payload).unwrap()
}

/// Waits until the owner subscribed to its command subjects.
async fn commands_ready(client: &async_nats::Client, admin: &str) {
    let ready = eventually(Duration::from_secs(10), || async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {admin}").as_str());
        client
            .request_with_headers(
                "medrelay.cmd.schedule.probe".to_owned(),
                headers,
                b"{}".as_slice().into(),
            )
            .await
            .is_ok()
    })
    .await;
    assert!(ready, "the server never answered on NATS");
}

#[tokio::test]
async fn commands_over_nats_answer_like_the_websocket_and_reach_its_boards() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("bob").await;
    let q = app.signup_patient("carol").await;
    let client = nats.client().await;
    commands_ready(&client, &admin).await;
    let subject = "medrelay.cmd.schedule.prov001";
    let slots = slots(3);

    let mut board = app.ws(Some(&admin)).await;
    let sub = board
        .call(json!({"type": "subscribe", "channel": "board:prov001"}))
        .await;
    assert_eq!(sub["ok"], true, "{sub}");

    let mut cmd = booking(&p.patient_id, "prov001", &slots[0]);
    cmd["type"] = json!("book");
    cmd["id"] = json!("n1");
    let booked = request(&client, subject, Some(&p.tokens.token), cmd).await;
    assert_eq!(booked["re"], "n1");
    assert_eq!(booked["ok"], true, "{booked}");
    assert_eq!(booked["data"]["status"], "Created");
    let id = booked["data"]["appointmentId"].as_str().unwrap().to_owned();
    let event = board.next_event().await;
    assert_eq!(event["event"]["kind"], "appointment_booked");
    assert_eq!(event["event"]["appointmentId"], id.as_str());

    // The same taken slot, over NATS and over the WebSocket: the same error.
    let mut taken = booking(&q.patient_id, "prov001", &slots[0]);
    taken["type"] = json!("book");
    let over_nats = request(&client, subject, Some(&q.tokens.token), taken.clone()).await;
    let mut ws = app.ws(Some(&q.tokens.token)).await;
    let over_ws = ws.call(taken).await;
    assert_eq!(over_nats["ok"], false);
    assert_eq!(over_nats["error"]["code"], "slot_taken");
    assert_eq!(over_nats["error"], over_ws["error"]);

    // get, reschedule, board, cancel.
    let got = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "get", "appointmentId": id}),
    )
    .await;
    assert_eq!(got["data"]["appointmentId"], id.as_str());
    assert_eq!(got["data"]["timeSlot"], slots[0].1.as_str());
    let moved = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "reschedule", "appointmentId": id,
               "appointmentDate": slots[1].0, "timeSlot": slots[1].1}),
    )
    .await;
    assert_eq!(moved["data"]["status"], "Updated", "{moved}");
    assert_eq!(
        board.next_event().await["event"]["kind"],
        "appointment_rescheduled"
    );
    let snapshot = request(
        &client,
        subject,
        Some(&q.tokens.token),
        json!({"type": "board", "providerId": "prov001",
               "from": slots[1].0, "to": slots[1].0}),
    )
    .await;
    assert_eq!(snapshot["ok"], true, "{snapshot}");
    assert_eq!(snapshot["data"]["patientsShown"], false);
    let booked_slot = snapshot["data"]["snapshot"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["timeSlot"] == slots[1].1.as_str())
        .unwrap()
        .clone();
    assert_eq!(booked_slot["state"], "booked");
    assert!(booked_slot.get("patientId").is_none(), "{booked_slot}");
    // Another patient may not read or cancel it: the gateway's answers.
    let foreign = request(
        &client,
        subject,
        Some(&q.tokens.token),
        json!({"type": "cancel", "appointmentId": id}),
    )
    .await;
    assert_eq!(foreign["error"]["code"], "forbidden");
    let cancelled = request(
        &client,
        subject,
        Some(&p.tokens.token),
        json!({"type": "cancel", "appointmentId": id}),
    )
    .await;
    assert_eq!(cancelled["data"]["status"], "Cancelled");
    let event = board.next_event().await;
    assert_eq!(event["event"]["kind"], "appointment_cancelled");
    // When, so that a consumer of the stream tells a late cancellation.
    let at: jiff::Timestamp = event["event"]["cancelledAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at <= jiff::Timestamp::now()
            && at > jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1)
    );
}

#[tokio::test]
async fn bad_nats_requests_get_error_replies() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("dave").await;
    let client = nats.client().await;
    commands_ready(&client, &admin).await;
    let subject = "medrelay.cmd.schedule.prov001";
    let mut book = booking(&p.patient_id, "prov001", &slots(1)[0]);
    book["type"] = json!("book");
    book["id"] = json!("b1");

    let missing = request(&client, subject, None, book.clone()).await;
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["re"], "b1");
    assert_eq!(missing["error"]["code"], "unauthorized");
    let forged = request(&client, subject, Some("not.a.jwt"), book.clone()).await;
    assert_eq!(forged["error"]["code"], "unauthorized");
    let mut basic = async_nats::HeaderMap::new();
    basic.insert("Authorization", "Basic dXNlcjpwYXNz");
    let response = client
        .request_with_headers(subject.to_owned(), basic, book.to_string().into())
        .await
        .unwrap();
    let basic: Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(basic["error"]["code"], "unauthorized");

    let token = Some(p.tokens.token.as_str());
    let malformed = request_raw(&client, subject, token, b"{not json".to_vec()).await;
    assert_eq!(malformed["error"]["code"], "bad_request");
    let unknown = request(&client, subject, token, json!({"id": "u", "type": "fly"})).await;
    assert_eq!(unknown["error"]["code"], "bad_request");
    assert_eq!(unknown["re"], "u");
    let session = request(&client, subject, token, json!({"type": "ping"})).await;
    assert_eq!(session["error"]["code"], "bad_request");
    let mut elsewhere = book.clone();
    elsewhere["providerId"] = json!("prov002");
    let mismatch = request(&client, subject, token, elsewhere).await;
    assert_eq!(mismatch["error"]["code"], "bad_request");
    assert_eq!(mismatch["error"]["field"], "providerId");
    let mut nobody = book.clone();
    nobody["providerId"] = json!("nobody");
    let missing_doctor = request(&client, "medrelay.cmd.schedule.nobody", token, nobody).await;
    assert_eq!(missing_doctor["error"]["code"], "not_found");
    let huge = request_raw(&client, subject, token, vec![b' '; 70_000]).await;
    assert_eq!(huge["error"]["code"], "payload_too_large");
    // After all that, the real booking still works.
    let ok = request(&client, subject, token, book).await;
    assert_eq!(ok["ok"], true, "{ok}");
}

#[tokio::test]
async fn billing_accounts_answer_over_nats_with_exact_amounts() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await;
    let bob = app.signup_patient("bob").await;
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"patientId": alice.patient_id, "services": [
                {"serviceId": "s1", "description": "Visit", "amount": "0.10"},
                {"serviceId": "s2", "description": "Test", "amount": "0.20"}]}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let client = nats.client().await;
    let subject = format!("medrelay.cmd.billing.{}", alice.patient_id);
    let ready = eventually(Duration::from_secs(10), || async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {admin}").as_str());
        client
            .request_with_headers(subject.clone(), headers, b"{}".as_slice().into())
            .await
            .is_ok()
    })
    .await;
    assert!(ready, "the server never answered billing commands");

    // GetBillingAccount, read as bytes: the amounts keep their decimals.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Authorization",
        format!("Bearer {}", alice.tokens.token).as_str(),
    );
    let raw = client
        .request_with_headers(
            subject.clone(),
            headers,
            br#"{"type":"get","id":"g1"}"#.as_slice().into(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(raw.payload.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"re":"g1","ok":true"#), "{text}");
    assert!(
        text.contains(r#""balance":0.30"#) && text.contains(r#""credit":0.00"#),
        "{text}"
    );

    // Another patient may not read it; a patient may not create; admins may.
    let reply = request(
        &client,
        &subject,
        Some(&bob.tokens.token),
        json!({"type": "get"}),
    )
    .await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    let reply = request(
        &client,
        &subject,
        Some(&alice.tokens.token),
        json!({"type": "create"}),
    )
    .await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    let reply = request(
        &client,
        &subject,
        Some(&admin),
        json!({"type": "create", "id": "c1"}),
    )
    .await;
    assert_eq!(
        (reply["ok"].as_bool(), reply["re"].as_str()),
        (Some(true), Some("c1")),
        "{reply}"
    );
    assert_eq!(reply["data"]["patientId"], alice.patient_id.as_str());
    // Bad requests get error replies.
    let reply = request(&client, &subject, None, json!({"type": "get"})).await;
    assert_eq!(reply["error"]["code"], "unauthorized", "{reply}");
    let reply = request(&client, &subject, Some(&admin), json!({"type": "pay"})).await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    let reply = request(
        &client,
        "medrelay.cmd.billing.pat_nobody",
        Some(&admin),
        json!({"type": "create"}),
    )
    .await;
    assert_eq!(reply["error"]["code"], "not_found", "{reply}");

    // An insurer's decision on a claim, over NATS.
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill_c", "patientId": alice.patient_id,
                   "services": [{"serviceId": "s", "description": "Visit", "amount": "100.00"}],
                   "insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": "80.00"}}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, bill) = app.get("/api/bills/bill_c", Some(&admin)).await;
    let claim = bill["claimId"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post("/api/bills/bill_c/claim/submit", json!({}), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    let decide = json!({"type": "decide", "id": "d1", "claimId": claim,
                        "decision": {"status": "partially_approved", "approvedAmount": "60.00"}});
    let reply = request(&client, &subject, Some(&alice.tokens.token), decide.clone()).await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    let bobs = format!("medrelay.cmd.billing.{}", bob.patient_id);
    let reply = request(&client, &bobs, Some(&admin), decide.clone()).await;
    assert_eq!(
        reply["error"]["code"], "not_found",
        "another patient's subject: {reply}"
    );
    let reply = request(&client, &subject, Some(&admin), decide).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["data"],
        json!({"claimId": claim, "status": "partially_approved"})
    );
    let (_, text) = app.get(&format!("/api/claims/{claim}"), Some(&admin)).await;
    assert_eq!(text["approvedAmount"], json!(60.0), "{text}");
    let reply = request(&client, &subject, Some(&admin), json!({"type": "decide"})).await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
}
