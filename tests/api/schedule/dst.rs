//! Slots and bookings around a daylight-saving change.

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{TZ, book_own};
use crate::helpers::*;

#[tokio::test]
async fn slots_are_right_around_a_dst_change() {
    // Find the next DST transition of Europe/Berlin and book around it.
    let tz = TimeZone::get(TZ).unwrap();
    let transition = tz
        .following(jiff::Timestamp::now().checked_add(72.hours()).unwrap())
        .next()
        .unwrap();
    let change_day = transition.timestamp().to_zoned(tz.clone()).date();
    let spring =
        transition.offset() > tz.to_offset(transition.timestamp().checked_sub(1.hour()).unwrap());
    let app = spawn_app_with(|s| s.schedule.horizon_days = 400).await;
    let admin = app.admin_token().await;
    let all_day = all_day_availability();
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "dst", "name": "Dr. DST", "timeZone": TZ,
              "slotMinutes": 60, "availability": all_day}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let slots_of = |d: Date| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.get(&format!("/api/providers/dst/slots?date={d}"), Some(&admin))
                .await
                .1
        }
    };
    let before = slots_of(change_day.yesterday().unwrap()).await;
    let on = slots_of(change_day).await;
    let after = slots_of(change_day.tomorrow().unwrap()).await;
    let starts = |v: &Value| -> Vec<jiff::Timestamp> {
        v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["start"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(starts(&before).len(), 24);
    assert_eq!(starts(&after).len(), 24);
    let nine = |v: &Value| -> jiff::Timestamp {
        let s = v["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["timeSlot"] == "09:00")
            .unwrap();
        s["start"].as_str().unwrap().parse().unwrap()
    };
    // Two days apart, 09:00 local is 48 hours of UTC apart, less or more
    // the hour the change takes or gives.
    let shift = nine(&after).duration_since(nine(&before)).as_hours();
    assert_eq!(shift, if spring { 47 } else { 49 });
    let on_starts = starts(&on);
    if spring {
        assert_eq!(on_starts.len(), 23, "the skipped hour has no slot");
        assert!(
            on["slots"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["timeSlot"] != "02:00")
        );
    } else {
        assert_eq!(on_starts.len(), 24, "the repeated hour has one slot");
    }
    assert!(
        on_starts.windows(2).all(|w| w[1] > w[0]),
        "distinct, ordered instants"
    );
    // Booking on the change day lands on the instant the slot list shows.
    let p = app.signup_patient("alice").await;
    let (status, created) = book_own(&app, &p, "dst", change_day, "09:00").await;
    assert_eq!(status, 201, "{created}");
    let (_, a) = app
        .get(
            &format!(
                "/api/appointments/{}",
                created["appointmentId"].as_str().unwrap()
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(
        a["startUtc"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        nine(&on)
    );
}
