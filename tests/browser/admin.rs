//! The clinic dashboard in chromium: an admin sees the charts drawn from the
//! JSON APIs (one point per series and day, one per aging bucket); a
//! patient who opens it gets no data.

use std::time::Duration;

use serde_json::json;

use crate::board::{DOCTOR, book};
use crate::driver::{Driver, has};
use crate::helpers::*;

/// A fixed-offset zone where it is now between 09:00 and 10:00, so a slot
/// later today can be booked at any hour of the run and shows in today's
/// column of the chart.
fn morning_zone() -> String {
    let hour = i32::from(
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .hour(),
    );
    let mut offset = 9 - hour;
    if offset < -12 {
        offset += 24;
    }
    // POSIX-style names: Etc/GMT-3 is three hours ahead of UTC.
    match offset {
        0 => "Etc/GMT".to_owned(),
        d if d > 0 => format!("Etc/GMT-{d}"),
        d => format!("Etc/GMT+{}", -d),
    }
}

#[tokio::test]
async fn an_admin_sees_charts_and_a_patient_sees_no_data() {
    let driver = Driver::start().await;
    let zone = morning_zone();
    let clinic_zone = zone.clone();
    let app = spawn_app_with(move |s| s.analytics.time_zone = clinic_zone).await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": DOCTOR, "name": "Dr. Board", "timeZone": zone,
                   "availability": all_day_availability()}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(&zone).unwrap())
        .date()
        .to_string();
    let ada = app
        .signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    book(&app, &ada, &today, "12:00").await;
    let cancelled = book(&app, &ada, &today, "13:00").await;
    let (status, body) = app
        .delete(&format!("/api/appointments/{cancelled}"), &ada.tokens.token)
        .await;
    assert_eq!(status, 200, "{body}");
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
    page.sign_in(ADMIN.0, ADMIN.1).await;
    page.until(
        "document.querySelectorAll('#chart-appointments .point').length === 42 \
         && document.querySelectorAll('#chart-receivable .point').length === 5",
        Duration::from_secs(10),
    )
    .await;
    for series in ["booked", "no_show", "cancelled"] {
        let points = format!("#chart-appointments .point[data-series=\"{series}\"]");
        assert_eq!(page.count(&points).await, 14, "{series}");
    }
    // Today's column: both bookings count on their day, one was cancelled.
    let column = page
        .eval(&format!(
            "return ['booked', 'no_show', 'cancelled'].map((s) => Number(document.querySelector(
                 `#chart-appointments .point[data-series=\"${{s}}\"][data-date=\"{today}\"]`)
                 .getAttribute('data-value')));"
        ))
        .await;
    assert_eq!(column, json!([2, 0, 1]));
    let owed = page
        .eval(
            "return [...document.querySelectorAll('#chart-receivable .point')]
                 .map((p) => Number(p.getAttribute('data-value')));",
        )
        .await;
    assert_eq!(owed, json!([80, 0, 0, 0, 0]));
    // Today's board of the doctor: one appointment holds its slot.
    let board = format!("#boards li.board-item[data-provider=\"{DOCTOR}\"]");
    page.until(&has(&board, "data-booked", "1"), Duration::from_secs(10))
        .await;
    assert_eq!(
        page.count(&format!("{board} a.board-link[href=\"/board/{DOCTOR}\"]"))
            .await,
        1
    );
    page.until(
        &has("#ops [data-metric=\"actor_restarts\"]", "data-value", "0"),
        Duration::from_secs(10),
    )
    .await;
    page.screenshot("admin").await;
    page.close().await;

    // A patient: told it is for admins, shown nothing.
    let page = driver.browser().await;
    page.goto(&app.url("/admin")).await;
    page.sign_in("ada", PASSWORD).await;
    page.until(
        "!document.querySelector('#denied').classList.contains('hidden')",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(page.count(".point").await, 0);
    assert_eq!(page.count("#boards li.board-item").await, 0);
    assert_eq!(
        page.eval("return document.querySelector('#dashboard').classList.contains('hidden');")
            .await,
        json!(true)
    );
    page.close().await;
}
