//! Waitlist offers: a cancellation offers the slot to the first waitlisted
//! patient live and by SMS; unanswered, it passes to the next; accepted, it
//! is booked; a restart during an offer keeps it and offers the slot once.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Providers, WAIT, book, clinic, field, in_days, patient, subscribe_patient};
use crate::helpers::*;

/// `p` joins Dr. House's waitlist for `day`, 09:00-12:00; prefers SMS.
async fn wait_for_slot(app: &TestApp, p: &Patient, day: jiff::civil::Date) -> Value {
    let (status, entry) = app
        .post(
            "/api/providers/prv_house/waitlist",
            json!({"from": day.to_string(), "to": day.to_string(), "times": ["09:00-12:00"]}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    let path = "/api/users/me/notification-preferences";
    let (_, mut prefs) = app.get(path, Some(&p.tokens.token)).await;
    prefs["preferredChannel"] = json!("sms");
    assert_eq!(app.put(path, prefs, &p.tokens.token).await.0, 200);
    entry
}

/// `p` books `provider` at 10:00 on `day` for themselves, quoting `hold`.
async fn book_ten(
    app: &TestApp,
    p: &Patient,
    (provider, day): (&str, jiff::civil::Date),
    hold: Option<&Value>,
) -> (u16, Value) {
    let mut body = json!({"patientId": p.patient_id, "providerId": provider,
                          "appointmentDate": day.to_string(), "timeSlot": "10:00"});
    if let Some(hold) = hold {
        body["holdId"] = hold.clone();
    }
    app.post("/api/appointments", body, Some(&p.tokens.token))
        .await
}

/// The next event of `kind` on `ws`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    tokio::time::timeout(within, async {
        loop {
            let event = ws.next_event().await;
            if event["event"]["kind"] == kind {
                return event["event"].clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event in time"))
}

/// SMS sent to `phone` so far.
async fn texts_to(providers: &Providers, phone: &str) -> Vec<String> {
    providers
        .sms_sent()
        .await
        .iter()
        .filter(|f| field(f, "To") == Some(phone))
        .filter_map(|f| field(f, "Body").map(str::to_owned))
        .collect()
}

async fn cancel(app: &TestApp, p: &Patient, id: &str) {
    let (status, body) = app
        .put(
            &format!("/api/appointments/{id}"),
            json!({"status": "Cancelled"}),
            &p.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_freed_slot_is_offered_in_turn_and_booked_by_the_patient_who_accepts() {
    let (providers, app, admin) = clinic(|s| s.schedule.offer_secs = 2).await;
    let day = in_days(3);
    let (cal, dana, eli) = (
        patient(&app, "cal", "+4915100000001").await,
        patient(&app, "dana", "+4915100000002").await,
        patient(&app, "eli", "+4915100000003").await,
    );
    let taken = book(&app, &cal, day, "10:00").await;
    wait_for_slot(&app, &dana, day).await;
    let eli_entry = wait_for_slot(&app, &eli, day).await;
    let (mut dana_ws, mut eli_ws) = (
        subscribe_patient(&app, &dana, None).await,
        subscribe_patient(&app, &eli, None).await,
    );

    // Cal cancels: Dana, first in line, gets the offer live and by SMS.
    cancel(&app, &cal, &taken).await;
    let offer = next_of(&mut dana_ws, "offer_made", WAIT).await;
    assert_eq!(offer["slot"]["timeSlot"], "10:00", "{offer}");
    assert!(
        eventually(WAIT, || async {
            texts_to(&providers, "+4915100000002").await.len() == 1
        })
        .await
    );
    let text = &texts_to(&providers, "+4915100000002").await[0];
    assert!(text.contains("has come free and is held for you"), "{text}");
    // Held meanwhile, for everyone else.
    let (status, reply) = book_ten(&app, &cal, ("prv_house", day), None).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("slot_held"))
    );

    // Unanswered, it lapses and passes to Eli.
    next_of(&mut dana_ws, "offer_expired", WAIT).await;
    let second = next_of(&mut eli_ws, "offer_made", WAIT).await;
    assert_ne!(second["holdId"], offer["holdId"]);
    // Dana can no longer take it with her lapsed hold.
    let lapsed = Some(&offer["holdId"]);
    let (status, reply) = book_ten(&app, &dana, ("prv_house", day), lapsed).await;
    assert_eq!(status, 422, "{reply}");

    // Eli accepts: booked, and off the waitlist.
    let accept = Some(&second["holdId"]);
    let (status, reply) = book_ten(&app, &eli, ("prv_house", day), accept).await;
    assert_eq!(status, 201, "{reply}");
    next_of(&mut eli_ws, "offer_accepted", WAIT).await;
    let (_, list) = app
        .get("/api/providers/prv_house/waitlist", Some(&eli.tokens.token))
        .await;
    assert_eq!(list["entries"], json!([]), "{list}");
    // Dana is still waiting; the doctor sees her entry, Eli's is gone.
    let (_, all) = app
        .get("/api/providers/prv_house/waitlist", Some(&admin))
        .await;
    let ids: Vec<_> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["patientId"].clone())
        .collect();
    assert_eq!(ids, vec![json!(dana.patient_id)], "{all}");
    assert_ne!(eli_entry["entryId"], json!(null));
}

#[tokio::test]
async fn a_restart_during_an_offer_keeps_it_and_offers_the_slot_once() {
    let (providers, app, _admin) = clinic(|s| s.schedule.offer_secs = 4).await;
    let day = in_days(3);
    let (cal, dana) = (
        patient(&app, "cal", "+4915100000011").await,
        patient(&app, "dana", "+4915100000012").await,
    );
    let taken = book(&app, &cal, day, "10:00").await;
    wait_for_slot(&app, &dana, day).await;
    cancel(&app, &cal, &taken).await;
    assert!(
        eventually(WAIT, || async {
            texts_to(&providers, "+4915100000012").await.len() == 1
        })
        .await
    );

    let app = app
        .restart(|s| {
            providers.apply(s);
            s.schedule.offer_secs = 4;
        })
        .await;
    // Still held for Dana, and not offered again.
    let (status, reply) = book_ten(&app, &cal, ("prv_house", day), None).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("slot_held")),
        "{reply}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(texts_to(&providers, "+4915100000012").await.len(), 1);
    // Lapsed with nobody else waiting, the slot is free again.
    assert!(
        eventually(Duration::from_secs(15), || async {
            book_ten(&app, &cal, ("prv_house", day), None).await.0 == 201
        })
        .await
    );
}

#[tokio::test]
async fn time_opened_by_new_hours_is_offered_in_turn_one_slot_each() {
    let (providers, app, admin) = clinic(|_| {}).await;
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "prv_grey", "name": "Dr. Grey", "timeZone": "UTC",
                   "slotMinutes": 30, "availability": daily_availability(&["13:00-17:00"])}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let day = in_days(3);
    let (dana, eli, fay, gil) = (
        patient(&app, "dana", "+4915100000031").await,
        patient(&app, "eli", "+4915100000032").await,
        patient(&app, "fay", "+4915100000033").await,
        patient(&app, "gil", "+4915100000034").await,
    );
    let join = |p: &Patient, times: &str| {
        let body = json!({"from": day.to_string(), "to": day.to_string(), "times": [times]});
        let token = p.tokens.token.clone();
        let app = &app;
        async move {
            let (status, entry) = app
                .post("/api/providers/prv_grey/waitlist", body, Some(&token))
                .await;
            assert_eq!(status, 201, "{entry}");
        }
    };
    // Dana, Eli and Fay wait for a morning; Gil for an afternoon the doctor
    // already works (and chose to wait rather than book).
    join(&dana, "08:00-12:00").await;
    join(&eli, "08:00-12:00").await;
    join(&fay, "08:00-12:00").await;
    join(&gil, "13:00-17:00").await;
    let mut sockets = Vec::new();
    for p in [&dana, &eli, &fay, &gil] {
        sockets.push(subscribe_patient(&app, p, None).await);
    }

    // The doctor opens 09:00-10:00: two new slots, for the first two in line.
    let (status, body) = app
        .put(
            "/api/providers/prv_grey",
            json!({"availability": daily_availability(&["09:00-10:00", "13:00-17:00"])}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = next_of(&mut sockets[0], "offer_made", WAIT).await;
    let second = next_of(&mut sockets[1], "offer_made", WAIT).await;
    assert_eq!(first["slot"]["timeSlot"], "09:00", "{first}");
    assert_eq!(second["slot"]["timeSlot"], "09:30", "{second}");
    assert_eq!(first["slot"]["start"], format!("{day}T09:00:00Z"));
    for idle in &mut sockets[2..] {
        idle.no_event_within(Duration::from_millis(500)).await;
    }
    // Offered by their text channel too, and held for them alone.
    assert!(
        eventually(WAIT, || async {
            providers.sms_sent().await.len() + providers.smtp.received().len() == 2
        })
        .await
    );
    let body = json!({"patientId": fay.patient_id, "providerId": "prv_grey",
                      "appointmentDate": day.to_string(), "timeSlot": "09:00"});
    let (status, reply) = app
        .post("/api/appointments", body.clone(), Some(&fay.tokens.token))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("slot_held")),
        "{reply}"
    );
    let mut accept = body;
    accept["patientId"] = json!(dana.patient_id);
    accept["holdId"] = first["holdId"].clone();
    let (status, reply) = app
        .post("/api/appointments", accept, Some(&dana.tokens.token))
        .await;
    assert_eq!(status, 201, "{reply}");

    // The same hours again open nothing new.
    let (status, body) = app
        .put(
            "/api/providers/prv_grey",
            json!({"name": "Dr. Meredith Grey"}),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for idle in &mut sockets[2..] {
        idle.no_event_within(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn waitlist_entries_are_checked_and_seen_only_by_who_may() {
    let (_providers, app, admin) = clinic(|_| {}).await;
    let (fay, gil) = (
        patient(&app, "fay", "+4915100000021").await,
        patient(&app, "gil", "+4915100000022").await,
    );
    let day = in_days(3);
    let path = "/api/providers/prv_house/waitlist";
    for (body, status, field) in [
        (
            json!({"from": day.to_string(), "to": in_days(1).to_string()}),
            422,
            Some("to"),
        ),
        (
            json!({"from": day.to_string(), "to": day.to_string(), "times": ["12:00-09:00"]}),
            400,
            None,
        ),
        (
            json!({"from": day.to_string(), "to": day.to_string(), "extra": 1}),
            400,
            None,
        ),
        (
            json!({"from": day.to_string(), "to": in_days(200).to_string()}),
            422,
            Some("to"),
        ),
        (
            json!({"from": day.to_string(), "to": day.to_string(), "patientId": gil.patient_id}),
            403,
            None,
        ),
    ] {
        let (got, reply) = app.post(path, body.clone(), Some(&fay.tokens.token)).await;
        assert_eq!(got, status, "{body} -> {reply}");
        if let Some(field) = field {
            assert_eq!(reply["error"]["field"], field, "{reply}");
        }
    }
    let (status, entry) = app
        .post(
            path,
            json!({"from": day.to_string(), "to": day.to_string()}),
            Some(&fay.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    let (_, seen) = app.get(path, Some(&gil.tokens.token)).await;
    assert_eq!(seen["entries"], json!([]), "a patient sees only their own");
    let (_, seen) = app.get(path, Some(&admin)).await;
    assert_eq!(seen["entries"].as_array().unwrap().len(), 1);
    let leave = format!("{path}/{}", entry["entryId"].as_str().unwrap());
    let gone = |token: &str| {
        let (app, leave, token) = (&app, leave.clone(), token.to_owned());
        async move {
            read(
                app.http
                    .delete(app.url(&leave))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
            .0
        }
    };
    assert_eq!(gone(&gil.tokens.token).await, 403);
    assert_eq!(gone(&fay.tokens.token).await, 204);
    assert_eq!(gone(&fay.tokens.token).await, 404);
}

#[tokio::test]
async fn a_patient_who_could_not_take_the_slot_is_passed_over() {
    let (_providers, app, admin) = clinic(|s| s.schedule.offer_secs = 60).await;
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "prv_other", "name": "Dr. Other", "timeZone": "UTC",
                   "availability": all_day_availability()}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let day = in_days(3);
    let (cal, dana, eli) = (
        patient(&app, "cal", "+4915100000031").await,
        patient(&app, "dana", "+4915100000032").await,
        patient(&app, "eli", "+4915100000033").await,
    );
    let taken = book(&app, &cal, day, "10:00").await;
    wait_for_slot(&app, &dana, day).await;
    wait_for_slot(&app, &eli, day).await;
    // Dana, first in line, is busy with another doctor at that very time.
    let (status, body) = book_ten(&app, &dana, ("prv_other", day), None).await;
    assert_eq!(status, 201, "{body}");
    let mut eli_ws = subscribe_patient(&app, &eli, None).await;
    cancel(&app, &cal, &taken).await;
    let offer = next_of(&mut eli_ws, "offer_made", WAIT).await;
    assert_eq!(offer["slot"]["timeSlot"], "10:00", "{offer}");
}
