//! Notification preferences: an opt-out after booking, and quiet hours.

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::json;

use super::{
    FROM_NUMBER, PUBLIC_URL, WAIT, advance_to, book, clinic, field, in_days, patient, settle,
    start_of, subscribe_patient,
};
use crate::helpers::*;

#[tokio::test]
async fn an_opt_out_holds_for_reminders_already_scheduled() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let dave = patient(&app, "dave", "+4915112345670").await;
    let (status, defaults) = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&dave.tokens.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(defaults["categories"]["marketing"], false);
    assert_eq!(defaults["channels"]["sms"], true);

    let date = in_days(3);
    book(&app, &dave, date, "09:00").await;
    // After booking: SMS preferred, no e-mail, no in-app; and no 2-hour reminder.
    let mut prefs = defaults.clone();
    prefs["preferredChannel"] = json!("sms");
    prefs["channels"]["email"] = json!(false);
    prefs["channels"]["in_app"] = json!(false);
    let (status, saved) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs.clone(),
            &dave.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let mut ws = subscribe_patient(&app, &dave, None).await;

    advance_to(
        &app,
        &admin,
        start_of(date, "09:00") - SignedDuration::from_hours(24),
    )
    .await;
    assert!(
        eventually(WAIT, || async { providers.sms_sent().await.len() == 1 }).await,
        "one SMS"
    );
    let sms = &providers.sms_sent().await[0];
    assert_eq!(field(sms, "To"), Some("+4915112345670"));
    assert_eq!(field(sms, "From"), Some(FROM_NUMBER));
    assert!(field(sms, "Body").unwrap().contains("Dr. House"), "{sms:?}");
    let callback = field(sms, "StatusCallback").unwrap();
    assert!(
        callback.starts_with(&format!(
            "{PUBLIC_URL}/api/notifications/twilio/status?notificationId=ntf_"
        )),
        "{callback}"
    );
    let request = &providers.twilio.received_requests().await.unwrap()[0];
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );

    // Now out of reminders altogether.
    prefs["categories"]["appointment_reminder"] = json!(false);
    let (status, _) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs,
            &dave.tokens.token,
        )
        .await;
    assert_eq!(status, 200);
    advance_to(
        &app,
        &admin,
        start_of(date, "09:00") - SignedDuration::from_mins(110),
    )
    .await;
    settle().await;
    assert_eq!(providers.sms_sent().await.len(), 1);
    assert!(providers.smtp.received().is_empty(), "e-mail was opted out");
    ws.no_event_within(Duration::from_millis(300)).await;

    // Bad preferences are refused naming the field.
    let (status, body) = app.put("/api/users/me/notification-preferences",
        json!({"channels": {"email": true, "sms": true, "push": true, "in_app": true},
               "categories": {"appointment_reminder": true, "appointment_change": true, "billing": true, "marketing": false},
               "timeZone": "Mars/Olympus"}),
        &dave.tokens.token,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("timeZone")),
        "{body}"
    );
}

#[tokio::test]
async fn a_reminder_due_in_quiet_hours_waits_for_their_end() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let jon = patient(&app, "jon", "+4915112345675").await;
    // 10:00 UTC is 19:00 in Tokyo: inside 18:00-20:00 there.
    let mut prefs = app
        .get(
            "/api/users/me/notification-preferences",
            Some(&jon.tokens.token),
        )
        .await
        .1;
    prefs["quietHours"] = json!({"start": "18:00", "end": "20:00"});
    prefs["timeZone"] = json!("Asia/Tokyo");
    let (status, body) = app
        .put(
            "/api/users/me/notification-preferences",
            prefs,
            &jon.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let date = in_days(3);
    book(&app, &jon, date, "10:00").await;
    let due = start_of(date, "10:00") - SignedDuration::from_hours(24);
    advance_to(&app, &admin, due).await;
    settle().await;
    assert!(
        providers.smtp.received().is_empty(),
        "held during quiet hours"
    );
    advance_to(&app, &admin, due + SignedDuration::from_hours(1)).await;
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    // Shown in Jon's zone: 19:00 on the appointment's Tokyo date.
    let local = start_of(date, "10:00").to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    assert!(
        mails[0]
            .text()
            .contains(&format!("{} at 19:00 (Asia/Tokyo)", local.date())),
        "{}",
        mails[0].text()
    );
}
