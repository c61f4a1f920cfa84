//! `/api/analytics/appointments`: a seeded clinic with known answers across
//! the clinic zone's DST change, as JSON and CSV; the figures after a
//! recount, a restart and a change of clinic zone; who may read them; and
//! bad queries.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use medrelay::admin::rebuild_stats;
use serde_json::{Value, json};

use crate::analytics_support::{
    self as support, CLINIC, clinic, doctor, only_admins_read, recount_and_restart, set,
};
use crate::helpers::*;

/// Books and returns the appointment id and when the booking was made.
async fn book(
    app: &TestApp,
    admin: &str,
    patient: &str,
    at: (&str, jiff::civil::Date, &str),
) -> (String, Timestamp) {
    let before = Timestamp::now();
    (support::book(app, admin, patient, at).await, before)
}

async fn report(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.get(&format!("/api/analytics/appointments?{query}"), Some(token))
        .await
}

fn row<'a>(report: &'a Value, period: &str, provider: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["period"] == period && r["providerId"] == provider)
        .unwrap_or_else(|| panic!("no row {period} {provider} in {report}"))
}

/// The figures of a row, without its period and doctor.
fn figures(row: &Value) -> Value {
    let mut f = row.clone();
    let f_map = f.as_object_mut().unwrap();
    f_map.remove("period");
    f_map.remove("providerId");
    f
}

fn expect(
    booked: u64,
    completed: u64,
    cancelled: u64,
    no_shows: u64,
    minutes: u64,
    available: u64,
    moves: u64,
) -> Value {
    let rate = |part: u64, whole: u64| {
        if whole == 0 {
            Value::Null
        } else {
            json!(((part * 20_000 + whole) / (2 * whole)) as f64 / 10_000.0)
        }
    };
    json!({"booked": booked, "completed": completed, "cancelled": cancelled,
           "lateCancellations": 0, "noShows": no_shows, "noShowRate": rate(no_shows, booked),
           "bookedMinutes": minutes, "availableMinutes": available,
           "fillRate": rate(minutes, available), "reschedules": moves, "waitlistFills": 0})
}

