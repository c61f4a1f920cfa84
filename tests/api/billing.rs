//! Bills and billing accounts: the seed's shapes with exact money, totals
//! computed by the server, every change a revision, delete a void, an
//! account opened with every patient, access for the patient, their doctor
//! and admins only, lines sealed at rest, every read audited.

use serde_json::{Value, json};

use crate::care::{CareClinic, care_clinic};
use crate::helpers::*;

type Clinic = CareClinic;

async fn clinic() -> Clinic {
    care_clinic(|_| {}).await
}

/// Sends `body` as it is written (so amounts keep their exact text) and
/// returns the status and the body's text.
async fn send(app: &TestApp, method: &str, path: &str, body: &str, token: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if !body.is_empty() {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The seed's bill (healthcare-api section 3) for `patient`.
fn seed_bill(patient: &str) -> String {
    format!(
        r#"{{"billId": "bill789", "patientId": "{patient}",
            "services": [{{"serviceId": "srv001", "description": "Consultation", "amount": 100.00}},
                         {{"serviceId": "srv002", "description": "Lab Tests", "amount": 50.00}}],
            "insuranceClaim": {{"insuranceProvider": "HealthInsure", "claimAmount": 75.00}},
            "totalAmount": 150.00, "status": "Issued"}}"#
    )
}

