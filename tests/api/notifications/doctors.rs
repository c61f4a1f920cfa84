//! Notices to doctors: one e-mail listing the appointments a change of
//! their hours leaves outside them (each patient hears of their own); one
//! per booking, move and cancellation others make with them; and the
//! daily agenda at their chosen local time, on both sides of a DST change.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{WAIT, advance_to, clinic, in_days, patient, settle};
use crate::helpers::*;
use crate::smtp_sink::Mail;

/// Changes `token`'s notification preferences with `change`.
async fn set_prefs(app: &TestApp, token: &str, change: impl FnOnce(&mut Value)) {
    let path = "/api/users/me/notification-preferences";
    let (status, mut prefs) = app.get(path, Some(token)).await;
    assert_eq!(status, 200, "{prefs}");
    change(&mut prefs);
    let (status, body) = app.put(path, prefs, token).await;
    assert_eq!(status, 200, "{body}");
}

fn to(mails: &[Mail], address: &str) -> Vec<Mail> {
    mails
        .iter()
        .filter(|m| m.to == vec![address.to_owned()])
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_doctor_hears_once_which_appointments_their_new_hours_leave_out() {
    let (providers, app, admin) = clinic(|_| {}).await;
    doctor_account_in(&app, &admin, ("drmail", "prv_mail", "UTC")).await;
    let fay = patient(&app, "fay", "+4915112345672").await;
    let day = in_days(3);
    for time in ["10:00", "11:00"] {
        let (status, body) = app
            .post(
                "/api/appointments",
                json!({"patientId": fay.patient_id, "providerId": "prv_mail",
                       "appointmentDate": day.to_string(), "timeSlot": time}),
                Some(&fay.tokens.token),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The doctor takes that day off.
    let (status, body) = app
        .put(
            "/api/providers/prv_mail",
            json!({"exceptions": [{"date": day.to_string(), "slots": []}]}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Fay hears of each appointment; the doctor once, of both (besides
    // the notices of the two bookings).
    let subject = "2 appointments need a new time";
    let notices = || {
        to(&providers.smtp.received(), "drmail@example.org")
            .into_iter()
            .filter(|m| m.header("Subject").as_deref() == Some(subject))
            .collect::<Vec<_>>()
    };
    assert!(eventually(WAIT, || async { !notices().is_empty() }).await);
    let text = notices()[0].text();
    assert!(text.contains(&format!("{day} 10:00 Patient fay")), "{text}");
    assert!(text.contains(&format!("{day} 11:00 Patient fay")), "{text}");
    let to_fay = || to(&providers.smtp.received(), "fay@mail.example.org").len();
    assert!(eventually(WAIT, || async { to_fay() == 2 }).await);
    settle().await;
    assert_eq!(notices().len(), 1, "the notice is sent once");
}

#[tokio::test]
async fn a_doctor_hears_of_each_booking_move_and_cancellation_others_make() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let doctor = doctor_account_in(&app, &admin, ("drnews", "prv_news", "UTC")).await;
    // No agenda while this runs, whatever the time of day.
    set_prefs(&app, &doctor, |p| p["agendaAt"] = Value::Null).await;
    let gus = patient(&app, "gus", "+4915112345673").await;
    let day = in_days(3);
    let book = |time: &'static str, token: String| {
        let app = &app;
        let gus = &gus;
        async move {
            let (status, body) = app
                .post(
                    "/api/appointments",
                    json!({"patientId": gus.patient_id, "providerId": "prv_news",
                           "appointmentDate": day.to_string(), "timeSlot": time}),
                    Some(&token),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["appointmentId"].as_str().unwrap().to_owned()
        }
    };
    let id = book("10:00", gus.tokens.token.clone()).await;
    let path = format!("/api/appointments/{id}");
    let (status, body) = app
        .put(&path, json!({"timeSlot": "11:00"}), &gus.tokens.token)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .put(&path, json!({"status": "Cancelled"}), &gus.tokens.token)
        .await;
    assert_eq!(status, 200, "{body}");

    let address = "drnews@example.org";
    assert!(
        eventually(WAIT, || async {
            to(&providers.smtp.received(), address).len() >= 3
        })
        .await,
        "three notices to the doctor"
    );
    let mails = to(&providers.smtp.received(), address);
    let subjects: Vec<_> = mails.iter().filter_map(|m| m.header("Subject")).collect();
    for expected in [
        format!("New appointment: {day} 10:00"),
        format!("Appointment moved to {day} 11:00"),
        format!("Appointment cancelled: {day} 11:00"),
    ] {
        assert!(subjects.contains(&expected), "{expected} in {subjects:?}");
    }
    let moved = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.starts_with("Appointment moved"))
        })
        .unwrap()
        .text();
    assert!(
        moved.contains(&format!(
            "Patient gus moved their appointment with you from {day} 10:00 to {day} 11:00"
        )),
        "{moved}"
    );

    // The doctor's own booking tells them nothing; an opted-out doctor
    // hears of no one's.
    book("12:00", doctor.clone()).await;
    set_prefs(&app, &doctor, |p| {
        p["categories"]["appointment_change"] = json!(false);
    })
    .await;
    book("13:00", gus.tokens.token.clone()).await;
    settle().await;
    assert_eq!(to(&providers.smtp.received(), address).len(), 3);
}

/// The first DST change in `zone` at least two days from now, as the local
/// day it happens on.
fn next_dst_change(zone: &TimeZone) -> Date {
    let from = Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let change = zone.following(from).next().expect("a DST change ahead");
    change.timestamp().to_zoned(zone.clone()).date()
}

fn local(zone: &TimeZone, day: Date, hour: i8, minute: i8) -> Timestamp {
    day.at(hour, minute, 0, 0)
        .to_zoned(zone.clone())
        .unwrap()
        .timestamp()
}

#[tokio::test]
async fn the_daily_agenda_comes_once_at_seven_local_on_both_sides_of_a_dst_change() {
    let (providers, app, admin) = clinic(|s| s.schedule.horizon_days = 400).await;
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let doctor = doctor_account_in(&app, &admin, ("dragenda", "prv_berlin", "Europe/Berlin")).await;
    let ida = patient(&app, "ida", "+4915112345674").await;
    let change = next_dst_change(&berlin);
    let eve = change.yesterday().unwrap();
    for (day, time) in [(eve, "09:00"), (change, "10:00"), (change, "08:00")] {
        let (status, body) = app
            .post(
                "/api/appointments",
                json!({"patientId": ida.patient_id, "providerId": "prv_berlin",
                       "appointmentDate": day.to_string(), "timeSlot": time}),
                Some(&ida.tokens.token),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let address = "dragenda@example.org";
    let agendas = || {
        to(&providers.smtp.received(), address)
            .into_iter()
            .filter(|m| {
                m.header("Subject")
                    .is_some_and(|s| s.starts_with("Your appointments on"))
            })
            .collect::<Vec<_>>()
    };
    // Before the booking notices are counted out: three, one per booking.
    assert!(
        eventually(WAIT, || async {
            to(&providers.smtp.received(), address).len() >= 3
        })
        .await
    );

    // A minute before seven on the eve of the change: nothing yet (the
    // agenda planned for tomorrow is months late by this clock, and skipped).
    advance_to(&app, &admin, local(&berlin, eve, 6, 59)).await;
    settle().await;
    assert!(agendas().is_empty(), "{:?}", agendas());
    advance_to(&app, &admin, local(&berlin, eve, 7, 0)).await;
    assert!(eventually(WAIT, || async { agendas().len() == 1 }).await);
    let first = &agendas()[0];
    assert_eq!(
        first.header("Subject").as_deref(),
        Some(format!("Your appointments on {eve}: 1").as_str())
    );
    assert!(
        first.text().contains("09:00 Patient ida"),
        "{}",
        first.text()
    );

    // A later time chosen the same morning does not send that day again;
    // choosing 07:00 again plans the next day's.
    set_prefs(&app, &doctor, |p| p["agendaAt"] = json!("07:30")).await;
    advance_to(&app, &admin, local(&berlin, eve, 7, 31)).await;
    settle().await;
    assert_eq!(agendas().len(), 1, "{:?}", agendas());
    set_prefs(&app, &doctor, |p| p["agendaAt"] = json!("07:00")).await;

    // The day of the change: seven local is at another UTC offset.
    let seven = local(&berlin, change, 7, 0);
    let eve_seven = local(&berlin, eve, 7, 0);
    assert_ne!(berlin.to_offset(seven), berlin.to_offset(eve_seven));
    advance_to(&app, &admin, local(&berlin, change, 6, 59)).await;
    settle().await;
    assert_eq!(agendas().len(), 1);
    advance_to(&app, &admin, seven).await;
    assert!(eventually(WAIT, || async { agendas().len() == 2 }).await);
    let second = agendas()
        .into_iter()
        .find(|m| {
            m.header("Subject").as_deref()
                == Some(format!("Your appointments on {change}: 2").as_str())
        })
        .expect("the agenda of the change's day");
    let text = second.text();
    let (eight, ten) = (
        text.find("08:00 Patient ida"),
        text.find("10:00 Patient ida"),
    );
    assert!(eight.is_some() && eight < ten, "in order: {text}");
    settle().await;
    assert_eq!(agendas().len(), 2, "each day's agenda once");

    // The chain survives a restart (the new server's clock starts at the
    // real time again) and goes on the day after, once.
    let app = app
        .restart(|s| {
            providers.apply(s);
            s.schedule.horizon_days = 400;
        })
        .await;
    let admin = app.admin_token().await;
    let after = change.tomorrow().unwrap();
    advance_to(&app, &admin, local(&berlin, after, 6, 59)).await;
    settle().await;
    assert_eq!(agendas().len(), 2);
    advance_to(&app, &admin, local(&berlin, after, 7, 0)).await;
    assert!(eventually(WAIT, || async { agendas().len() == 3 }).await);
    let third = agendas()
        .into_iter()
        .filter_map(|m| m.header("Subject"))
        .find(|s| s.contains(&after.to_string()));
    assert_eq!(third, Some(format!("Your appointments on {after}: 0")));
    settle().await;
    assert_eq!(agendas().len(), 3, "once after the restart too");
}
