//! Weekly hours for doctors open around the clock: the benchmarks' doctors
//! and many of the test suite's (tests/api includes this file by path).

use serde_json::{Value, json};

/// Weekly hours covering every minute of every day.
pub fn all_day_availability() -> Value {
    daily_availability(&["00:00-24:00"])
}

/// Weekly hours of the same `ranges` ("09:00-12:00") every day.
pub fn daily_availability(ranges: &[&str]) -> Value {
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    Value::Array(
        days.iter()
            .map(|d| json!({"day": d, "slots": ranges}))
            .collect(),
    )
}