#[tokio::test]
async fn the_report_counts_by_clinic_day_across_a_dst_change_and_survives_recount_and_restart() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, ("prv_ber", CLINIC, &["09:00-17:00"], 30)).await;
    doctor(
        &app,
        &admin,
        ("prv_nyc", "America/New_York", &["09:00-21:00"], 60),
    )
    .await;
    let mut patients = Vec::new();
    for name in [
        "ana", "ben", "cyd", "dee", "eve", "fay", "gus", "hal", "ivy", "joe",
    ] {
        patients.push(app.signup_patient(name).await.patient_id);
    }
    // D: the clinic's next spring-forward Sunday (02:00 → 03:00).
    let berlin = TimeZone::get(CLINIC).unwrap();
    let change = berlin
        .following(Timestamp::now())
        .map(|t| t.timestamp())
        .find(|t| berlin.to_offset(*t) > berlin.to_offset(*t - SignedDuration::from_hours(1)))
        .unwrap();
    let d = change.to_zoned(berlin.clone()).date();
    let (before, after) = (d.yesterday().unwrap(), d.tomorrow().unwrap());

    let b = |i: usize| patients[i].as_str();
    let (c1, _) = book(&app, &admin, b(0), ("prv_ber", before, "10:00")).await;
    let (n2, _) = book(&app, &admin, b(1), ("prv_ber", before, "11:00")).await;
    let (x3, _) = book(&app, &admin, b(2), ("prv_ber", before, "12:00")).await;
    book(&app, &admin, b(3), ("prv_ber", d, "10:00")).await;
    let (c5, _) = book(&app, &admin, b(4), ("prv_ber", d, "10:30")).await;
    let (m6, _) = book(&app, &admin, b(5), ("prv_ber", after, "09:00")).await;
    // New York is 5 h behind Berlin on Saturday evening, 6 h from Sunday:
    // 20:00 Saturday there is 01:00 Sunday here, 18:00 Sunday is 00:00 Monday.
    let (_, booked7) = book(&app, &admin, b(6), ("prv_nyc", before, "20:00")).await;
    let (n8, _) = book(&app, &admin, b(7), ("prv_nyc", before, "10:00")).await;
    let (c9, _) = book(&app, &admin, b(8), ("prv_nyc", d, "18:00")).await;
    let (x10, _) = book(&app, &admin, b(9), ("prv_nyc", d, "12:00")).await;
    for id in [&c1, &c5, &c9] {
        set(&app, &admin, id, json!({"status": "CheckedIn"})).await;
        set(&app, &admin, id, json!({"status": "Completed"})).await;
    }
    for id in [&n2, &n8] {
        set(&app, &admin, id, json!({"status": "NoShow"})).await;
    }
    for id in [&x3, &x10] {
        set(&app, &admin, id, json!({"status": "Cancelled"})).await;
    }
    set(
        &app,
        &admin,
        &m6,
        json!({"appointmentDate": after.to_string(), "timeSlot": "14:00"}),
    )
    .await;

    let range = format!("from={before}&to={after}");
    let (status, days) = report(&app, &admin, &format!("{range}&groupBy=day")).await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days["timeZone"], CLINIC);
    let cases = [
        (before, "prv_ber", expect(3, 1, 1, 1, 60, 480, 0)),
        (d, "prv_ber", expect(2, 1, 0, 0, 60, 480, 0)),
        (after, "prv_ber", expect(1, 0, 0, 0, 30, 480, 1)),
        (before, "prv_nyc", expect(1, 0, 0, 1, 60, 720, 0)),
        (d, "prv_nyc", expect(2, 0, 1, 0, 60, 720, 0)),
        (after, "prv_nyc", expect(1, 1, 0, 0, 60, 720, 0)),
    ];
    for (day, provider, mut want) in cases {
        let got = figures(row(&days, &day.to_string(), provider));
        want["medianLeadHours"] = got["medianLeadHours"].clone();
        assert_eq!(got, want, "{day} {provider}");
    }
    assert_eq!(days["rows"].as_array().unwrap().len(), 6, "{days}");
    // The lower middle of the ten leads is the 5th by start: 00:00 UTC on D.
    let start7 = d.to_zoned(TimeZone::UTC).unwrap().timestamp();
    let lead = start7.duration_since(booked7).as_hours();
    let median = days["totals"]["medianLeadHours"].as_i64().unwrap();
    assert!(
        median == lead || median == lead - 1,
        "median {median}, lead {lead}"
    );
    let mut totals = days["totals"].clone();
    totals["medianLeadHours"] = Value::Null;
    let mut want = expect(10, 3, 2, 2, 330, 3_600, 1);
    want["medianLeadHours"] = Value::Null;
    assert_eq!(totals, want);

    // Weeks start on Monday: D - 1 and D fall in one, D + 1 opens the next.
    let (_, weeks) = report(
        &app,
        &admin,
        &format!("{range}&groupBy=week&providerId=prv_ber"),
    )
    .await;
    let monday = d.checked_sub(6.days()).unwrap().to_string();
    assert_eq!(figures(row(&weeks, &monday, "prv_ber"))["booked"], 5);
    assert_eq!(
        figures(row(&weeks, &after.to_string(), "prv_ber"))["booked"],
        1
    );
    assert_eq!(weeks["rows"].as_array().unwrap().len(), 2, "{weeks}");
    let (_, months) = report(&app, &admin, &format!("{range}&groupBy=month")).await;
    let month = format!("{:04}-{:02}", d.year(), d.month());
    assert_eq!(figures(row(&months, &month, "prv_nyc"))["booked"], 4);
    assert_eq!(months["totals"], days["totals"]);

    // The same table as CSV.
    let csv = app
        .http
        .get(app.url(&format!("/api/analytics/appointments?{range}")))
        .bearer_auth(&admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "period,providerId,booked,completed,cancelled,lateCancellations,noShows,noShowRate,\
         bookedMinutes,availableMinutes,fillRate,medianLeadHours,reschedules,waitlistFills"
    );
    let first = days["rows"][0].clone();
    assert_eq!(
        lines[1],
        format!(
            "{before},prv_ber,3,1,1,0,1,0.3333,60,480,0.125,{},0,0",
            first["medianLeadHours"]
        )
    );
    assert!(
        lines[7].starts_with(&format!(
            "total,,10,3,2,0,2,0.2,330,3600,0.0917,{median},1,0"
        )),
        "{text}"
    );
    assert_eq!(
        lines.len(),
        9,
        "six rows, the total and the final line break"
    );

    // A recount offline finds nothing to change; a restart keeps the figures.
    let (app, admin, rows) = recount_and_restart(app, clinic).await;
    assert!(rows >= 6);
    assert_eq!(
        report(&app, &admin, &format!("{range}&groupBy=day"))
            .await
            .1,
        days
    );

    // Another clinic zone: recounted at start, by New York's days now.
    let app = app
        .restart(|s| {
            clinic(s);
            s.analytics.time_zone = "America/New_York".into();
        })
        .await;
    let admin = app.admin_token().await;
    let (_, york) = report(
        &app,
        &admin,
        &format!("{range}&groupBy=day&providerId=prv_nyc"),
    )
    .await;
    assert_eq!(
        figures(row(&york, &before.to_string(), "prv_nyc"))["booked"],
        2,
        "{york}"
    );
    assert_eq!(
        figures(row(&york, &d.to_string(), "prv_nyc"))["booked"],
        2,
        "{york}"
    );
}

