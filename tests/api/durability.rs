//! Acknowledged writes survive SIGKILL: between checkpoints a write is
//! durable in the store's redo log, which the next start replays.

use futures_util::future::join_all;
use jiff::ToSpan;
use serde_json::{Value, json};

use crate::helpers::*;

/// Patients booking at once, and bookings each.
const PATIENTS: usize = 4;
const EACH: usize = 8;

fn slot(i: usize) -> String {
    format!("{:02}:{:02}", 8 + i / 4, (i % 4) * 15)
}

#[tokio::test]
async fn every_acknowledged_booking_survives_a_kill_with_its_events_in_order() {
    let (_dir, data) = data_with_admin().await;
    let env = FAR_CHECKPOINTS;
    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    let (status, body) = app
        .post(
            "/api/providers",
            json!({"providerId": "prv_kill", "name": "Dr. Kill", "timeZone": "UTC",
                   "slotMinutes": 15, "availability": all_day_availability()}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut board = app.ws(Some(&admin)).await;
    let sub = board
        .call(json!({"type": "subscribe", "channel": "board:prv_kill"}))
        .await;
    let seq0 = sub["data"]["seq"].as_u64().unwrap();
    drop(board);
    let mut patients = Vec::new();
    for i in 0..PATIENTS {
        patients.push(app.signup_patient(&format!("kill{i}")).await);
    }
    let date = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .unwrap()
        .to_string();
    let bookings = patients.iter().enumerate().flat_map(|(p, patient)| {
        let (app, date) = (&app, &date);
        (0..EACH).map(move |k| async move {
            let time = slot(p * EACH + k);
            let (status, body) = app
                .post(
                    "/api/appointments",
                    json!({"patientId": patient.patient_id, "providerId": "prv_kill",
                           "appointmentDate": date, "timeSlot": time}),
                    Some(&patient.tokens.token),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            (time, body["appointmentId"].as_str().unwrap().to_owned())
        })
    });
    let booked: Vec<(String, String)> = join_all(bookings).await;
    server.kill();
    let log = std::fs::metadata(data.join("medrelay.redb.wal")).unwrap();
    assert!(log.len() > 0, "the kill left groups in the redo log");

    let server = Process::start(&data, &env);
    let app = server.app(&data);
    let admin = app.admin_token().await;
    for (time, id) in &booked {
        let (status, body) = app
            .get(&format!("/api/appointments/{id}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["status"], "Scheduled", "{body}");
        assert_eq!(body["timeSlot"], time.as_str(), "{body}");
    }
    // The doctor's cells came back too: each time is still taken.
    let p = &patients[0];
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": p.patient_id, "providerId": "prv_kill",
                   "appointmentDate": date, "timeSlot": booked[PATIENTS * EACH - 1].0}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // The board's history holds every booking once, numbered without gaps,
    // and the next event continues the numbering.
    let mut board = app.ws(Some(&admin)).await;
    let sub = board
        .call(json!({"type": "subscribe", "channel": "board:prv_kill", "since": seq0}))
        .await;
    assert_eq!(sub["data"]["replayed"], PATIENTS * EACH, "{sub}");
    let mut times: Vec<String> = Vec::new();
    for i in 0..PATIENTS * EACH {
        let event: Value = board.next_event().await;
        assert_eq!(event["seq"], seq0 + 1 + i as u64, "{event}");
        times.push(
            event["event"]["slot"]["timeSlot"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    times.sort();
    let mut expected: Vec<String> = booked.iter().map(|(t, _)| t.clone()).collect();
    expected.sort();
    assert_eq!(times, expected);
    let (status, body) = app
        .post(
            "/api/appointments",
            json!({"patientId": p.patient_id, "providerId": "prv_kill",
                   "appointmentDate": date, "timeSlot": "20:00"}),
            Some(&p.tokens.token),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        board.next_event().await["seq"],
        seq0 + 1 + (PATIENTS * EACH) as u64
    );
    server.kill();
}
