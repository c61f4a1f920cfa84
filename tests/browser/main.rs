//! The pages in a real browser: Debian's chromium, driven headless through
//! chromedriver (WebDriver), against the real server on port 0.
//!
//! A test binary of its own, so these run after the API tests rather than
//! beside 180 of them, and one at a time (a chromium per test would crowd
//! two cores and blur the board's one-second deadline). Each test saves a
//! screenshot of its page to `target/screenshots/` in the repository.

#[path = "../../bench/src/availability.rs"]
#[allow(dead_code)]
mod availability;
#[path = "../api/child.rs"]
#[allow(dead_code)]
mod child;
#[path = "../api/helpers.rs"]
#[allow(dead_code, unused_imports)]
mod helpers;

mod admin;
mod app;
mod board;
mod cut;
mod driver;
