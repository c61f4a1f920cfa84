//! E-mails about an appointment carry an iCalendar invitation
//! (`invite.ics`), read back from the real SMTP server by a real parser:
//! the same UID and SEQUENCE as the patient's calendar feed, REQUEST for a
//! booking that stands, CANCEL for a cancellation.

use serde_json::{Value, json};

use super::{WAIT, book, clinic, figures, in_days, patient};
use crate::calendar::parse_ics;
use crate::smtp_sink::Mail;

/// The mail's `invite.ics`, parsed, and its part's content type.
fn invitation(mail: &Mail) -> (String, Value) {
    let part = mail
        .parts()
        .into_iter()
        .find(|p| {
            p.header("Content-Disposition")
                .is_some_and(|d| d.contains("invite.ics"))
        })
        .unwrap_or_else(|| panic!("no invite.ics in {}", mail.data));
    let kind = part.header("Content-Type").unwrap_or_default();
    (kind, parse_ics(&part.text()))
}

#[tokio::test]
async fn appointment_emails_carry_the_feeds_event() {
    let (providers, app, admin) = clinic(|s| s.notifications.confirm_bookings = true).await;
    let dana = patient(&app, "dana", "+4915112345670").await;
    let appointment = book(&app, &dana, in_days(3), "10:00").await;

    // The booking is confirmed by e-mail alone: its invitation is the
    // event's first version; nothing else is sent.
    let mails = providers.smtp.wait_for(1, WAIT).await;
    assert!(
        mails[0].text().contains("booked") && mails[0].text().contains("10:00"),
        "{}",
        mails[0].text()
    );
    let (kind, booked) = invitation(&mails[0]);
    assert!(kind.contains("method=REQUEST"), "{kind}");
    let event = &booked["events"][0];
    assert_eq!(event["uid"], format!("{appointment}@medrelay"));
    assert_eq!(
        (event["sequence"].as_i64(), event["status"].as_str()),
        (Some(0), Some("CONFIRMED"))
    );
    assert_eq!(event["startUtc"], format!("{}T10:00:00Z", in_days(3)));
    let f = figures(&app, &admin).await;
    let sent: Vec<&String> = f.as_object().unwrap().keys().collect();
    assert_eq!(
        sent,
        ["email"],
        "no in-app notice of one's own booking: {f}"
    );
    assert!(providers.sms_sent().await.is_empty(), "one text route only");

    let (status, body) = app
        .put(
            &format!("/api/appointments/{appointment}"),
            json!({"timeSlot": "11:30"}),
            &dana.tokens.token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mails = providers.smtp.wait_for(2, WAIT).await;
    assert!(
        mails[1].text().contains("11:30"),
        "the text is still the first part: {}",
        mails[1].text()
    );
    let (kind, moved) = invitation(&mails[1]);
    assert!(
        kind.contains("text/calendar") && kind.contains("method=REQUEST"),
        "{kind}"
    );
    assert_eq!(moved["method"], "REQUEST");
    let event = &moved["events"][0];
    assert_eq!(event["uid"], format!("{appointment}@medrelay"));
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["status"], "CONFIRMED");
    assert_eq!(event["startUtc"], format!("{}T11:30:00Z", in_days(3)));
    assert_eq!(moved["zones"], json!(["UTC"]));

    // The feed names the same event at the same version.
    let (status, created) = app
        .post("/api/calendar/feeds", json!({}), Some(&dana.tokens.token))
        .await;
    assert_eq!(status, 201, "{created}");
    // The URL is under the configured public address; fetch its path here.
    let url = created["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://clinic.example.org/api/calendar/cal_"),
        "{url}"
    );
    let path = &url[url.find("/api/").unwrap()..];
    let text = app
        .http
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let feed = parse_ics(&text);
    let listed = &feed["events"][0];
    assert_eq!(
        (&listed["uid"], &listed["sequence"]),
        (&event["uid"], &event["sequence"])
    );

    let response = app
        .http
        .delete(app.url(&format!("/api/appointments/{appointment}")))
        .bearer_auth(&dana.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mails = providers.smtp.wait_for(3, WAIT).await;
    let (kind, cancelled) = invitation(&mails[2]);
    assert!(kind.contains("method=CANCEL"), "{kind}");
    assert_eq!(cancelled["method"], "CANCEL");
    let event = &cancelled["events"][0];
    assert_eq!(event["uid"], format!("{appointment}@medrelay"));
    assert_eq!(
        (event["sequence"].as_i64(), event["status"].as_str()),
        (Some(2), Some("CANCELLED"))
    );
}

