//! `/api/analytics/providers/{providerId}`: one doctor's report. A seeded
//! clinic with known answers across the clinic zone's DST change, as JSON
//! and CSV, after a recount and a restart; who may read it and bad
//! queries; and a doctor whose hours are in another zone than the clinic's.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::analytics_support::{CLINIC, book, clinic, csv, doctor, rate, recount_and_restart, set};
use crate::helpers::*;

const NEW_YORK: &str = "America/New_York";

async fn report(app: &TestApp, token: Option<&str>, provider: &str, query: &str) -> (u16, Value) {
    app.get(
        &format!("/api/analytics/providers/{provider}?{query}"),
        token,
    )
    .await
}

/// The figures of a row, without its period.
fn figures(row: &Value) -> Value {
    let mut f = row.clone();
    f.as_object_mut().unwrap().remove("period");
    f
}

/// `part ÷ whole` rounded half away from zero to 4 places; null for 0.
/// A row's figures (or the totals), all but `medianLeadHours`; nothing is
/// cancelled late (every start is days ahead) and nothing comes from a
/// waitlist.
fn expect(
    (seen, visits): (u64, u64),
    (booked, completed, cancelled, no_shows): (u64, u64, u64, u64),
    (minutes, available, moves): (u64, u64, u64),
) -> Value {
    json!({"patientsSeen": seen, "visits": visits,
           "booked": booked, "completed": completed, "cancelled": cancelled,
           "lateCancellations": 0, "noShows": no_shows, "noShowRate": rate(no_shows, booked),
           "bookedMinutes": minutes, "availableMinutes": available,
           "fillRate": rate(minutes, available), "reschedules": moves, "waitlistFills": 0})
}

/// `got` against `want`, the median lead taken from `got` (it depends on
/// when the test runs) but required to be there.
fn assert_figures(got: &Value, mut want: Value, what: &str) {
    assert!(got["medianLeadHours"].is_u64(), "{what}: {got}");
    want["medianLeadHours"] = got["medianLeadHours"].clone();
    assert_eq!(got, &want, "{what}");
}

fn hour_use(weekday: &str, hour: u8, booked: u64, available: u64) -> Value {
    json!({"weekday": weekday, "hour": hour, "bookedMinutes": booked,
           "availableMinutes": available, "utilisation": rate(booked, available)})
}

