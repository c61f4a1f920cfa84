//! The clinic dashboard in chromium: an admin sees the charts drawn from the
//! JSON APIs (one point per series and day, one per aging bucket); a
//! patient who opens it gets no data.

use std::time::Duration;

use serde_json::json;

use crate::board::{book, doctor};
use crate::driver::{Browser, Driver};
use crate::helpers::*;

async fn sign_in(page: &Browser, user: &str, password: &str) {
    page.until(
        "document.querySelector('#login-form')",
        Duration::from_secs(10),
    )
    .await;
    page.type_into("#login-username", user).await;
    page.type_into("#login-password", password).await;
    page.click("#login-submit").await;
}

#[tokio::test]
async fn an_admin_sees_charts_and_a_patient_sees_no_data() {
    let driver = Driver::start().await;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let date = doctor(&app, &admin).await;
    let ada = app
        .signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    book(&app, &ada, &date, "10:00").await;
    // An issued bill nobody paid: receivable in the youngest aging bucket.
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill001", "patientId": ada.patient_id,
                   "services": [{"serviceId": "srv001", "description": "Consultation", "amount": 80.00}],
                   "totalAmount": 80.00, "status": "Issued"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let page = driver.browser().await;
    page.goto(&app.url("/admin")).await;
    sign_in(&page, ADMIN.0, ADMIN.1).await;
    page.until(
        "document.querySelectorAll('#chart-appointments .point').length === 42 \
         && document.querySelectorAll('#chart-receivable .point').length === 5",
        Duration::from_secs(10),
    )
    .await;
    let owed = page
        .eval(
            "return [...document.querySelectorAll('#chart-receivable .point')]
                 .map((p) => Number(p.getAttribute('data-value')));",
        )
        .await;
    assert_eq!(owed, json!([80, 0, 0, 0, 0]));
    for series in ["booked", "no_show", "cancelled"] {
        let points = format!("#chart-appointments .point[data-series=\"{series}\"]");
        assert_eq!(page.count(&points).await, 14, "{series}");
    }
    assert_eq!(
        page.count(&format!(
            "#boards a.board-link[href=\"/board/{}\"]",
            crate::board::DOCTOR
        ))
        .await,
        1
    );
    page.until(
        "document.querySelector('#ops [data-metric=\"actor_restarts\"]').getAttribute('data-value') === '0'",
        Duration::from_secs(10),
    )
    .await;
    page.screenshot("admin").await;
    page.close().await;

    // A patient: told it is for admins, shown nothing.
    let page = driver.browser().await;
    page.goto(&app.url("/admin")).await;
    sign_in(&page, "ada", PASSWORD).await;
    page.until(
        "!document.querySelector('#denied').classList.contains('hidden') \
         || !document.querySelector('#denied').hidden",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(page.count(".point").await, 0);
    assert_eq!(page.count("#boards a.board-link").await, 0);
    let shown = page
        .eval("return document.querySelector('#dashboard').hidden || document.querySelector('#dashboard').classList.contains('hidden');")
        .await;
    assert_eq!(shown, json!(true));
    page.close().await;
}
