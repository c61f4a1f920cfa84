//! Events in the JetStream stream: subject, id and payload, an outage, a crash.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::{all_day_provider, booking, slots, with_nats};
use crate::helpers::*;
use crate::nats_harness::NatsServer;

/// Every message of the event stream, in stream order: (subject, headers,
/// payload); none while the stream does not exist yet.
async fn stream_messages(nats: &NatsServer) -> Vec<(String, async_nats::HeaderMap, Value)> {
    let js = async_nats::jetstream::new(nats.client().await);
    // The server creates the stream once it has connected; until then
    // there is nothing in it.
    let Ok(stream) = js.get_stream("MEDRELAY_EVENTS").await else {
        return Vec::new();
    };
    let info = stream.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let message = stream.get_raw_message(seq).await.unwrap();
        out.push((
            message.subject.to_string(),
            message.headers,
            serde_json::from_slice(&message.payload).unwrap(),
        ));
    }
    out
}

/// The messages of the stream on `medrelay.evt.schedule.>`.
async fn schedule_events(nats: &NatsServer) -> Vec<Value> {
    stream_messages(nats)
        .await
        .into_iter()
        .filter(|(subject, _, _)| subject.starts_with("medrelay.evt.schedule."))
        .map(|(_, _, payload)| payload)
        .collect()
}

/// Sends `request` and reads its reply as JSON.
async fn json_reply(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_websocket_booking_lands_in_the_stream_with_its_subject_id_and_payload() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    all_day_provider(&app, &admin, "prov001").await;
    let p = app.signup_patient("alice").await;
    let slot = &slots(1)[0];
    let mut ws = app.ws(Some(&p.tokens.token)).await;
    let mut cmd = booking(&p.patient_id, "prov001", slot);
    cmd["type"] = json!("book");
    let reply = ws.call(cmd).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let appointment = reply["data"]["appointmentId"].as_str().unwrap().to_owned();

    let arrived = eventually(Duration::from_secs(10), || async {
        !schedule_events(&nats).await.is_empty()
    })
    .await;
    assert!(arrived, "the booking never reached the stream");
    let messages = stream_messages(&nats).await;
    let (subject, headers, payload) = messages
        .iter()
        .find(|(s, _, _)| s.contains(".schedule."))
        .unwrap();
    assert_eq!(subject, "medrelay.evt.schedule.prov001.appointment_booked");
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("board:prov001/1")
    );
    assert_eq!(payload["v"], 1);
    assert_eq!(payload["eventId"], "board:prov001/1");
    assert_eq!(payload["channel"], "board:prov001");
    assert_eq!(payload["seq"], 1);
    assert_eq!(payload["event"]["kind"], "appointment_booked");
    assert_eq!(payload["event"]["appointmentId"], appointment.as_str());
    assert_eq!(payload["event"]["patientId"], p.patient_id.as_str());
    assert_eq!(payload["event"]["slot"]["timeSlot"], slot.1.as_str());
    // Sign-ups are published too; the patient's private channel is not.
    assert!(
        messages
            .iter()
            .any(|(s, _, _)| s == &format!("medrelay.evt.user.{}.user_registered", p.user_id))
    );
    let private = format!("patient:{}", p.patient_id);
    assert!(
        !messages
            .iter()
            .any(|(_, _, m)| m["channel"] == private.as_str())
    );
    // What the staff channel publishes of the sign-up: the id alone.
    assert!(
        messages
            .iter()
            .any(|(s, _, _)| s
                == &format!("medrelay.evt.patient.{}.patient_registered", p.patient_id))
    );
    // Published events leave the outbox.
    let drained = eventually(Duration::from_secs(5), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained);
}

