//! Reminders: one per offset and allowed channel, replanned on a move, dropped on cancel, expired late.

use jiff::SignedDuration;
use serde_json::json;

use super::{
    WAIT, advance_to, book, clinic, counted, doctor, figures, in_days, made, notifications,
    patient, register_device, report_path, reported_sent, settle, start_of, subscribe_patient,
};
use crate::helpers::*;

#[tokio::test]
async fn a_reminder_fires_once_per_offset_on_every_allowed_channel() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let alice = patient(&app, "alice", "+4915112345678").await;
    register_device(&app, &alice, "device-token-alice-1", "android").await;
    let mut phone = subscribe_patient(&app, &alice, None).await;
    let mut tablet = subscribe_patient(&app, &alice, None).await;

    let date = in_days(3);
    let start = start_of(date, "10:00");
    let appointment = book(&app, &alice, date, "10:00").await;

    // A minute before the 24-hour reminder: nothing yet.
    advance_to(
        &app,
        &admin,
        start - SignedDuration::from_hours(24) - SignedDuration::from_secs(60),
    )
    .await;
    settle().await;
    assert!(providers.smtp.received().is_empty());

    advance_to(&app, &admin, start - SignedDuration::from_hours(24)).await;
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["alice@mail.example.org".to_owned()]);
    assert_eq!(mail.from, "clinic@example.org");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Appointment reminder")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Clinic <clinic@example.org>")
    );
    let body = mail.text();
    assert!(body.contains("Dr. House"), "{body}");
    assert!(body.contains(&format!("{date} at 10:00 (UTC)")), "{body}");
    let message_id = mail.header("Message-ID").unwrap();

    // The same reminder reaches both of Alice's sockets and her phone.
    for ws in [&mut phone, &mut tablet] {
        let seen = notifications(ws, 1).await;
        assert_eq!(seen[0]["event"]["category"], "appointment_reminder");
        assert_eq!(seen[0]["event"]["appointmentId"], appointment);
    }
    assert!(
        eventually(WAIT, || async { providers.pushes().await.len() == 1 }).await,
        "one push"
    );
    let push = &providers.pushes().await[0];
    assert_eq!(push["message"]["token"], "device-token-alice-1");
    assert_eq!(
        push["message"]["notification"]["title"],
        "Appointment reminder"
    );
    // E-mail is Alice's preferred text channel: no SMS.
    assert!(providers.sms_sent().await.is_empty());

    // The delivery report, as Alice sees it (recipient masked) and as an admin.
    let id = message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    // The outcome is recorded just after the server answered.
    assert!(reported_sent(&app, &admin, &id).await);
    let (status, report) = app
        .get(
            &format!("/api/notifications/{id}"),
            Some(&alice.tokens.token),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["channel"], "email");
    assert_eq!(report["recipient"], "a***@mail.example.org");
    assert_eq!(report["status"], "sent");
    let statuses: Vec<&str> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "sent"]);
    let (_, full) = app
        .get(&format!("/api/notifications/{id}"), Some(&admin))
        .await;
    assert_eq!(full["recipient"], "alice@mail.example.org");
    let bob = app.signup_patient("bob").await;
    let (status, _) = app
        .get(&format!("/api/notifications/{id}"), Some(&bob.tokens.token))
        .await;
    assert_eq!(status, 404, "another patient's report is not found");

    // The 2-hour reminder, then nothing more however far the clock moves.
    advance_to(&app, &admin, start - SignedDuration::from_hours(2)).await;
    assert_eq!(providers.smtp.wait_for(2, WAIT).await.len(), 2);
    notifications(&mut phone, 1).await;
    advance_to(&app, &admin, start + SignedDuration::from_hours(48)).await;
    settle().await;
    assert_eq!(providers.smtp.received().len(), 2);
    assert_eq!(providers.pushes().await.len(), 2);

    // The figures: two reminders on each channel; e-mail and push handed
    // to their providers (no delivery receipt), in-app delivered to the
    // live sockets and not acknowledged.
    let f = figures(&app, &admin).await;
    //                           made sent deliv fail exp tries acked
    assert_eq!(f["email"], counted([2, 2, 0, 0, 0, 0, 0]), "{f}");
    assert_eq!(f["push"], counted([2, 2, 0, 0, 0, 0, 0]), "{f}");
    assert_eq!(f["in_app"], counted([2, 2, 2, 0, 0, 0, 0]), "{f}");
    assert_eq!(made(&f), 6, "nothing else was sent: {f}");
    let (status, _) = app.get(&report_path(), Some(&alice.tokens.token)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_move_replans_reminders_and_a_cancellation_removes_them() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let carol = patient(&app, "carol", "+4915112345679").await;
    let date = in_days(3);
    let moved_to = in_days(5);
    let appointment = book(&app, &carol, date, "10:00").await;
    let doomed = book(&app, &carol, in_days(4), "15:00").await;

    let (status, body) = app
        .put(
            &format!("/api/appointments/{appointment}"),
            json!({"appointmentDate": moved_to.to_string(), "timeSlot": "11:30"}),
            &carol.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The move is announced at once.
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Appointment moved")
    );
    assert!(
        mails[0].text().contains(&format!("{moved_to} at 11:30")),
        "{}",
        mails[0].text()
    );

    let cancelled = app
        .http
        .delete(app.url(&format!("/api/appointments/{doomed}")))
        .bearer_auth(&carol.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let mails = providers.smtp.wait_for(2, WAIT).await;
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("Appointment cancelled")
    );

    // Past both old reminder times and the cancelled visit's first one:
    // nothing fires.
    advance_to(&app, &admin, start_of(in_days(4), "11:00")).await;
    settle().await;
    assert_eq!(
        providers.smtp.received().len(),
        2,
        "no reminder for the old time or the cancelled visit"
    );
    // The new time's first reminder does; the cancelled visit's second does not.
    advance_to(
        &app,
        &admin,
        start_of(moved_to, "11:30") - SignedDuration::from_hours(24),
    )
    .await;
    let mails = providers.smtp.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(
        mails[2].header("Subject").as_deref(),
        Some("Appointment reminder")
    );
    assert!(mails[2].text().contains(&format!("{moved_to} at 11:30")));
    advance_to(&app, &admin, start_of(in_days(4), "14:00")).await;
    settle().await;
    assert_eq!(providers.smtp.received().len(), 3);
}

