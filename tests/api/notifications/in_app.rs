//! In-app notifications: several devices, catch-up, acknowledgements, a panicking session.

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};

use super::{
    advance_to, book, doctor, figures, in_days, notifications, patient, settle, start_of,
    subscribe_patient,
};
use crate::helpers::*;

#[tokio::test]
async fn two_devices_get_in_app_notifications_and_a_reconnect_catches_up() {
    // Reminders only: the count of e-mails below leaves confirmations out.
    let app = spawn_app_with(|s| s.notifications.confirm_bookings = false).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let hana = patient(&app, "hana", "+4915112345673").await;
    let mut phone = subscribe_patient(&app, &hana, None).await;
    let mut tablet = subscribe_patient(&app, &hana, None).await;
    let date = in_days(3);
    let first = book(&app, &hana, date, "08:00").await;
    let second = book(&app, &hana, date, "16:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(24),
    )
    .await;
    let on_phone = notifications(&mut phone, 1).await;
    let on_tablet = notifications(&mut tablet, 1).await;
    assert_eq!(on_phone[0]["seq"], on_tablet[0]["seq"]);
    assert_eq!(on_phone[0]["event"]["appointmentId"], first);
    let seen = on_tablet[0]["seq"].as_u64().unwrap();

    // The tablet goes away; two more notifications arrive meanwhile.
    drop(tablet);
    advance_to(
        &app,
        &admin,
        start_of(date, "16:00") - SignedDuration::from_hours(24),
    )
    .await;
    notifications(&mut phone, 1).await;
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(2),
    )
    .await;
    notifications(&mut phone, 1).await;

    let mut back = subscribe_patient(&app, &hana, Some(seen)).await;
    let missed = notifications(&mut back, 2).await;
    assert_eq!(missed[0]["event"]["appointmentId"], second);
    assert_eq!(missed[1]["event"]["appointmentId"], first);
    back.no_event_within(Duration::from_millis(300)).await;

    // With no provider configured, e-mail went to the outbox folder.
    let outbox = app.data_dir.join("outbox").join("email");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(
        files.len(),
        3,
        "three reminders by e-mail in {}",
        outbox.display()
    );
}

/// Acknowledges `seq` on the patient's own channel.
async fn ack(ws: &mut Ws, p: &Patient, seq: u64) -> Value {
    ws.call(json!({"type": "ack", "channel": format!("patient:{}", p.patient_id), "seq": seq}))
        .await
}

