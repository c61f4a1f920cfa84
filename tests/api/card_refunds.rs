//! A refund through the card gateway survives a SIGKILL: journalled before
//! the gateway is asked, completed by the restarted server under the same
//! refund key, so the money goes back once and is recorded once.

use std::time::Duration;

use serde_json::json;

use crate::card_fake::{self, CardFake};
use crate::helpers::*;

#[tokio::test]
async fn a_kill_while_the_gateway_holds_a_refund_gives_it_back_once_and_records_it() {
    let fake = CardFake::start().await;
    let clinic = card_fake::Killable::new(&fake).await;
    let data = clinic.data.clone();
    let server = clinic.start();
    let app = server.app(&data);
    let alice = app.signup_patient("alice").await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill_r", "patientId": alice.patient_id,
                   "services": [{"serviceId": "s", "description": "Visit", "amount": "80.00"}]}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, paid) = app
        .post(
            &format!("/api/patients/{}/payments", alice.patient_id),
            json!({"amount": "80.00", "method": "card", "cardToken": "pm_card_visa"}),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(
        (status, paid["status"].clone()),
        (201, json!("succeeded")),
        "{paid}"
    );
    let id = paid["paymentId"].as_str().unwrap().to_owned();

    fake.hold_next(1);
    let path = format!("/api/payments/{id}/refunds");
    let body = json!({"amount": "30.00", "reason": "overcharged"});
    let at = "/v1/refunds";
    card_fake::kill_while_held(
        server,
        &app,
        &admin,
        (&path, "refund-kill", body),
        &fake,
        at,
    )
    .await;

    let server = clinic.start();
    let app = server.app(&data);
    let recorded = eventually(Duration::from_secs(15), || async {
        get_text(&app, &format!("/api/payments/{id}"), &admin)
            .await
            .contains(r#""refunded":30.00"#)
    })
    .await;
    assert!(recorded, "the restarted server completed the refund");
    // The request sent again under its key gets the refund's answer.
    let again = app
        .http
        .post(app.url(&format!("/api/payments/{id}/refunds")))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "refund-kill")
        .json(&json!({"amount": "30.00", "reason": "overcharged"}))
        .send()
        .await
        .unwrap();
    let (status, again) = read(again).await;
    assert_eq!(
        (status, again["paymentId"].as_str()),
        (201, Some(id.as_str())),
        "{again}"
    );
    let view = get_text(&app, &format!("/api/payments/{id}"), &admin).await;
    assert!(view.contains(r#""status":"partially_refunded""#), "{view}");
    assert!(
        view.contains(r#""refunded":30.00"#),
        "refunded once: {view}"
    );
    let sent = fake.requests("POST", "/v1/refunds").await;
    assert!(sent.len() >= 2, "asked again after the restart");
    let key = format!("{id}-refund-1");
    assert!(
        sent.iter()
            .all(|r| r.headers.get("idempotency-key").unwrap() == key.as_str())
    );
    assert_eq!(fake.refunds_made(), 1, "given back once");
    let bill = get_text(&app, "/api/bills/bill_r", &admin).await;
    assert!(bill.contains(r#""paymentsApplied":50.00"#), "{bill}");
}