#[tokio::test]
async fn reminders_that_fell_due_after_the_appointment_began_expire() {
    let app = spawn_app_with(|s| s.notifications.confirm_bookings = false).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let kim = patient(&app, "kim", "+4915112345676").await;
    let date = in_days(3);
    book(&app, &kim, date, "10:00").await;
    // Down, and back only after the appointment began.
    let app = app.restart(|_| {}).await;
    let admin = app.admin_token().await;
    advance_to(&app, &admin, start_of(date, "11:00")).await;
    assert!(
        eventually(WAIT, || async {
            let f = figures(&app, &admin).await;
            f["email"]["expired"] == 2 && f["in_app"]["expired"] == 2
        })
        .await,
        "both reminders recorded as expired"
    );
    // Expired: failed, never sent.
    let f = figures(&app, &admin).await;
    //                           made sent deliv fail exp tries acked
    assert_eq!(f["email"], counted([2, 0, 0, 2, 2, 0, 0]), "{f}");
    assert_eq!(f["in_app"], counted([2, 0, 0, 2, 2, 0, 0]), "{f}");
    assert_eq!(made(&f), 4, "{f}");
    let outbox = app.data_dir.join("outbox").join("email");
    let sent = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sent, 0, "nothing was sent");
}

/// A reminder row this release cannot read (one a newer release wrote).
#[derive(serde::Serialize, serde::Deserialize)]
struct FromANewerRelease {
    kind: String,
}

impl medrelay_actors::store::Record for FromANewerRelease {
    const TABLE: medrelay_actors::store::Table = medrelay_actors::store::Table::Reminders;
    const VERSION: u16 = 99;
}

#[tokio::test]
async fn an_unreadable_reminder_is_set_aside_and_the_others_still_fire() {
    use medrelay_actors::hub::EventHub;
    use medrelay_actors::store::{SetAside, Store, StoreConfig, WriteBatch};
    let mut app = spawn_app_with(|s| s.notifications.confirm_bookings = false).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let lena = patient(&app, "lena", "+4915112345679").await;
    let date = in_days(3);
    book(&app, &lena, date, "10:00").await;
    app.stop().await;

    // Due before the booking's reminders, so that it is read first.
    let path = app.data_dir.join("medrelay.redb");
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(16)).unwrap();
    let mut batch = WriteBatch::new();
    let bad = FromANewerRelease {
        kind: "digest".into(),
    };
    batch.put("0000000000001/apt_newer/r1", &bad);
    store.write(batch).await.unwrap();
    store.close().await;
    drop(store);

    let mut app = app
        .restart(|s| s.notifications.confirm_bookings = false)
        .await;
    let admin = app.admin_token().await;
    advance_to(
        &app,
        &admin,
        start_of(date, "10:00") - SignedDuration::from_hours(24),
    )
    .await;
    assert!(
        eventually(WAIT, || async { made(&figures(&app, &admin).await) >= 1 }).await,
        "the booking's reminder fired past the unreadable row"
    );
    app.stop().await;
    let store = Store::open(&path, StoreConfig::default(), EventHub::new(16)).unwrap();
    let aside = store.scan::<SetAside>(None, 10).unwrap();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0]
            .0
            .starts_with("reminders/0000000000001/apt_newer/r1/"),
        "{}",
        aside[0].0
    );
    assert_eq!(
        (aside[0].1.table.as_str(), aside[0].1.key.as_str()),
        ("reminders", "0000000000001/apt_newer/r1")
    );
    assert!(
        aside[0].1.bytes.starts_with("0063"),
        "version 99 first: {}",
        aside[0].1.bytes
    );
    store.close().await;
}
