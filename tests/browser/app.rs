//! Patient booking in chromium: a patient signs in, books a free slot, sees
//! it on the board open in a second browser, cancels it; a slot another
//! client books disappears from the open page.

use std::time::Duration;

use serde_json::json;

use crate::board::{DOCTOR, book, display_token, doctor, slot};
use crate::driver::{Browser, Driver, absent, has, present};
use crate::helpers::*;

/// The wire form of a UTC slot's start, as the board channel sends it.
fn start(date: &str, time: &str) -> String {
    format!("{date}T{time}:00Z")
}

fn free(date: &str, time: &str) -> String {
    format!(
        "#slots button.slot-free[data-start=\"{}\"]",
        start(date, time)
    )
}

/// Shows `date` of the test doctor on the booking page.
async fn pick(page: &Browser, date: &str) {
    page.until(
        &present(&format!("#doctor option[value=\"{DOCTOR}\"]")),
        Duration::from_secs(10),
    )
    .await;
    page.eval(&format!(
        "const d = document.querySelector('#doctor'); d.value = {};
         d.dispatchEvent(new Event('change', {{bubbles: true}}));
         const day = document.querySelector('#day'); day.value = {};
         day.dispatchEvent(new Event('change', {{bubbles: true}}));",
        json!(DOCTOR),
        json!(date)
    ))
    .await;
}

#[tokio::test]
async fn a_patient_books_and_cancels_and_sees_others_take_slots() {
    let driver = Driver::start().await;
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let date = doctor(&app, &admin).await;
    app.signup_patient_with("ada", json!({"name": "Ada Lovelace"}))
        .await;
    let bob = app
        .signup_patient_with("bob", json!({"name": "Bob Marley"}))
        .await;
    let token = display_token(&app, &admin).await;

    // The waiting-room board, in a browser of its own.
    let board = driver.browser().await;
    board
        .goto(&app.url(&format!("/board/{DOCTOR}#token={token}")))
        .await;
    board.live(Duration::from_secs(10)).await;

    // The patient signs in and picks the day.
    let page = driver.browser().await;
    page.goto(&app.url("/app")).await;
    page.sign_in("ada", PASSWORD).await;
    pick(&page, &date).await;
    page.until(&present(&free(&date, "10:00")), Duration::from_secs(10))
        .await;

    // Books 10:00: it is hers, and the board shows it taken.
    page.click(&free(&date, "10:00")).await;
    page.until(&present("#confirm-book"), Duration::from_secs(5))
        .await;
    page.click("#confirm-book").await;
    let mine = format!(
        "#appointments li.appointment[data-start=\"{}\"]",
        start(&date, "10:00")
    );
    page.until(&present(&mine), Duration::from_secs(5)).await;
    board
        .until(
            &has(&slot(&date, "10:00"), "data-state", "booked"),
            Duration::from_secs(5),
        )
        .await;

    // Another client takes 11:00: it leaves the open page by itself.
    assert_eq!(page.count(&free(&date, "11:00")).await, 1);
    book(&app, &bob, &date, "11:00").await;
    page.until(&absent(&free(&date, "11:00")), Duration::from_secs(5))
        .await;
    page.eval("window.scrollTo(0, 0);").await;
    page.screenshot("app").await;

    // She cancels: gone from her list, free again on the board and here.
    page.click(&format!("{mine} button.cancel")).await;
    page.until(&absent(&mine), Duration::from_secs(5)).await;
    board
        .until(
            &has(&slot(&date, "10:00"), "data-state", "free"),
            Duration::from_secs(5),
        )
        .await;
    page.until(&present(&free(&date, "10:00")), Duration::from_secs(5))
        .await;
    // Her token lives in session storage only, never in the address.
    let token = page
        .eval("return JSON.parse(sessionStorage.getItem('medrelay.session')).accessToken;")
        .await;
    let token = token.as_str().expect("a session in session storage");
    assert!(
        !page
            .eval("return location.href;")
            .await
            .to_string()
            .contains(token)
    );
    assert_eq!(page.eval("return localStorage.length;").await, json!(0));
    page.close().await;
    board.close().await;
}