#[tokio::test]
async fn a_doctors_report_counts_patients_once_and_fills_clinic_hours_and_survives_recount() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, ("prv_ber", CLINIC, &["09:00-12:00"], 30)).await;
    // New York's 03:00-06:00 is Berlin's 09:00-12:00 once both keep summer
    // time: had its figures leaked in, prv_ber's would be off.
    doctor(&app, &admin, ("prv_nyc", NEW_YORK, &["03:00-06:00"], 30)).await;
    let mut patients = Vec::new();
    for name in ["ana", "ben", "cyd", "dee", "eve", "fay"] {
        patients.push(app.signup_patient(name).await.patient_id);
    }
    let [ana, ben, cyd, dee, eve, fay] = [0, 1, 2, 3, 4, 5].map(|i| patients[i].as_str());
    // D: the clinic's next spring-forward Sunday (02:00 → 03:00); D - 1 is
    // a Saturday, D + 1 a Monday.
    let berlin = TimeZone::get(CLINIC).unwrap();
    let change = berlin
        .following(Timestamp::now())
        .map(|t| t.timestamp())
        .find(|t| berlin.to_offset(*t) > berlin.to_offset(*t - SignedDuration::from_hours(1)))
        .unwrap();
    let d = change.to_zoned(berlin.clone()).date();
    let (sat, mon) = (d.yesterday().unwrap(), d.tomorrow().unwrap());
    assert_eq!(
        (sat.weekday(), d.weekday(), mon.weekday()),
        (Weekday::Saturday, Weekday::Sunday, Weekday::Monday)
    );

    let t0 = Timestamp::now();
    // Saturday: ana and ben (twice) seen, cyd a no-show, dee cancelled.
    let a1 = book(&app, &admin, ana, ("prv_ber", sat, "09:00")).await;
    let a2 = book(&app, &admin, ben, ("prv_ber", sat, "09:30")).await;
    let a3 = book(&app, &admin, cyd, ("prv_ber", sat, "10:00")).await;
    let a4 = book(&app, &admin, dee, ("prv_ber", sat, "11:00")).await;
    let a5 = book(&app, &admin, ben, ("prv_ber", sat, "11:30")).await;
    // Sunday: ana seen again; ben moved from 10:00 to 11:30.
    let a6 = book(&app, &admin, ana, ("prv_ber", d, "09:30")).await;
    let a7 = book(&app, &admin, ben, ("prv_ber", d, "10:00")).await;
    // Monday: eve seen, cyd still booked, ana only checked in.
    let a8 = book(&app, &admin, eve, ("prv_ber", mon, "09:00")).await;
    book(&app, &admin, cyd, ("prv_ber", mon, "10:30")).await;
    let a10 = book(&app, &admin, ana, ("prv_ber", mon, "11:00")).await;
    // The other doctor: fay seen at 04:00 New York, Berlin's Monday morning.
    let n1 = book(&app, &admin, fay, ("prv_nyc", mon, "04:00")).await;
    let t1 = Timestamp::now();
    for id in [&a1, &a2, &a5, &a6, &a8, &n1] {
        set(&app, &admin, id, json!({"status": "CheckedIn"})).await;
        set(&app, &admin, id, json!({"status": "Completed"})).await;
    }
    set(&app, &admin, &a10, json!({"status": "CheckedIn"})).await;
    set(&app, &admin, &a3, json!({"status": "NoShow"})).await;
    set(&app, &admin, &a4, json!({"status": "Cancelled"})).await;
    set(
        &app,
        &admin,
        &a7,
        json!({"appointmentDate": d.to_string(), "timeSlot": "11:30"}),
    )
    .await;

    let range = format!("from={sat}&to={mon}");
    let (status, days) = report(&app, Some(&admin), "prv_ber", &range).await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(
        (
            &days["providerId"],
            &days["from"],
            &days["to"],
            &days["groupBy"],
            &days["timeZone"]
        ),
        (
            &json!("prv_ber"),
            &json!(sat.to_string()),
            &json!(mon.to_string()),
            &json!("day"),
            &json!(CLINIC)
        )
    );
    let rows = days["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{days}");
    // Every day offers 6 slots of 30 minutes: 180 available minutes.
    let cases = [
        // ana + ben (twice): 2 seen, 3 visits; 5 booked, 1 cancelled, 1
        // no-show; 4 × 30 minutes not cancelled (the no-show's included).
        (sat, expect((2, 3), (5, 3, 1, 1), (120, 180, 0))),
        // ana: 1 seen; ben's move counts here; 2 × 30 minutes.
        (d, expect((1, 1), (2, 1, 0, 0), (60, 180, 1))),
        // eve seen; ana checked in is not seen; fay (prv_nyc) is not here.
        (mon, expect((1, 1), (3, 1, 0, 0), (90, 180, 0))),
    ];
    for (row, (day, want)) in rows.iter().zip(cases) {
        assert_eq!(row["period"], day.to_string(), "{days}");
        assert_figures(&figures(row), want, &day.to_string());
    }
    // ana (two days) counts once: ana, ben, eve.
    let totals = &days["totals"];
    assert_figures(
        totals,
        expect((3, 5), (10, 5, 1, 1), (270, 540, 1)),
        "totals",
    );
    assert_eq!(
        (&totals["noShowRate"], &totals["fillRate"]),
        (&json!(0.1), &json!(0.5))
    );
    // The median lead is one of the leads: from a start to its booking.
    let at = |day: Date, h: i8| {
        day.at(h, 0, 0, 0)
            .to_zoned(berlin.clone())
            .unwrap()
            .timestamp()
    };
    let median = totals["medianLeadHours"].as_i64().unwrap();
    let (lo, hi) = (
        at(sat, 9).duration_since(t1).as_hours() - 1,
        at(mon, 12).duration_since(t0).as_hours() + 1,
    );
    assert!(
        (lo..=hi).contains(&median),
        "median {median} not in {lo}..={hi}"
    );

    // Each weekday once, 60 available minutes in each of hours 9, 10, 11;
    // 09:30-10:00 is hour 9; cancelled minutes and prv_nyc's do not count.
    let utilisation = json!([
        hour_use("Monday", 9, 30, 60),    // eve 09:00
        hour_use("Monday", 10, 30, 60),   // cyd 10:30 (not fay's 10:00)
        hour_use("Monday", 11, 30, 60),   // ana 11:00, checked in
        hour_use("Saturday", 9, 60, 60),  // ana 09:00 + ben 09:30
        hour_use("Saturday", 10, 30, 60), // cyd 10:00, no-show
        hour_use("Saturday", 11, 30, 60), // ben 11:30 (dee cancelled)
        hour_use("Sunday", 9, 30, 60),    // ana 09:30
        hour_use("Sunday", 10, 0, 60),    // ben moved away
        hour_use("Sunday", 11, 30, 60),   // ben 11:30
    ]);
    assert_eq!(days["utilisation"], utilisation);
    assert_eq!(days["utilisation"][3]["utilisation"], json!(1.0));
    assert_eq!(days["utilisation"][7]["utilisation"], json!(0.0));

    // By month: one bucket (two when D + 1 opens April), the same totals.
    let month = |day: Date| format!("{:04}-{:02}", day.year(), day.month());
    let (status, months) = report(
        &app,
        Some(&admin),
        "prv_ber",
        &format!("{range}&groupBy=month"),
    )
    .await;
    assert_eq!(status, 200, "{months}");
    assert_eq!(months["groupBy"], "month");
    assert_eq!(months["totals"], days["totals"]);
    assert_eq!(months["utilisation"], utilisation);
    let month_rows = months["rows"].as_array().unwrap();
    if month(sat) == month(mon) {
        assert_eq!(month_rows.len(), 1, "{months}");
        assert_eq!(month_rows[0]["period"], month(d));
        assert_eq!(figures(&month_rows[0]), days["totals"]);
    } else {
        assert_eq!(month_rows.len(), 2, "{months}");
        assert_eq!(
            (&month_rows[0]["period"], &month_rows[1]["period"]),
            (&json!(month(d)), &json!(month(mon)))
        );
        assert_eq!(
            (&month_rows[0]["booked"], &month_rows[1]["booked"]),
            (&json!(7), &json!(3))
        );
    }

    // The same tables as CSV.
    let text = csv(
        &app,
        &admin,
        &format!("/api/analytics/providers/prv_ber?{range}"),
    )
    .await;
    let lines: Vec<&str> = text.split("\r\n").collect();
    let lead = |i: usize| rows[i]["medianLeadHours"].to_string();
    assert_eq!(
        lines[0],
        "period,patientsSeen,visits,booked,completed,cancelled,lateCancellations,noShows,\
         noShowRate,bookedMinutes,availableMinutes,fillRate,medianLeadHours,reschedules,waitlistFills"
    );
    assert_eq!(
        lines[1],
        format!("{sat},2,3,5,3,1,0,1,0.2,120,180,0.6667,{},0,0", lead(0))
    );
    assert_eq!(
        lines[2],
        format!("{d},1,1,2,1,0,0,0,0,60,180,0.3333,{},1,0", lead(1))
    );
    assert_eq!(
        lines[4],
        format!("total,3,5,10,5,1,0,1,0.1,270,540,0.5,{median},1,0")
    );
    assert_eq!(lines[5], "", "{text}");
    assert_eq!(
        lines[6],
        "weekday,hour,bookedMinutes,availableMinutes,utilisation"
    );
    assert_eq!(lines[7], "Monday,9,30,60,0.5");
    assert_eq!(lines[10], "Saturday,9,60,60,1");
    assert_eq!(lines[14], "Sunday,10,0,60,0");
    assert_eq!(
        lines.len(),
        17,
        "header, 3 rows, total, blank, header, 9 hours, final break: {text}"
    );

    // A recount offline finds nothing to change; a restart keeps the report.
    let (app, admin, kept) = recount_and_restart(app, clinic).await;
    // a/ rows: prv_ber's 3 days, prv_nyc's Monday; p/ rows: ana and ben on
    // Saturday, ana on Sunday, eve and fay on Monday.
    assert!(kept >= 9, "{kept}");
    assert_eq!(
        report(&app, Some(&admin), "prv_ber", &range).await,
        (200, days)
    );
}