async fn report(app: &TestApp, p: &Patient, notification: &Value) -> Value {
    let id = notification["event"]["notificationId"].as_str().unwrap();
    let (status, body) = app
        .get(&format!("/api/notifications/{id}"), Some(&p.tokens.token))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn acknowledged_notifications_are_delivered_and_a_new_device_gets_only_the_rest() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let kim = patient(&app, "kim", "+4915112345674").await;
    let lee = patient(&app, "lee", "+4915112345675").await;
    let date = in_days(3);
    let first = book(&app, &kim, date, "08:00").await;
    let second = book(&app, &kim, date, "16:00").await;

    // The first reminder fires while none of Kim's devices is connected.
    advance_to(
        &app,
        &admin,
        start_of(date, "08:00") - SignedDuration::from_hours(24),
    )
    .await;
    settle().await;

    // Her phone connects afresh: the reply counts one unacknowledged
    // notification, and it follows the reply.
    let mut phone = app.ws(Some(&kim.tokens.token)).await;
    let reply = phone
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["unacknowledged"], 1, "{reply}");
    let missed = notifications(&mut phone, 1).await;
    assert_eq!(missed[0]["event"]["appointmentId"], first);
    let first_seq = missed[0]["seq"].as_u64().unwrap();
    assert_eq!(report(&app, &kim, &missed[0]).await["status"], "sent");

    // The second one arrives live: delivered at once.
    advance_to(
        &app,
        &admin,
        start_of(date, "16:00") - SignedDuration::from_hours(24),
    )
    .await;
    let live = notifications(&mut phone, 1).await;
    assert_eq!(live[0]["event"]["appointmentId"], second);
    let live_report = report(&app, &kim, &live[0]).await;
    assert_eq!(live_report["status"], "delivered", "{live_report}");

    // Acknowledging the first makes it delivered.
    let acked = ack(&mut phone, &kim, first_seq).await;
    assert_eq!(acked["ok"], true, "{acked}");
    assert_eq!(acked["data"]["acknowledged"], 1);
    assert_eq!(acked["data"]["unacknowledged"], 1);
    let first_report = report(&app, &kim, &missed[0]).await;
    assert_eq!(first_report["status"], "delivered", "{first_report}");

    // Wrong seq, wrong channel: refused, and nothing changes.
    let ahead = ack(&mut phone, &kim, live[0]["seq"].as_u64().unwrap() + 50).await;
    assert_eq!(ahead["ok"], false);
    assert_eq!(ahead["error"]["field"], "seq", "{ahead}");
    let foreign = phone
        .call(json!({"type": "ack", "channel": format!("patient:{}", lee.patient_id), "seq": 1}))
        .await;
    assert_eq!(foreign["error"]["code"], "forbidden", "{foreign}");

    // A new tablet is sent only what no device has acknowledged.
    let mut tablet = app.ws(Some(&kim.tokens.token)).await;
    let reply = tablet
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["data"]["unacknowledged"], 1, "{reply}");
    let owed = notifications(&mut tablet, 1).await;
    assert_eq!(owed[0]["event"]["appointmentId"], second);
    tablet.no_event_within(Duration::from_millis(300)).await;
    let all = ack(&mut tablet, &kim, owed[0]["seq"].as_u64().unwrap()).await;
    assert_eq!(all["data"]["unacknowledged"], 0, "{all}");
    phone.no_event_within(Duration::from_millis(100)).await;
    drop((phone, tablet));

    // The acknowledgement is kept across a restart.
    let app = app.restart(|_| {}).await;
    let kim_tokens = app.login("kim", PASSWORD).await;
    let mut laptop = app.ws(Some(&kim_tokens.token)).await;
    let reply = laptop
        .call(json!({"type": "subscribe", "channel": format!("patient:{}", kim.patient_id)}))
        .await;
    assert_eq!(reply["data"]["unacknowledged"], 0, "{reply}");
    laptop.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_patient_session_that_panics_is_restarted_with_its_devices() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    let mia = patient(&app, "mia", "+4915112345676").await;
    let ned = patient(&app, "ned", "+4915112345677").await;
    let mut phone = subscribe_patient(&app, &mia, None).await;
    let mut tablet = subscribe_patient(&app, &mia, None).await;
    let mut other = subscribe_patient(&app, &ned, None).await;
    let date = in_days(3);
    book(&app, &mia, date, "09:00").await;
    book(&app, &ned, date, "09:30").await;

    let (status, body) = app
        .post(
            &format!("/api/test-faults/session-panic/{}", mia.patient_id),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 500, "{body}");

    // Both of Mia's sockets still get the next notification, once, and
    // Ned's session never noticed.
    advance_to(
        &app,
        &admin,
        start_of(date, "09:30") - SignedDuration::from_hours(24),
    )
    .await;
    let on_phone = notifications(&mut phone, 1).await;
    let on_tablet = notifications(&mut tablet, 1).await;
    assert_eq!(on_phone[0]["seq"], on_tablet[0]["seq"]);
    let for_ned = notifications(&mut other, 1).await;
    assert_eq!(for_ned[0]["event"]["kind"], "notification");
    assert_eq!(
        report(&app, &mia, &on_phone[0]).await["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["detail"],
        "2 device(s) connected"
    );
    // The counter is the test process's: at least this restart.
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("actor_restarts_total{actor=\"patient_session\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn notification_text_and_addresses_are_sealed_at_rest() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    doctor(&app, &admin).await;
    // `patient()` names her "Patient quintessa"; reminders carry the name.
    let quintessa = patient(&app, "quintessa", "+15557770123").await;
    let mut phone = subscribe_patient(&app, &quintessa, None).await;
    let date = in_days(3);
    book(&app, &quintessa, date, "09:00").await;
    advance_to(
        &app,
        &admin,
        start_of(date, "09:00") - SignedDuration::from_hours(24),
    )
    .await;
    let live = notifications(&mut phone, 1).await;
    assert!(
        live[0]["event"]["body"]
            .as_str()
            .unwrap()
            .contains("quintessa"),
        "{}",
        live[0]
    );
    settle().await;
    let f = figures(&app, &admin).await;
    // The booking's confirmation and the reminder, both in the outbox folder.
    assert_eq!(f["email"]["delivered"], 2, "{f}");
    drop(phone);

    let data_dir = app.data_dir.clone();
    app.stop().await;
    // The store, its redo log and every other file at the top of the data
    // folder (the outbox folders below it are delivered mail, by design).
    let files = files_at_top_of(&data_dir);
    // The control: the username is not PHI and is kept in the clear.
    assert!(files.iter().any(|(_, bytes)| contains(bytes, "quintessa")));
    for (path, bytes) in &files {
        for secret in ["Patient quintessa", "5557770123", "quintessa@mail"] {
            assert!(
                !contains(bytes, secret),
                "{secret} is readable in {}",
                path.display()
            );
        }
    }

    // After a restart the kept event opens again for a reconnecting device,
    // and the delivery report shows the address to an admin.
    let app = app.restart(|_| {}).await;
    let quintessa = Patient {
        tokens: app.login("quintessa", PASSWORD).await,
        ..quintessa
    };
    let mut back = subscribe_patient(&app, &quintessa, Some(0)).await;
    let replayed = notifications(&mut back, 1).await;
    assert_eq!(replayed[0]["event"]["body"], live[0]["event"]["body"]);
    let id = live[0]["event"]["notificationId"].as_str().unwrap();
    let admin = app.admin_token().await;
    let (status, report) = app
        .get(&format!("/api/notifications/{id}"), Some(&admin))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["recipient"], quintessa.patient_id.as_str());
}
