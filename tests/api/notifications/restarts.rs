//! A server process killed before a reminder fell due, or during its send.

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::WAIT;
use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

#[tokio::test]
async fn killed_before_a_reminder_fell_due_or_during_its_send_delivers_it_exactly_once() {
    let mut smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = test_settings(&data);
    create_admin(&settings).await;
    let http = reqwest::Client::new();

    // The next 5-minute slot at least 2 minutes ahead; its reminder due in
    // 15 s, time enough to start, book and kill before it.
    let now = Timestamp::now();
    let slot = Timestamp::from_second((now.as_second() + 120 + 299) / 300 * 300).unwrap();
    let due = now + SignedDuration::from_secs(15);
    let lead = slot.duration_since(due);
    let config = dir.path().join("medrelay.toml");
    write_config(&config, lead, smtp.addr().port());
    let env = [("MEDRELAY_CONFIG", config.to_str().unwrap())];

    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let token = login(&http, &base, ADMIN).await;
    let client = Client {
        http: &http,
        base: &base,
    };
    client
        .post(
            "/api/providers",
            json!({"providerId": "prv_house", "name": "Dr. House", "timeZone": "UTC",
        "slotMinutes": 5, "availability": all_day_availability()}),
            &token,
        )
        .await;
    let (patient_token, patient_id) = client.signup("ivan").await;
    let date = slot.to_zoned(jiff::tz::TimeZone::UTC);
    let (status, body) = client.post_status("/api/appointments", json!({"patientId": patient_id, "providerId": "prv_house",
        "appointmentDate": date.date().to_string(), "timeSlot": date.strftime("%H:%M").to_string()}), &patient_token).await;
    assert_eq!(status, 201, "{body}");
    // Killed before the reminder is due; it falls due while the server is down.
    assert!(
        Timestamp::now() < due,
        "set-up took too long to test a kill before the due time"
    );
    server.kill();
    assert!(smtp.received().is_empty());
    let left = due.duration_since(Timestamp::now()) + SignedDuration::from_secs(1);
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
    let server = Process::start(&data, &env);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "sent after the restart");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1, "and only once");
    server.kill();

    // Now a send that is under way when the server dies: the SMTP server
    // never answers, the process is killed mid-send, and the restart sends
    // it once more with the same Message-ID.
    let port = smtp.addr();
    smtp.stop();
    let silent = bind_again(port).await;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream); // accepted, never greeted
        }
    });
    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let token = login(&http, &base, ADMIN).await;
    let (status, accepted) = client
        .post_status(
            "/api/notifications/email",
            json!({"to": "ivan@example.org", "subject": "Lab results", "body": "Ready."}),
            &token,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["notificationId"].as_str().unwrap().to_owned();
    assert!(
        eventually(WAIT, || async {
            client
                .get(&format!("/api/notifications/{id}"), &token)
                .await["attempts"]
                == 1
        })
        .await,
        "the send began"
    );
    server.kill();
    hold.abort();
    let smtp = SmtpSink::start_on(port).await;
    let server = Process::start(&data, &env);
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Message-ID"),
        Some(format!("<{id}@medrelay>"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let token = login(&http, &base, ADMIN).await;
    let report = client
        .get(&format!("/api/notifications/{id}"), &token)
        .await;
    assert_eq!(report["status"], "sent", "{report}");
    assert_eq!(report["attempts"], 2, "{report}");
    server.kill();
}

/// Binds `addr` again once the previous listener on it is gone.
async fn bind_again(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} stayed in use");
}

fn write_config(file: &Path, lead: SignedDuration, smtp_port: u16) {
    std::fs::write(
        file,
        format!(
            "[schedule]\nmin_notice_minutes = 1\n\n[notifications]\nreminder_offsets = [\"{}s\"]\nconfirm_bookings = false\n\n\
             [notifications.email]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\n\
             [notifications.delivery]\nsend_timeout_secs = 60\n",
            lead.as_secs()
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn killed_during_an_offer_it_keeps_the_hold_and_offers_the_slot_once() {
    let smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = test_settings(&data);
    create_admin(&settings).await;
    let http = reqwest::Client::new();
    let config = dir.path().join("medrelay.toml");
    write_config(&config, SignedDuration::from_hours(24), smtp.addr().port());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("[schedule]\n", "[schedule]\noffer_secs = 600\n");
    std::fs::write(&config, text).unwrap();
    let env = [("MEDRELAY_CONFIG", config.to_str().unwrap())];

    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let admin = login(&http, &base, ADMIN).await;
    client
        .post(
            "/api/providers",
            json!({"providerId": "prv_house", "name": "Dr. House", "timeZone": "UTC",
                   "slotMinutes": 5, "availability": all_day_availability()}),
            &admin,
        )
        .await;
    let (cal_token, cal) = client.signup("cal").await;
    let (dana_token, dana) = client.signup("dana").await;
    let day = (Timestamp::now() + SignedDuration::from_hours(72))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let booking = |patient: &str| {
        json!({"patientId": patient, "providerId": "prv_house",
               "appointmentDate": day, "timeSlot": "10:00"})
    };
    let booked = client
        .post("/api/appointments", booking(&cal), &cal_token)
        .await;
    client
        .post(
            "/api/providers/prv_house/waitlist",
            json!({"from": day, "to": day}),
            &dana_token,
        )
        .await;
    let id = booked["appointmentId"].as_str().unwrap();
    let (status, body) = read(
        http.delete(format!("{base}/api/appointments/{id}"))
            .bearer_auth(&cal_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Offers made, counted by Message-ID: a send under way when the process
    // dies is sent again with the same Message-ID (the receiving side drops
    // the copy), while a second offer would be a new message.
    let offered = |mails: &[crate::smtp_sink::Mail]| {
        let ids: std::collections::BTreeSet<_> = mails
            .iter()
            .filter(|m| m.to == vec!["dana@example.org".to_owned()])
            .filter(|m| m.text().contains("has come free"))
            .map(|m| m.header("Message-ID").expect("every mail has a Message-ID"))
            .collect();
        ids.len()
    };
    assert!(eventually(WAIT, || async { offered(&smtp.received()) == 1 }).await);

    // Killed with the offer standing.
    server.kill();
    let server = Process::start(&data, &env);
    let base = format!("http://{}", server.addr);
    let client = Client {
        http: &http,
        base: &base,
    };
    let (status, reply) = client
        .post_status("/api/appointments", booking(&cal), &cal_token)
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("slot_held")),
        "{reply}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(offered(&smtp.received()), 1, "offered once");
    let (status, reply) = client
        .post_status("/api/appointments", booking(&dana), &dana_token)
        .await;
    assert_eq!(status, 201, "her offer is hers to book: {reply}");
    server.kill();
}