#[tokio::test]
async fn a_cancellation_within_24_hours_is_late() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, ("prv_ber", CLINIC, &["09:00-17:00"], 30)).await;
    let ana = app.signup_patient("ana").await.patient_id;
    // The first slot at least an hour ahead: within the next 24 hours.
    let berlin = TimeZone::get(CLINIC).unwrap();
    let mut at = (Timestamp::now() + SignedDuration::from_hours(1)).to_zoned(berlin.clone());
    loop {
        let t = at.time();
        if t.minute() % 30 == 0
            && t >= jiff::civil::time(9, 0, 0, 0)
            && t < jiff::civil::time(17, 0, 0, 0)
        {
            break;
        }
        at = at
            .checked_add(1.minute())
            .unwrap()
            .round(jiff::Unit::Minute)
            .unwrap();
    }
    let date = at.date();
    let (id, _) = book(
        &app,
        &admin,
        &ana,
        ("prv_ber", date, &at.strftime("%H:%M").to_string()),
    )
    .await;
    set(&app, &admin, &id, json!({"status": "Cancelled"})).await;
    let (status, body) = report(&app, &admin, &format!("from={date}&to={date}")).await;
    assert_eq!(status, 200, "{body}");
    let f = figures(row(&body, &date.to_string(), "prv_ber"));
    assert_eq!(
        (
            f["booked"].clone(),
            f["cancelled"].clone(),
            f["lateCancellations"].clone(),
            f["noShowRate"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(1.0)),
        "{f}"
    );
}

#[tokio::test]
async fn only_admins_read_reports_and_bad_queries_name_their_field() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    only_admins_read(
        &app,
        &admin,
        "/api/analytics/appointments?from=2026-01-01&to=2026-01-31",
    )
    .await;
    for (query, field) in [
        ("from=2026-02-01&to=2026-01-31", "from"),
        ("to=2026-01-31", "from"),
        ("from=2026-01-01", "to"),
        ("from=2026-13-01&to=2026-12-31", "from"),
        ("from=2020-01-01&to=2026-01-31", "to"),
        ("from=2026-01-01&to=2026-01-31&groupBy=year", "groupBy"),
        (
            "from=2026-01-01&to=2026-01-31&providerId=no%20such",
            "providerId",
        ),
    ] {
        let (status, body) = report(&app, &admin, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, body) = report(
        &app,
        &admin,
        "from=2026-01-01&to=2026-01-31&providerId=prv_nobody",
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn the_records_report_counts_what_each_author_wrote_and_a_recount_agrees() {
    let c = crate::care::care_clinic(|_| {}).await;
    let app = &c.app;
    let body =
        json!({"patientId": c.alice.patient_id, "date": "2026-11-20", "diagnosis": "Hypertension"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, reply) = app.post("/api/records", body.clone(), Some(&c.dr)).await;
        assert_eq!(status, 201, "{reply}");
        ids.push(reply["recordId"].as_str().unwrap().to_owned());
    }
    // The admin changes one; the doctor deletes the other.
    let (status, _) = app
        .put(
            &format!("/api/records/{}", ids[0]),
            json!({"treatment": "Rest"}),
            &c.admin,
        )
        .await;
    assert_eq!(status, 200);
    let deleted = app
        .http
        .delete(app.url(&format!("/api/records/{}", ids[1])))
        .bearer_auth(&c.dr)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let (_, dr_me) = app.get("/api/auth/me", Some(&c.dr)).await;
    let (_, admin_me) = app.get("/api/auth/me", Some(&c.admin)).await;
    let (dr, admin) = (
        dr_me["userId"].as_str().unwrap(),
        admin_me["userId"].as_str().unwrap(),
    );

    // Today by the clinic's clock, with a day each side for a run across midnight.
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let range = format!(
        "from={}&to={}",
        today.yesterday().unwrap(),
        today.tomorrow().unwrap()
    );
    let (status, report) = app
        .get(&format!("/api/analytics/records?{range}"), Some(&c.admin))
        .await;
    assert_eq!(status, 200, "{report}");
    let sum = |author: &str, figure: &str| -> u64 {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["authorId"] == author)
            .map(|r| r[figure].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (sum(dr, "created"), sum(dr, "updated"), sum(dr, "deleted")),
        (2, 0, 1),
        "{report}"
    );
    assert_eq!(
        (
            sum(admin, "created"),
            sum(admin, "updated"),
            sum(admin, "deleted")
        ),
        (0, 1, 0),
        "{report}"
    );
    assert_eq!(
        report["totals"],
        json!({"created": 2, "updated": 1, "deleted": 1})
    );
    let doctor_row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["authorId"] == dr)
        .unwrap();
    assert_eq!(
        doctor_row["providerId"], "prv_care",
        "a doctor's rows name their schedule"
    );

    let csv = app
        .http
        .get(app.url(&format!("/api/analytics/records?{range}&groupBy=month")))
        .bearer_auth(&c.admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "period,authorId,providerId,created,updated,deleted"
    );
    assert!(lines.contains(&"total,,,2,1,1"), "{csv}");

    let (status, _) = app
        .get(&format!("/api/analytics/records?{range}"), Some(&c.dr))
        .await;
    assert_eq!(status, 403, "admins only");
    let (status, body) = app
        .get(
            "/api/analytics/records?from=2026-01-01&to=2026-01-01&groupBy=hour",
            Some(&c.admin),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("groupBy"))
    );

    // An offline recount of records (and appointments) finds nothing to change.
    let mut c = c;
    c.app.stop().await;
    let (rows, changed) = rebuild_stats(&test_settings(&c.app.data_dir))
        .await
        .unwrap();
    assert_eq!(changed, 0, "the live figures equal a recount");
    assert!(
        rows >= 3,
        "records of two authors and the care clinic's appointment: {rows}"
    );
}