#[tokio::test]
async fn an_outage_loses_nothing_and_duplicates_nothing() {
    let mut nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    const DOCTORS: usize = 5;
    const PER_DOCTOR: usize = 100;
    let mut patients = Vec::new();
    for d in 0..DOCTORS {
        all_day_provider(&app, &admin, &format!("prov{d}")).await;
        patients.push(app.signup_patient(&format!("outage{d}")).await.patient_id);
    }
    let published = eventually(Duration::from_secs(10), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(published);
    let before = stream_messages(&nats).await.len();

    nats.kill();
    let down = eventually(Duration::from_secs(10), || async {
        let (status, ready) = app.get("/readyz", None).await;
        status == 200 && ready["status"] == "degraded" && ready["checks"]["nats"] == "disconnected"
    })
    .await;
    assert!(down, "readyz did not report NATS as away");

    let slots = slots(PER_DOCTOR);
    let bookings = (0..DOCTORS).map(|d| {
        let (app, admin, patient, slots) = (&app, &admin, &patients[d], &slots);
        async move {
            for slot in slots {
                let body = booking(patient, &format!("prov{d}"), slot);
                let (status, reply) = app.post("/api/appointments", body, Some(admin)).await;
                assert_eq!(status, 201, "a booking failed while NATS was down: {reply}");
            }
        }
    });
    futures_util::future::join_all(bookings).await;
    let (_, ready) = app.get("/readyz", None).await;
    assert_eq!(ready["checks"]["outboxPending"], DOCTORS * PER_DOCTOR);

    nats.resume();
    let drained = eventually(Duration::from_secs(60), || async {
        let (_, ready) = app.get("/readyz", None).await;
        ready["status"] == "ready" && ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained, "the outbox did not drain after NATS came back");

    let messages = stream_messages(&nats).await;
    assert_eq!(messages.len() - before, DOCTORS * PER_DOCTOR);
    let new: Vec<&Value> = messages[before..].iter().map(|(_, _, p)| p).collect();
    let ids: HashSet<&str> = new.iter().map(|p| p["eventId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), DOCTORS * PER_DOCTOR, "a duplicated event");
    let mut per_board: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for payload in &new {
        assert_eq!(payload["event"]["kind"], "appointment_booked");
        per_board
            .entry(payload["channel"].as_str().unwrap())
            .or_default()
            .push(payload["seq"].as_u64().unwrap());
    }
    assert_eq!(per_board.len(), DOCTORS);
    for (board, seqs) in per_board {
        let expected: Vec<u64> = (1..=PER_DOCTOR as u64).collect();
        assert_eq!(seqs, expected, "{board} out of order or with gaps");
    }
}

#[tokio::test]
async fn a_crash_while_publishing_leaves_each_event_once_in_the_stream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut settings = test_settings(&data);
    settings.nats.url = nats.url();
    create_admin(&settings).await;
    let http = reqwest::Client::new();
    let server = Process::start(&data, &[("MEDRELAY__NATS__URL", nats.url().as_str())]);
    let base = format!("http://{}", server.addr);
    let admin = login(&http, &base, ADMIN).await;
    let provider = json!({"providerId": "crash", "name": "Dr. Crash", "timeZone": "UTC",
                          "availability": all_day_availability()});
    let created = http
        .post(format!("{base}/api/providers"))
        .bearer_auth(&admin)
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let signup = json_reply(
        http.post(format!("{base}/api/auth/signup"))
            .json(&json!({"username": "crashpat", "email": "c@example.org",
                          "password": PASSWORD, "name": "C"})),
    )
    .await;
    let patient = signup["patientId"].as_str().unwrap().to_owned();

    // Book in four parallel streams and kill the server in the middle of
    // it: events are being published and acknowledged all the while.
    let slots = slots(400);
    let booked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = slots
        .chunks(100)
        .map(|chunk| {
            let (http, base, admin, patient) =
                (http.clone(), base.clone(), admin.clone(), patient.clone());
            let chunk = chunk.to_vec();
            let booked = booked.clone();
            tokio::spawn(async move {
                for slot in &chunk {
                    let body = booking(&patient, "crash", slot);
                    let Ok(response) = http
                        .post(format!("{base}/api/appointments"))
                        .bearer_auth(&admin)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() == 201 {
                        booked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let started = eventually(Duration::from_secs(30), || async {
        booked.load(std::sync::atomic::Ordering::SeqCst) >= 150
    })
    .await;
    assert!(started);
    server.kill();
    for writer in writers {
        let _ = writer.await;
    }

    // Restart on the same data: the rest of the outbox is published.
    let server = Process::start(&data, &[("MEDRELAY__NATS__URL", nats.url().as_str())]);
    let base = format!("http://{}", server.addr);
    let drained = eventually(Duration::from_secs(30), || async {
        let ready = json_reply(http.get(format!("{base}/readyz"))).await;
        ready["checks"]["outboxPending"] == 0
    })
    .await;
    assert!(drained, "the outbox did not drain after the restart");
    let admin = login(&http, &base, ADMIN).await;
    let list = json_reply(
        http.get(format!("{base}/api/appointments?providerId=crash"))
            .bearer_auth(&admin),
    )
    .await;
    let stored = list
        .as_array()
        .or_else(|| list["appointments"].as_array())
        .map(Vec::len)
        .expect("an appointment list");
    server.kill();

    let events = schedule_events(&nats).await;
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| e["channel"] == "board:crash")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    // Every committed booking (acknowledged or not when the process died) is
    // in the stream exactly once, in order.
    assert_eq!(
        seqs.len(),
        stored,
        "stream holds {} events for {stored} bookings",
        seqs.len()
    );
    let expected: Vec<u64> = (1..=stored as u64).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn patient_changes_reach_staff_and_the_stream_by_id_never_by_value() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    let mut staff = app.ws(Some(&admin)).await;
    let subscribed = staff
        .call(json!({"type": "subscribe", "channel": "patients"}))
        .await;
    assert_eq!(subscribed["ok"], true, "{subscribed}");
    let (status, body) = app
        .post(
            "/api/patients",
            json!({"name": "Quintessa Vormund", "dob": "1955-05-05",
                   "contactInfo": {"phone": "+15557654321"}}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["patientId"].as_str().unwrap().to_owned();
    let (status, _) = app
        .put(
            &format!("/api/patients/{id}"),
            json!({"contactInfo": {"phone": "+15550000001"}}),
            &admin,
        )
        .await;
    assert_eq!(status, 200);

    let registered = staff.next_event().await;
    assert_eq!(
        registered["event"]["kind"], "patient_registered",
        "{registered}"
    );
    assert_eq!(registered["event"]["patientId"], id.as_str());
    let updated = staff.next_event().await;
    assert_eq!(updated["event"]["kind"], "patient_updated", "{updated}");
    assert_eq!(updated["event"]["fields"], json!(["contactInfo"]));

    // A patient is not staff.
    let alice = app.signup_patient("alice").await;
    let mut ws = app.ws(Some(&alice.tokens.token)).await;
    let denied = ws
        .call(json!({"type": "subscribe", "channel": "patients"}))
        .await;
    assert_eq!(denied["error"]["code"], "forbidden");

    let expected = [
        format!("medrelay.evt.patient.{id}.patient_registered"),
        format!("medrelay.evt.patient.{id}.patient_updated"),
    ];
    let arrived = eventually(Duration::from_secs(10), || async {
        let seen = stream_messages(&nats).await;
        expected
            .iter()
            .all(|subject| seen.iter().any(|(s, _, _)| s == subject))
    })
    .await;
    let seen = stream_messages(&nats).await;
    assert!(
        arrived,
        "{:?}",
        seen.iter().map(|(s, _, _)| s).collect::<Vec<_>>()
    );
    for (subject, _, payload) in &seen {
        let text = payload.to_string();
        for secret in [
            "Quintessa",
            "Vormund",
            "5557654321",
            "5550000001",
            "1955-05-05",
        ] {
            assert!(!text.contains(secret), "{secret} in {subject}: {text}");
        }
    }
}

#[tokio::test]
async fn billing_changes_reach_the_stream_under_the_patient() {
    let nats = NatsServer::start();
    let app = spawn_app_with(with_nats(nats.url())).await;
    let admin = app.admin_token().await;
    let p = app.signup_patient("payer").await;
    let (status, body) = app
        .post(
            "/api/bills",
            json!({"billId": "bill_s1", "patientId": p.patient_id,
                   "services": [{"serviceId": "s", "description": "Visit", "amount": "10.00"}]}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/patients/{}/payments", p.patient_id),
            json!({"amount": "10.00", "method": "cash"}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let prefix = format!("medrelay.evt.billing.{}.", p.patient_id);
    let arrived = eventually(Duration::from_secs(10), || async {
        stream_messages(&nats)
            .await
            .iter()
            .filter(|(s, _, _)| s.starts_with(&prefix))
            .count()
            >= 3
    })
    .await;
    assert!(arrived, "the billing events never reached the stream");
    let kinds: Vec<(String, Value)> = stream_messages(&nats)
        .await
        .into_iter()
        .filter(|(s, _, _)| s.starts_with(&prefix))
        .map(|(s, _, m)| (s[prefix.len()..].to_owned(), m["event"].clone()))
        .collect();
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["bill_changed", "bill_changed", "payment_changed"],
        "created, paid, succeeded (a desk payment is never seen pending): {kinds:?}"
    );
    let (_, paid) = &kinds[2];
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount"], "10.00", "amounts travel as exact text");
    assert!(
        !kinds.iter().any(|(_, e)| e.to_string().contains("Visit")),
        "what a bill's services were stays out of events"
    );
}
