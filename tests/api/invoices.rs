//! Invoices: the seed's own example rebuilt (Vinay and ramanj; 12302.98 for
//! all payments, 10101.49 for ramanj), issued under gapless numbers and
//! read back byte for byte, printable as HTML with every value escaped,
//! and each patient seeing only their own.

use serde_json::{Value, json};

use crate::helpers::*;

async fn register(app: &TestApp, admin: &str, name: &str) -> String {
    let (status, body) = app
        .post(
            "/api/patients",
            json!({"name": name, "dob": "1990-01-01"}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["patientId"].as_str().unwrap().to_owned()
}

/// A bill of one service for `patient`, paid in full at the desk.
async fn paid_service(app: &TestApp, admin: &str, patient: &str, service: &str, amount: &str) {
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"patientId": patient, "services": [
                {"serviceId": service, "description": service, "amount": amount}]}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let bill = body["billId"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/patients/{patient}/payments"),
            json!({"amount": amount, "method": "cash", "billIds": [bill]}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// `GET path` with `Accept: accept`: status and body text.
async fn get(app: &TestApp, path: &str, token: &str, accept: &str) -> (u16, String) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `POST /api/invoices` with `body`: status and body text.
async fn issue(app: &TestApp, token: &str, body: Value) -> (u16, String) {
    let response = app
        .http
        .post(app.url("/api/invoices"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

const JSON: &str = "application/json";

#[tokio::test]
async fn the_seed_invoices_add_up_exactly_and_issued_ones_never_change() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let vinay = register(&app, &admin, "Vinay").await;
    let ramanj = register(&app, &admin, "ramanj").await;
    // The seed's lines, in its order.
    for (patient, service, amount) in [
        (&vinay, "General Check up", "1050.75"),
        (&vinay, "Random Sugar Test", "999.99"),
        (&ramanj, "General Check up", "7999.99"),
        (&vinay, "Sugar Test", "150.75"),
        (&ramanj, "General Check up", "1050.75"),
        (&ramanj, "General Check up", "1050.75"),
    ] {
        paid_service(&app, &admin, patient, service, amount).await;
    }

    let (status, all) = get(&app, "/api/invoices", &admin, JSON).await;
    assert_eq!(status, 200, "{all}");
    assert!(all.contains(r#""totalAmount":12302.98"#), "{all}");
    let parsed: Value = serde_json::from_str(&all).unwrap();
    let lines: Vec<(&str, &str, String)> = parsed["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["patientName"].as_str().unwrap(),
                l["item"].as_str().unwrap(),
                l["amount"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines[0],
        ("Vinay", "General Check up", "1050.75".to_owned())
    );
    assert_eq!(
        lines[2],
        ("ramanj", "General Check up", "7999.99".to_owned())
    );
    assert_eq!(lines.len(), 6);
    assert_eq!(parsed["invoiceId"], "draft");

    let path = format!("/api/invoices?patientIds={ramanj}");
    let (_, one) = get(&app, &path, &admin, JSON).await;
    assert!(one.contains(r#""totalAmount":10101.49"#), "{one}");

    // Issued: numbered without gaps, read back byte for byte.
    let (status, issued) = issue(&app, &admin, json!({"patientIds": [ramanj]})).await;
    assert_eq!(status, 201, "{issued}");
    assert!(
        issued.contains(r#""invoiceId":"INV-000001""#)
            && issued.contains(r#""totalAmount":10101.49"#),
        "{issued}"
    );
    let (status, again) = get(&app, "/api/invoices/INV-000001", &admin, JSON).await;
    assert_eq!((status, again.as_str()), (200, issued.as_str()));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url, token) = (app.http.clone(), app.url("/api/invoices"), admin.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            v["invoiceId"].as_str().unwrap().to_owned()
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    let expected: Vec<String> = (2..=11).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected, "gapless and never shared");
    let (status, _) = get(&app, "/api/invoices/INV-000099", &admin, JSON).await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, "/api/invoices/nope", &admin, JSON).await;
    assert_eq!(status, 422);

    // The printable page.
    let (status, page) = get(&app, "/api/invoices/INV-000001", &admin, "text/html").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Medical Billing Invoice")
            && page.contains("10101.49")
            && page.contains("ramanj"),
        "{page}"
    );
}

#[tokio::test]
async fn patients_see_only_their_own_invoices_and_pages_escape_what_they_print() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let alice = app
        .signup_patient_with("alice", json!({"name": "Alice <b>Bold</b>"}))
        .await;
    let other = register(&app, &admin, "Other Person").await;
    paid_service(
        &app,
        &admin,
        &alice.patient_id,
        "Visit & <i>tests</i>",
        "12.50",
    )
    .await;
    paid_service(&app, &admin, &other, "Visit", "99.00").await;

    let token = &alice.tokens.token;
    let (status, own) = get(&app, "/api/invoices", token, JSON).await;
    assert_eq!(status, 200, "{own}");
    assert!(
        own.contains(r#""totalAmount":12.50"#) && !own.contains("Other Person"),
        "{own}"
    );
    let path = format!("/api/invoices?patientIds={other}");
    let (status, _) = get(&app, &path, token, JSON).await;
    assert_eq!(status, 403);
    let (status, _) = issue(&app, token, json!({})).await;
    assert_eq!(status, 403, "patients preview; staff issue");
    let twice = json!({"patientIds": [alice.patient_id, alice.patient_id]});
    let (status, issued) = issue(&app, &admin, twice).await;
    assert_eq!(status, 201, "{issued}");
    assert!(
        issued.contains(r#""paymentsApplied":12.50"#),
        "a patient named twice counts once: {issued}"
    );
    let (status, _) = issue(&app, &admin, json!({"patientIds": [other]})).await;
    assert_eq!(status, 201);
    let (status, _) = get(&app, "/api/invoices/INV-000001", token, JSON).await;
    assert_eq!(status, 200, "her own");
    let (status, _) = get(&app, "/api/invoices/INV-000002", token, JSON).await;
    assert_eq!(status, 403, "another patient's");

    let (_, page) = get(&app, "/api/invoices/INV-000001", token, "text/html").await;
    assert!(
        page.contains("Alice &lt;b&gt;Bold&lt;&#x2f;b&gt;")
            || page.contains("Alice &lt;b&gt;Bold&lt;/b&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<b>Bold") && !page.contains("<i>tests"),
        "{page}"
    );
}