#[tokio::test]
async fn an_email_whose_appointment_changed_since_goes_without_an_invitation() {
    // The mail server is away while two moves are announced.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_providers, app, _admin) = clinic(|s| {
        s.notifications.email.port = port;
        s.notifications.delivery.max_attempts = 1_000;
    })
    .await;
    let erin = patient(&app, "erin", "+4915112345671").await;
    let appointment = book(&app, &erin, in_days(3), "10:00").await;
    for slot in ["11:00", "12:00"] {
        let (status, body) = app
            .put(
                &format!("/api/appointments/{appointment}"),
                json!({"timeSlot": slot}),
                &erin.tokens.token,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let smtp = crate::smtp_sink::SmtpSink::start_on(addr).await;
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);
    let (stale, current): (Vec<&Mail>, Vec<&Mail>) =
        mails.iter().partition(|m| m.text().contains("11:00"));
    assert_eq!((stale.len(), current.len()), (1, 1));
    assert!(
        stale[0].parts().is_empty(),
        "the first move's e-mail is sent after the second move, without an invitation: {}",
        stale[0].data
    );
    let (_, moved) = invitation(current[0]);
    assert_eq!(moved["events"][0]["sequence"], 2);
    assert_eq!(
        moved["events"][0]["startUtc"],
        format!("{}T12:00:00Z", in_days(3))
    );
}

#[tokio::test]
async fn confirmations_beyond_what_the_channel_sends_a_second_all_follow_once() {
    // Confirmations are made no faster than e-mails go out: two a second.
    let (providers, app, _admin) = clinic(|s| {
        s.notifications.confirm_bookings = true;
        s.notifications.delivery.rate_per_sec = 2;
    })
    .await;
    let fay = patient(&app, "fay", "+4915112345672").await;
    let mut booked = Vec::new();
    for time in ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"] {
        booked.push(format!(
            "{}@medrelay",
            book(&app, &fay, in_days(3), time).await
        ));
    }
    let mails = providers.smtp.wait_for(6, WAIT).await;
    let mut confirmed: Vec<String> = mails
        .iter()
        .map(|m| {
            invitation(m).1["events"][0]["uid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    confirmed.sort();
    booked.sort();
    assert_eq!(confirmed, booked, "each booking confirmed once");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(providers.smtp.received().len(), 6, "and no more");
}

#[tokio::test]
async fn a_booking_cancelled_before_its_confirmations_turn_is_not_confirmed() {
    // The mail server is away, so the first confirmation holds the e-mail
    // channel's one send a second and the others wait their turn.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_providers, app, _admin) = clinic(|s| {
        s.notifications.confirm_bookings = true;
        s.notifications.delivery.rate_per_sec = 1;
        s.notifications.delivery.max_attempts = 1_000;
        s.notifications.email.port = port;
    })
    .await;
    let gus = patient(&app, "gus", "+4915112345673").await;
    let first = book(&app, &gus, in_days(3), "09:00").await;
    let second = book(&app, &gus, in_days(3), "10:00").await;
    let third = book(&app, &gus, in_days(3), "11:00").await;
    let response = app
        .http
        .delete(app.url(&format!("/api/appointments/{third}")))
        .bearer_auth(&gus.tokens.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let smtp = crate::smtp_sink::SmtpSink::start_on(addr).await;
    let mails = smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mails_now = smtp.received();
    assert_eq!(mails_now.len(), 3, "two confirmations and a cancellation");
    let mut seen: Vec<(String, String)> = mails
        .iter()
        .map(|m| {
            let (_, ics) = invitation(m);
            let uid = ics["events"][0]["uid"].as_str().unwrap().to_owned();
            (uid, ics["method"].as_str().unwrap().to_owned())
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (format!("{first}@medrelay"), "REQUEST".to_owned()),
        (format!("{second}@medrelay"), "REQUEST".to_owned()),
        (format!("{third}@medrelay"), "CANCEL".to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}