fn error_of(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["field"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_seed_bill_is_created_and_read_back_with_exact_amounts() {
    let c = clinic().await;
    let (status, body) = send(
        &c.app,
        "POST",
        "/api/bills",
        &seed_bill(&c.alice.patient_id),
        &c.admin,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let written: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(written, json!({"billId": "bill789", "status": "Created"}));

    let (status, text) = send(
        &c.app,
        "GET",
        "/api/bills/bill789",
        "",
        &c.alice.tokens.token,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    for exact in [
        r#""amount":100.00"#,
        r#""amount":50.00"#,
        r#""claimAmount":75.00"#,
        r#""totalAmount":150.00"#,
        r#""balanceDue":150.00"#,
        r#""paymentsApplied":0.00"#,
        r#""currency":"USD""#,
        r#""status":"Issued""#,
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    let bill: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bill["services"][0]["description"], "Consultation");
    assert_eq!(bill["insuranceClaim"]["insuranceProvider"], "HealthInsure");

    // Who may read it: Alice, her doctor, admins; not Bob, not another doctor.
    for (who, expected) in [
        (&c.bob.tokens.token, 403),
        (&c.other_dr, 403),
        (&c.dr, 200),
        (&c.admin, 200),
    ] {
        let (status, body) = send(&c.app, "GET", "/api/bills/bill789", "", who).await;
        assert_eq!(status, expected, "{body}");
    }
    // The same id again is a conflict.
    let (status, body) = send(
        &c.app,
        "POST",
        "/api/bills",
        &seed_bill(&c.alice.patient_id),
        &c.admin,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_of(&body).1, "billId");
}

#[tokio::test]
async fn totals_are_exact_and_every_bad_amount_names_its_field() {
    let c = care_clinic(|s| s.billing.max_amount = "1000.00".into()).await;
    let patient = &c.alice.patient_id;
    let bill = |services: &str, extra: &str| {
        format!(r#"{{"patientId": "{patient}", "services": [{services}]{extra}}}"#)
    };
    let line =
        |amount: &str| format!(r#"{{"serviceId": "s", "description": "d", "amount": {amount}}}"#);

    // 0.10 + 0.20 is exactly 0.30, as a number or a string.
    let body = bill(
        &format!("{},{}", line("0.10"), line("\"0.20\"")),
        r#", "totalAmount": "0.30""#,
    );
    let (status, reply) = send(&c.app, "POST", "/api/bills", &body, &c.dr).await;
    assert_eq!(status, 201, "{reply}");
    let id = serde_json::from_str::<Value>(&reply).unwrap()["billId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, text) = send(&c.app, "GET", &format!("/api/bills/{id}"), "", &c.admin).await;
    assert!(text.contains(r#""totalAmount":0.30"#), "{text}");

    let cases = [
        (
            bill(&line("150.00"), r#", "totalAmount": 150.01"#),
            422,
            "total_mismatch",
            "totalAmount",
        ),
        (
            bill(&line("-1.00"), ""),
            422,
            "invalid_field",
            "services[0].amount",
        ),
        (
            bill(&format!("{},{}", line("1"), line("0.001")), ""),
            422,
            "invalid_field",
            "services[1].amount",
        ),
        (
            bill(&line("1000.01"), ""),
            422,
            "invalid_field",
            "services[0].amount",
        ),
        (
            bill(&format!("{},{}", line("600"), line("600")), ""),
            422,
            "invalid_field",
            "services",
        ),
        (
            bill(&line("1e2"), ""),
            400,
            "bad_request",
            "services[0].amount",
        ),
        (
            bill(&line("\"abc\""), ""),
            400,
            "bad_request",
            "services[0].amount",
        ),
        (
            bill(
                &line("100"),
                r#", "insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": 100.01}"#,
            ),
            422,
            "invalid_field",
            "insuranceClaim.claimAmount",
        ),
        (
            bill(&line("100"), r#", "status": "Paid""#),
            422,
            "invalid_field",
            "status",
        ),
        (
            bill(&line("100"), r#", "discount": 5"#),
            400,
            "bad_request",
            "",
        ),
        (bill("", ""), 422, "invalid_field", "services"),
        (
            r#"{"services": []}"#.to_owned(),
            422,
            "invalid_field",
            "patientId",
        ),
        (
            format!(
                r#"{{"patientId": "pat_nobody", "services": [{}]}}"#,
                line("1")
            ),
            422,
            "invalid_field",
            "patientId",
        ),
        (
            bill(&line("1"), r#", "appointmentId": "apt_nobody""#),
            422,
            "invalid_field",
            "appointmentId",
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, reply) = send(&c.app, "POST", "/api/bills", &body, &c.admin).await;
        assert_eq!(got, status, "{body} -> {reply}");
        let (got_code, got_field) = error_of(&reply);
        assert_eq!(got_code, code, "{body} -> {reply}");
        if !field.is_empty() {
            assert_eq!(got_field, field, "{body} -> {reply}");
        }
    }
    // Patients and doctors outside the care relationship write no bills.
    let body = bill(&line("1"), "");
    for who in [&c.alice.tokens.token, &c.other_dr] {
        let (status, reply) = send(&c.app, "POST", "/api/bills", &body, who).await;
        assert_eq!(status, 403, "{reply}");
    }
    let (status, reply) = send(&c.app, "GET", "/api/bills/not%20an%20id", "", &c.admin).await;
    assert_eq!(
        (status, error_of(&reply).1.as_str()),
        (422, "billId"),
        "{reply}"
    );
}

#[tokio::test]
async fn every_change_is_a_revision_and_delete_voids() {
    let c = clinic().await;
    let (status, body) = send(
        &c.app,
        "POST",
        "/api/bills",
        &seed_bill(&c.alice.patient_id),
        &c.admin,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The seed's PUT body.
    let put = r#"{"services": [{"serviceId": "srv001", "description": "Consultation", "amount": 120.00}],
                  "totalAmount": 120.00}"#;
    let (status, body) = send(&c.app, "PUT", "/api/bills/bill789", put, &c.dr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"billId": "bill789", "status": "Updated"})
    );
    let (_, text) = send(&c.app, "GET", "/api/bills/bill789", "", &c.admin).await;
    assert!(text.contains(r#""totalAmount":120.00"#), "{text}");
    assert!(text.contains(r#""revision":2"#), "{text}");
    // A total that disagrees with the services kept is refused.
    let (status, body) = send(
        &c.app,
        "PUT",
        "/api/bills/bill789",
        r#"{"totalAmount": 150}"#,
        &c.admin,
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (422, "total_mismatch"),
        "{body}"
    );
    let (status, body) = send(
        &c.app,
        "PUT",
        "/api/bills/bill789",
        r#"{"patientId": "pat_x"}"#,
        &c.admin,
    )
    .await;
    assert_eq!(
        (status, error_of(&body).1.as_str()),
        (422, "patientId"),
        "{body}"
    );

    let (status, body) = send(&c.app, "DELETE", "/api/bills/bill789", "", &c.admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "Deleted", "billId": "bill789"})
    );
    let (_, text) = send(
        &c.app,
        "GET",
        "/api/bills/bill789",
        "",
        &c.alice.tokens.token,
    )
    .await;
    assert!(text.contains(r#""status":"Void""#), "{text}");
    assert!(text.contains(r#""balanceDue":0.00"#), "{text}");
    let (status, body) = send(&c.app, "PUT", "/api/bills/bill789", put, &c.admin).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (409, "invalid_transition"),
        "{body}"
    );
    let (status, _) = send(&c.app, "DELETE", "/api/bills/bill789", "", &c.admin).await;
    assert_eq!(status, 410);
    let (status, body) = send(
        &c.app,
        "DELETE",
        "/api/bills/bill789",
        "",
        &c.alice.tokens.token,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    let (status, text) = send(
        &c.app,
        "GET",
        "/api/bills/bill789/revisions",
        "",
        &c.alice.tokens.token,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let revisions: Value = serde_json::from_str(&text).unwrap();
    let changes: Vec<(&str, &str)> = revisions["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["change"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("created", "Issued"),
            ("updated", "Issued"),
            ("voided", "Void")
        ]
    );
    assert_eq!(
        revisions["revisions"][0]["services"][1]["description"],
        "Lab Tests"
    );
    assert!(text.contains(r#""totalAmount":150.00"#) && text.contains(r#""totalAmount":120.00"#));
}

#[tokio::test]
async fn an_account_opens_with_every_patient_and_sums_what_is_owed() {
    let c = clinic().await;
    let account = format!("/api/billing-accounts/{}", c.alice.patient_id);
    let (status, text) = send(&c.app, "GET", &account, "", &c.alice.tokens.token).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#""balance":0.00"#) && text.contains(r#""credit":0.00"#),
        "{text}"
    );

    let patient = &c.alice.patient_id;
    for (id, amount, status) in [
        ("b1", "150.00", "Issued"),
        ("b2", "20.50", "Draft"),
        ("b3", "0.25", "Issued"),
    ] {
        let body = format!(
            r#"{{"billId": "{id}", "patientId": "{patient}", "status": "{status}",
                "services": [{{"serviceId": "s", "description": "d", "amount": {amount}}}]}}"#
        );
        let (got, reply) = send(&c.app, "POST", "/api/bills", &body, &c.admin).await;
        assert_eq!(got, 201, "{reply}");
    }
    let (_, text) = send(&c.app, "GET", &account, "", &c.admin).await;
    assert!(
        text.contains(r#""balance":150.25"#),
        "drafts owe nothing: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let open: Vec<&str> = v["openBills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["billId"].as_str().unwrap())
        .collect();
    assert_eq!(open, ["b1", "b3"]);
    for who in [&c.bob.tokens.token, &c.other_dr, &c.dr] {
        let (status, _) = send(&c.app, "GET", &account, "", who).await;
        assert_eq!(status, 403);
    }

    // Listing: Alice sees her own; filters by status; admins see all.
    let (status, list) = c
        .app
        .get("/api/bills?status=Issued", Some(&c.alice.tokens.token))
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["billId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b1", "b3"]);
    let (status, _) = c
        .app
        .get(
            &format!("/api/bills?patientId={}", c.alice.patient_id),
            Some(&c.bob.tokens.token),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = c.app.get("/api/bills", Some(&c.dr)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("patientId"))
    );
    let (_, list) = c.app.get("/api/bills?limit=2", Some(&c.admin)).await;
    assert_eq!(list["bills"].as_array().unwrap().len(), 2);
    let next = list["next"].as_str().unwrap();
    let (_, rest) = c
        .app
        .get(&format!("/api/bills?limit=2&after={next}"), Some(&c.admin))
        .await;
    assert_eq!(rest["bills"][0]["billId"], "b3");
    let (status, _) = c.app.get("/api/bills?status=Unpaid", Some(&c.admin)).await;
    assert_eq!(status, 400);

    // A patient registered by staff has an account from the start.
    let (status, body) = c
        .app
        .post(
            "/api/patients",
            json!({"name": "Walk In", "dob": "1980-01-01"}),
            Some(&c.admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let walk_in = body["patientId"].as_str().unwrap();
    let (status, text) = send(
        &c.app,
        "GET",
        &format!("/api/billing-accounts/{walk_in}"),
        "",
        &c.admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn bill_lines_are_sealed_at_rest_and_every_read_is_audited() {
    let mut c = clinic().await;
    let body = format!(
        r#"{{"billId": "bill_hiv", "patientId": "{}",
            "services": [{{"serviceId": "srv9", "description": "HIV viral load test", "amount": 80}}]}}"#,
        c.alice.patient_id
    );
    let (status, reply) = send(&c.app, "POST", "/api/bills", &body, &c.admin).await;
    assert_eq!(status, 201, "{reply}");
    let (status, _) = send(
        &c.app,
        "GET",
        "/api/bills/bill_hiv",
        "",
        &c.bob.tokens.token,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(&c.app, "GET", "/api/bills/bill_hiv", "", &c.dr).await;
    assert_eq!(status, 200);

    let (status, log) = c
        .app
        .get(
            &format!("/api/patients/{}/access-log", c.alice.patient_id),
            Some(&c.alice.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let bills: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resourceType"] == "Bill")
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(bills.contains(&("C", "success")), "{log}");
    assert!(bills.contains(&("R", "success")), "{log}");
    assert!(bills.contains(&("R", "denied")), "bob's try: {log}");

    c.app.stop().await;
    for (path, bytes) in files_at_top_of(&c.app.data_dir) {
        assert!(
            !contains(&bytes, "HIV viral"),
            "{} holds a bill line in the clear",
            path.display()
        );
    }
}