#[tokio::test]
async fn admins_and_the_doctor_read_a_doctors_report_and_bad_queries_name_their_field() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    let dr = doctor_account_in(&app, &admin, ("drber", "prv_ber", CLINIC)).await;
    doctor(&app, &admin, ("prv_nyc", NEW_YORK, &["09:00-17:00"], 60)).await;
    let patient = app.signup_patient("ana").await.tokens.token;
    let q = "from=2027-01-04&to=2027-01-10";

    let (status, own) = report(&app, Some(&admin), "prv_ber", q).await;
    assert_eq!(
        (status, &own["providerId"]),
        (200, &json!("prv_ber")),
        "{own}"
    );
    // Open all day: 7 days × 1,440 minutes.
    assert_eq!(own["totals"]["availableMinutes"], 10_080, "{own}");
    let (status, body) = report(&app, Some(&admin), "prv_nyc", q).await;
    assert_eq!(
        (status, &body["providerId"]),
        (200, &json!("prv_nyc")),
        "{body}"
    );
    assert_eq!(report(&app, Some(&dr), "prv_ber", q).await, (200, own));
    for (token, provider) in [(&dr, "prv_nyc"), (&dr, "prv_nobody"), (&patient, "prv_ber")] {
        let (status, body) = report(&app, Some(token.as_str()), provider, q).await;
        assert_eq!(status, 403, "{provider}: {body}");
    }
    let (status, _) = report(&app, None, "prv_ber", q).await;
    assert_eq!(status, 401);
    let (status, body) = report(&app, Some(&admin), "prv_nobody", q).await;
    assert_eq!(status, 404, "{body}");

    for (provider, query, field) in [
        ("bad%20id%21", q, "providerId"),
        ("prv_ber", "from=2027-02-01&to=2027-01-31", "from"),
        ("prv_ber", "to=2027-01-31", "from"),
        ("prv_ber", "from=2027-01-01", "to"),
        ("prv_ber", "from=2027-13-01&to=2027-12-31", "from"),
        (
            "prv_ber",
            "from=2027-01-01&to=2027-01-31&groupBy=year",
            "groupBy",
        ),
        // At most 731 days.
        ("prv_ber", "from=2020-01-01&to=2026-01-31", "to"),
    ] {
        let (status, body) = report(&app, Some(&admin), provider, query).await;
        assert_eq!(status, 422, "{provider}?{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{provider}?{query}: {body}");
    }
    // The doctor's own report checks its query the same way.
    let (status, body) = report(
        &app,
        Some(&dr),
        "prv_ber",
        "from=2027-01-01&to=2027-01-31&groupBy=year",
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("groupBy")),
        "{body}"
    );
}

