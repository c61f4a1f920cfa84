use super::*;

fn event(zone: &str, start: &str, minutes: i64) -> Event {
    let start: Timestamp = start.parse().unwrap();
    Event {
        uid: "apt_1@medrelay".into(),
        sequence: 2,
        stamp: "2027-03-01T10:00:00Z".parse().unwrap(),
        created: "2027-02-01T10:00:00Z".parse().unwrap(),
        start,
        end: start + minutes.minutes(),
        zone: zone.into(),
        summary: "Appointment with Dr. Grey; room 4, floor 2".into(),
        location: Some("Clinic".into()),
        status: Status::Confirmed,
        organizer: None,
        attendee: None,
    }
}

fn unfold(text: &str) -> String {
    text.replace("\r\n ", "")
}

#[test]
fn an_event_is_written_in_its_doctors_zone_with_the_zone_defined() {
    // 2027-03-28 is the day Europe/London moves to summer time at 01:00Z;
    // the day before is winter time.
    let cal = Calendar {
        events: vec![
            event("Europe/London", "2027-03-27T09:00:00Z", 30),
            event("Europe/London", "2027-03-28T08:00:00Z", 30),
        ],
        ..Default::default()
    };
    let text = cal.render();
    assert!(
        text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
        "{text}"
    );
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    assert!(
        text.contains("DTSTART;TZID=Europe/London:20270328T090000\r\n"),
        "{text}"
    );
    assert!(text.contains("DTEND;TZID=Europe/London:20270328T093000\r\n"));
    assert!(text.contains("SUMMARY:Appointment with Dr. Grey\\; room 4\\, floor 2\r\n"));
    assert!(
        text.contains("DTSTART;TZID=Europe/London:20270327T090000\r\n"),
        "{text}"
    );
    // The winter observance in force at the first event, then the change.
    let zone = &text[text.find("BEGIN:VTIMEZONE").unwrap()..text.find("END:VTIMEZONE").unwrap()];
    assert!(
        zone.contains(
            "BEGIN:STANDARD\r\nDTSTART:20261025T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nTZNAME:GMT\r\nEND:STANDARD"
        ),
        "{zone}"
    );
    assert!(
        zone.contains(
            "BEGIN:DAYLIGHT\r\nDTSTART:20270328T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\nEND:DAYLIGHT"
        ),
        "{zone}"
    );
    assert!(
        !zone.contains("20271031"),
        "only the span's transitions: {zone}"
    );
}

#[test]
fn a_zone_without_transitions_has_one_observance() {
    let cal = Calendar {
        events: vec![event("UTC", "2027-03-28T08:00:00Z", 30)],
        ..Default::default()
    };
    let text = cal.render();
    assert!(text.contains("TZID:UTC\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\n"), "{text}");
    assert!(text.contains("DTSTART;TZID=UTC:20270328T080000"));
}

#[test]
fn an_unknown_zone_falls_back_to_utc_times() {
    let cal = Calendar {
        events: vec![event("Mars/Olympus", "2027-03-28T08:00:00Z", 30)],
        ..Default::default()
    };
    let text = cal.render();
    assert!(!text.contains("VTIMEZONE"));
    assert!(text.contains("DTSTART:20270328T080000Z\r\n"), "{text}");
}

#[test]
fn long_lines_fold_at_75_octets_on_character_boundaries() {
    let mut e = event("UTC", "2027-03-28T08:00:00Z", 30);
    e.summary = "Zoë ".repeat(40);
    let text = Calendar {
        events: vec![e],
        ..Default::default()
    }
    .render();
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
    }
    assert!(unfold(&text).contains(&format!("SUMMARY:{}", "Zoë ".repeat(40))));
}

#[test]
fn hostile_text_cannot_open_a_property_or_component() {
    let mut e = event("UTC", "2027-03-28T08:00:00Z", 30);
    e.summary = "x\r\nEND:VEVENT\r\nBEGIN:VEVENT".into();
    e.organizer = Some(Person {
        name: "Dr. \"Evil\": MD".into(),
        email: "a@b.c\r\nATTACH:x".into(),
    });
    let text = Calendar {
        method: Some(Method::Request),
        events: vec![e],
        ..Default::default()
    }
    .render();
    let begins = text.split("\r\n").filter(|l| *l == "BEGIN:VEVENT").count();
    assert_eq!(begins, 1, "{text}");
    assert!(
        text.contains("SUMMARY:x\\nEND:VEVENT\\nBEGIN:VEVENT\r\n"),
        "{text}"
    );
    assert!(
        text.contains("ORGANIZER;CN=\"Dr. Evil: MD\":mailto:a@b.cATTACHx\r\n"),
        "{text}"
    );
    assert!(text.contains("METHOD:REQUEST\r\n"));
}

#[test]
fn offsets_with_seconds_keep_them() {
    assert_eq!(
        utc_offset(Offset::from_seconds(-(4 * 3600 + 30 * 60)).unwrap()),
        "-0430"
    );
    assert_eq!(utc_offset(Offset::from_seconds(-75).unwrap()), "-000115");
}

#[test]
fn a_large_calendar_keeps_its_events_in_order() {
    let events: Vec<Event> = (0..PARALLEL_FROM + 7)
        .map(|i| Event {
            uid: format!("apt_{i:05}@medrelay"),
            ..event("Europe/London", "2027-03-27T09:00:00Z", 30)
        })
        .collect();
    let text = Calendar {
        events,
        ..Default::default()
    }
    .render();
    let uids: Vec<&str> = text
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("UID:"))
        .collect();
    assert_eq!(uids.len(), PARALLEL_FROM + 7);
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "written in order");
    assert!(text.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
}

#[test]
fn the_second_pass_of_a_repeated_hour_is_written_in_utc() {
    // Europe/London repeats 01:00-02:00 on 2027-10-31: 00:30Z and 01:30Z
    // are both 01:30 on the wall.
    let first = event("Europe/London", "2027-10-31T00:30:00Z", 30);
    let second = event("Europe/London", "2027-10-31T01:30:00Z", 30);
    let text = Calendar {
        events: vec![first, second],
        ..Default::default()
    }
    .render();
    assert!(
        text.contains("DTSTART;TZID=Europe/London:20271031T013000\r\n"),
        "{text}"
    );
    assert!(text.contains("DTSTART:20271031T013000Z\r\n"), "{text}");
}
