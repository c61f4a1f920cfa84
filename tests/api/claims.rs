//! Insurance claims: drafted with the bill, submitted, reviewed, denied,
//! corrected and resubmitted (every version kept), partially approved, paid
//! against the bill; the patient's share follows the decision.

use serde_json::{Value, json};

use crate::care::care_clinic;
use crate::helpers::*;

async fn claim_of(app: &TestApp, token: &str, claim: &str) -> Value {
    let (status, body) = app.get(&format!("/api/claims/{claim}"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn bill_text(app: &TestApp, token: &str) -> String {
    let response = app
        .http
        .get(app.url("/api/bills/bill789"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_claim_goes_from_draft_to_paid_through_a_denial_and_a_resubmission() {
    let mut c = care_clinic(|_| {}).await;
    let app = &c.app;
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill789", "patientId": c.alice.patient_id,
                   "services": [{"serviceId": "srv001", "description": "Consultation", "amount": "100.00"},
                                {"serviceId": "srv002", "description": "Lab Tests", "amount": "50.00"}],
                   "insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": "75.00"},
                   "totalAmount": "150.00", "status": "Issued"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let text = bill_text(app, &c.alice.tokens.token).await;
    assert!(text.contains(r#""claimStatus":"draft""#), "{text}");
    assert!(text.contains(r#""patientShare":150.00"#), "{text}");
    let bill: Value = serde_json::from_str(&text).unwrap();
    let claim = bill["claimId"].as_str().unwrap().to_owned();
    let claim_path = format!("/api/claims/{claim}");
    let decide = |status: &str, extra: Value| {
        let mut body = json!({"status": status});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    // Nothing is decided before it is submitted.
    let (status, body) = app
        .put(&claim_path, decide("approved", json!({})), &c.admin)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "{body}"
    );
    let (status, body) = app
        .post("/api/bills/bill789/claim/submit", json!({}), Some(&c.dr))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"claimId": claim, "status": "submitted"}));
    let (status, _) = app
        .post("/api/bills/bill789/claim/submit", json!({}), Some(&c.admin))
        .await;
    assert_eq!(status, 409, "already submitted");
    // With the insurer, the claim is not corrected on the bill.
    let correction =
        json!({"insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": "60.00"}});
    let (status, body) = app
        .put("/api/bills/bill789", correction.clone(), &c.admin)
        .await;
    assert_eq!(status, 409, "{body}");
    // Only admins decide.
    let (status, _) = app
        .put(&claim_path, decide("in_review", json!({})), &c.dr)
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .put(&claim_path, decide("in_review", json!({})), &c.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(&claim_path, decide("denied", json!({})), &c.admin)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("reason")),
        "{body}"
    );
    let reason = json!({"reason": "Lab panel not covered under plan GOLD-7"});
    let (status, body) = app
        .put(&claim_path, decide("denied", reason), &c.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let denied = claim_of(app, &c.alice.tokens.token, &claim).await;
    assert_eq!(denied["status"], "denied");
    assert_eq!(denied["reason"], "Lab panel not covered under plan GOLD-7");
    assert_eq!(denied["patientShare"], json!(150.0));

    // Corrected on the bill and resubmitted; the earlier versions stay.
    let (status, body) = app.put("/api/bills/bill789", correction, &c.admin).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post("/api/bills/bill789/claim/submit", json!({}), Some(&c.admin))
        .await;
    assert_eq!(status, 200, "{body}");
    for (decision, field) in [
        (decide("partially_approved", json!({})), "approvedAmount"),
        (
            decide("partially_approved", json!({"approvedAmount": "60.00"})),
            "approvedAmount",
        ),
        (
            decide("partially_approved", json!({"approvedAmount": "0.001"})),
            "approvedAmount",
        ),
        (
            decide("approved", json!({"approvedAmount": "50.00"})),
            "approvedAmount",
        ),
        (decide("submitted", json!({})), "status"),
    ] {
        let (status, body) = app.put(&claim_path, decision.clone(), &c.admin).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{decision}: {body}"
        );
    }
    let (status, body) = app
        .put(
            &claim_path,
            decide("partially_approved", json!({"approvedAmount": "50.00"})),
            &c.admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = bill_text(app, &c.admin).await;
    assert!(text.contains(r#""patientShare":100.00"#), "{text}");

    // The insurer pays what it approved, no more.
    let (status, body) = app
        .put(
            &claim_path,
            decide("paid", json!({"paidAmount": "50.01"})),
            &c.admin,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("paidAmount")),
        "{body}"
    );
    let (status, body) = app
        .put(&claim_path, decide("paid", json!({})), &c.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    let text = bill_text(app, &c.alice.tokens.token).await;
    for exact in [
        r#""paymentsApplied":50.00"#,
        r#""balanceDue":100.00"#,
        r#""status":"PartiallyPaid""#,
        r#""claimStatus":"paid""#,
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    let (status, _) = app
        .put(&claim_path, decide("paid", json!({})), &c.admin)
        .await;
    assert_eq!(status, 409, "paid once");
    let deleted = app
        .http
        .delete(app.url("/api/bills/bill789"))
        .bearer_auth(&c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 409, "a bill with a payment applied stays");

    let paid = claim_of(app, &c.dr, &claim).await;
    let statuses: Vec<&str> = paid["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "draft",
            "submitted",
            "in_review",
            "denied",
            "denied",
            "submitted",
            "partially_approved",
            "paid"
        ]
    );
    assert_eq!(paid["history"][0]["claimAmount"], json!(75.0));
    assert_eq!(paid["history"][4]["claimAmount"], json!(60.0));
    assert_eq!(paid["paidAmount"], json!(50.0));

    // Lists: admins only, by state and insurer.
    let (status, list) = app
        .get(
            "/api/claims?status=paid&insuranceProvider=HealthInsure",
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["claims"][0]["claimId"], claim.as_str());
    let (_, none) = app
        .get("/api/claims?insuranceProvider=Other", Some(&c.admin))
        .await;
    assert_eq!(none["claims"], json!([]));
    let (status, _) = app.get("/api/claims", Some(&c.alice.tokens.token)).await;
    assert_eq!(status, 403);
    for who in [&c.bob.tokens.token, &c.other_dr] {
        let (status, _) = app.get(&claim_path, Some(who)).await;
        assert_eq!(status, 403);
    }

    // The denial's reason is sealed at rest.
    c.app.stop().await;
    for (path, bytes) in files_at_top_of(&c.app.data_dir) {
        assert!(
            !contains(&bytes, "GOLD-7"),
            "{} holds a denial reason in the clear",
            path.display()
        );
    }
}