#[tokio::test]
async fn a_doctors_hours_in_another_zone_land_in_the_clinics_hours_and_weekdays() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    // 09:00-10:00 and 20:00-21:00 New York: Berlin's 15:00-16:00 that day and
    // 02:00-03:00 the next, while New York is 6 hours behind.
    doctor(
        &app,
        &admin,
        ("prv_nyc", NEW_YORK, &["09:00-10:00", "20:00-21:00"], 30),
    )
    .await;
    let ana = app.signup_patient("ana").await.patient_id;
    let (ny, berlin) = (
        TimeZone::get(NEW_YORK).unwrap(),
        TimeZone::get(CLINIC).unwrap(),
    );
    let in_berlin = |day: Date, h: i8| {
        day.at(h, 0, 0, 0)
            .to_zoned(ny.clone())
            .unwrap()
            .with_time_zone(berlin.clone())
    };
    // A Monday at least a week ahead whose Sunday, Monday and Tuesday are 6
    // hours apart (not in the weeks when only one side has changed to or
    // from summer time).
    let mut mon = Timestamp::now()
        .to_zoned(berlin.clone())
        .date()
        .checked_add(7.days())
        .unwrap();
    while !(mon.weekday() == Weekday::Monday
        && [mon.yesterday().unwrap(), mon, mon.tomorrow().unwrap()]
            .into_iter()
            .all(|day| {
                let (morning, evening) = (in_berlin(day, 9), in_berlin(day, 20));
                (morning.date(), morning.hour()) == (day, 15)
                    && (evening.date(), evening.hour()) == (day.tomorrow().unwrap(), 2)
            }))
    {
        mon = mon.tomorrow().unwrap();
    }
    let tue = mon.tomorrow().unwrap();
    // 09:00 New York is Monday 15:00 in Berlin; 20:00 is Tuesday 02:00 there.
    book(&app, &admin, &ana, ("prv_nyc", mon, "09:00")).await;
    book(&app, &admin, &ana, ("prv_nyc", mon, "20:00")).await;

    let (status, body) = report(
        &app,
        Some(&admin),
        "prv_nyc",
        &format!("from={mon}&to={tue}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    // Each doctor's day offers 4 slots of 30 minutes; each clinic day has
    // one booking of 30 minutes (the evening one on Tuesday, Berlin's day).
    for (row, day) in rows.iter().zip([mon, tue]) {
        assert_eq!(row["period"], day.to_string(), "{body}");
        assert_figures(
            &figures(row),
            expect((0, 0), (1, 0, 0, 0), (30, 120, 0)),
            &day.to_string(),
        );
    }
    assert_figures(
        &body["totals"],
        expect((0, 0), (2, 0, 0, 0), (60, 240, 0)),
        "totals",
    );
    // The doctor's slots that start on the clinic's Monday and Tuesday, in
    // the clinic's hours: Sunday evening's fall on Monday 02:00 in Berlin,
    // Monday evening's on Tuesday 02:00; Tuesday evening's on Wednesday,
    // outside the range.
    assert_eq!(
        body["utilisation"],
        json!([
            hour_use("Monday", 2, 0, 60),
            hour_use("Monday", 15, 30, 60),
            hour_use("Tuesday", 2, 30, 60),
            hour_use("Tuesday", 15, 0, 60),
        ]),
        "{body}"
    );
}
