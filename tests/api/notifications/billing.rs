//! Billing notices: a bill issued, a receipt, a refund and an insurer's
//! decision reach the patient in-app and by e-mail under the `billing`
//! category, once each; a patient who opts out of billing gets none.

use std::time::Duration;

use serde_json::json;

use super::{notifications, patient, subscribe_patient};
use crate::helpers::*;

/// The title and body of the next `n` billing notifications.
async fn billing_notices(ws: &mut Ws, n: usize) -> Vec<(String, String)> {
    notifications(ws, n)
        .await
        .into_iter()
        .map(|e| {
            let e = &e["event"];
            assert_eq!(e["category"], "billing", "{e}");
            (
                e["title"].as_str().unwrap().to_owned(),
                e["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn outbox_mail(app: &TestApp) -> Vec<String> {
    let outbox = app.data_dir.join("outbox").join("email");
    std::fs::read_dir(&outbox)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|f| std::fs::read_to_string(f.path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bills_receipts_refunds_and_claim_decisions_reach_the_patient_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let ines = patient(&app, "ines", "+4915112345680").await;
    let mut phone = subscribe_patient(&app, &ines, None).await;
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill_n1", "patientId": ines.patient_id,
                   "services": [{"serviceId": "s1", "description": "Consultation", "amount": "150.00"}],
                   "insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": "100.00"},
                   "status": "Issued"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let issued = billing_notices(&mut phone, 1).await;
    assert_eq!(issued[0].0, "New bill");
    assert!(
        issued[0].1.contains("bill bill_n1 for 150.00 USD"),
        "{issued:?}"
    );

    let (status, paid) = app
        .post(
            &format!("/api/patients/{}/payments", ines.patient_id),
            json!({"amount": "40.00", "method": "cash"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{paid}");
    let payment = paid["paymentId"].as_str().unwrap();
    let receipt = billing_notices(&mut phone, 1).await;
    assert_eq!(receipt[0].0, "Payment received");
    assert!(
        receipt[0]
            .1
            .contains(&format!("payment {payment} of 40.00 USD")),
        "{receipt:?}"
    );
    let (status, body) = app
        .post(
            &format!("/api/payments/{payment}/refunds"),
            json!({"amount": "15.00", "reason": "overcharged"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let refund = billing_notices(&mut phone, 1).await;
    assert!(
        refund[0].1.contains("15.00 USD of your payment"),
        "{refund:?}"
    );

    let (status, body) = app
        .post("/api/bills/bill_n1/claim/submit", json!({}), Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
    let claim = body["claimId"].as_str().unwrap().to_owned();
    for decision in [
        json!({"status": "in_review"}),
        json!({"status": "partially_approved", "approvedAmount": "80.00"}),
    ] {
        let (status, body) = app
            .put(&format!("/api/claims/{claim}"), decision, &admin)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Submission and review are no decision: the next notice is the decision.
    let decided = billing_notices(&mut phone, 1).await;
    assert_eq!(decided[0].0, "Insurance claim decided");
    assert!(
        decided[0].1.contains(&format!(
            "claim {claim} for bill bill_n1 is partially approved; the insurer approved 80.00 USD"
        )),
        "{decided:?}"
    );
    phone.no_event_within(Duration::from_millis(1500)).await;
    let four = eventually(Duration::from_secs(10), || async {
        outbox_mail(&app).len() >= 4
    })
    .await;
    let mail = outbox_mail(&app);
    assert!(
        four && mail.len() == 4,
        "each notice once by e-mail: {mail:?}"
    );
    assert!(mail.iter().any(|m| m.contains("Payment received")));

    // Opted out of billing: the next receipt is not sent anywhere.
    let (_, mut prefs) = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&ines.tokens.token),
        )
        .await;
    prefs["categories"]["billing"] = json!(false);
    let (status, body) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs,
            &ines.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .post(
            &format!("/api/patients/{}/payments", ines.patient_id),
            json!({"amount": "5.00", "method": "cash"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201);
    phone.no_event_within(Duration::from_millis(2500)).await;
    assert_eq!(outbox_mail(&app).len(), 4, "nothing more by e-mail");
}
