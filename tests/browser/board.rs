//! The live board in chromium: a display link shows slot states only and
//! turns a booking within a second; after its connection drops it shows
//! that it is reconnecting, then catches up with exactly one change per
//! booking; a signed-in admin sees names.

use std::time::Duration;

use jiff::ToSpan;
use serde_json::json;

use crate::cut::Relay;
use crate::driver::{Driver, has};
use crate::helpers::*;

pub const DOCTOR: &str = "drboard";

/// A UTC doctor open around the clock, and the day after tomorrow (inside
/// the board's week, clear of the booking notice at any hour of the run).
pub async fn doctor(app: &TestApp, admin: &str) -> String {
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": DOCTOR, "name": "Dr. Board", "timeZone": "UTC",
                   "availability": all_day_availability()}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .unwrap()
        .to_string()
}

/// A display token for the test doctor's board.
pub async fn display_token(app: &TestApp, admin: &str) -> String {
    let (status, display) = app
        .post(
            &format!("/api/providers/{DOCTOR}/display-tokens"),
            json!({}),
            Some(admin),
        )
        .await;
    assert_eq!(status, 201, "{display}");
    display["token"].as_str().unwrap().to_owned()
}

pub async fn book(app: &TestApp, patient: &Patient, date: &str, time: &str) -> String {
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": patient.patient_id, "providerId": DOCTOR,
                   "appointmentDate": date, "timeSlot": time}),
            Some(&patient.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["appointmentId"].as_str().unwrap().to_owned()
}

pub fn slot(date: &str, time: &str) -> String {
    format!(".slot[data-date=\"{date}\"][data-time=\"{time}\"]")
}

#[tokio::test]
async fn a_display_board_turns_bookings_live_and_catches_up_after_a_drop() {
    let driver = Driver::start().await;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let date = doctor(&app, &admin).await;
    let token = display_token(&app, &admin).await;
    let ada = app
        .signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    let bob = app
        .signup_patient_with("bob", json!({"name": "Bob Marley"}))
        .await;

    // The screen reaches the server through a relay the test can cut.
    let relay = Relay::start(app.addr).await;
    let board = driver.browser().await;
    board
        .goto(&relay.url(&format!(
            "/board/{DOCTOR}?from={date}&to={date}#token={token}"
        )))
        .await;
    board.live(Duration::from_secs(10)).await;
    assert_eq!(
        board
            .attr(&slot(&date, "10:00"), "data-state")
            .await
            .as_deref(),
        Some("free")
    );

    // A booking turns its slot within a second, without a reload, and
    // shows no name.
    book(&app, &ada, &date, "10:00").await;
    let took = board
        .until(
            &has(&slot(&date, "10:00"), "data-state", "booked"),
            Duration::from_secs(1),
        )
        .await;
    assert!(took <= Duration::from_secs(1), "{took:?}");
    assert_eq!(
        board
            .count(&format!("{} .patient", slot(&date, "10:00")))
            .await,
        0
    );
    assert!(!board.text("body").await.contains("Ada"));
    assert_eq!(
        board.attr("#changes", "data-count").await.as_deref(),
        Some("1")
    );

    // The connection drops: the board says so. A booking made meanwhile
    // appears once it is back, and each booking counts once.
    relay.cut();
    board
        .until(
            &has("#status", "data-state", "reconnecting"),
            Duration::from_secs(10),
        )
        .await;
    book(&app, &bob, &date, "11:00").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        board
            .attr(&slot(&date, "11:00"), "data-state")
            .await
            .as_deref(),
        Some("free"),
        "the board saw a change while cut off"
    );
    relay.mend();
    board
        .until(
            &has(&slot(&date, "11:00"), "data-state", "booked"),
            Duration::from_secs(10),
        )
        .await;
    board.live(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        board.attr("#changes", "data-count").await.as_deref(),
        Some("2")
    );
    assert_eq!(board.count(".slot[data-state=\"booked\"]").await, 2);
    assert!(!board.text("body").await.contains("Bob"));
    assert_eq!(board.text("#title").await, "Dr. Board");
    board.screenshot("board-display").await;
    board.close().await;
}

#[tokio::test]
async fn a_signed_in_admin_sees_who_is_booked() {
    let driver = Driver::start().await;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let date = doctor(&app, &admin).await;
    let ada = app
        .signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    book(&app, &ada, &date, "09:00").await;

    let board = driver.browser().await;
    board.goto(&app.url(&format!("/board/{DOCTOR}"))).await;
    board.sign_in(ADMIN.0, ADMIN.1).await;
    board.live(Duration::from_secs(10)).await;
    let booked = slot(&date, "09:00");
    board
        .until(
            &format!(
                "(document.querySelector({}) || {{textContent: ''}}).textContent.includes('Ada Lovelace')",
                json!(format!("{booked} .patient"))
            ),
            Duration::from_secs(5),
        )
        .await;
    board.close().await;
}

#[tokio::test]
async fn a_framed_board_offers_no_sign_in_but_opens_with_a_display_link() {
    let driver = Driver::start().await;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let token = display_token(&app, &admin).await;
    let plain = frame_host(&app.url(&format!("/board/{DOCTOR}"))).await;
    let linked = frame_host(&app.url(&format!("/board/{DOCTOR}#token={token}"))).await;
    let page = driver.browser().await;

    // Framed by another site without a display link: no sign-in form.
    page.goto(&plain).await;
    page.client.enter_frame(0).await.unwrap();
    page.until(
        "document.body.textContent.includes('Open this board with its display link')",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(page.count("#login-form").await, 0);

    // With its display link it is live.
    page.client.enter_parent_frame().await.unwrap();
    page.goto(&linked).await;
    page.client.enter_frame(0).await.unwrap();
    page.live(Duration::from_secs(10)).await;
    page.close().await;
}

/// Another origin (its own port) whose every page frames `src`.
async fn frame_host(src: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let html = format!("<!doctype html><iframe width=1000 height=700 src=\"{src}\"></iframe>");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/")
}
