//! A month of a clinic with known answers in every report: two doctors, 40
//! appointments across the clinic zone's spring-forward change (visits,
//! no-shows, early and late cancellations, moves), bills, payments, a
//! refund, an approved and a denied claim. Each report's figures, worked
//! out by hand from the table below, as JSON and CSV; the same after a
//! recount and a restart.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::analytics_support::{CLINIC, book, clinic, csv, doctor, rate, recount_and_restart, set};
use crate::helpers::*;

/// 09:00-13:00 every day, 30-minute slots: 240 minutes a day.
const A: &str = "prv_a";
/// 14:00-18:00 every day, 60-minute slots: 240 minutes a day.
const B: &str = "prv_b";
const PATIENTS: [&str; 12] = [
    "ana", "ben", "cyd", "dee", "eve", "fay", "gus", "hal", "ivy", "joe", "kim", "lou",
];

/// What became of an appointment of the table.
#[derive(Clone, Copy)]
enum Outcome {
    Completed,
    NoShow,
    /// Cancelled now, days ahead: not late.
    Cancelled,
    Scheduled,
    /// Moved to (day from D, start), and still booked there.
    MovedTo(i32, &'static str),
}
use self::Outcome::{Cancelled, Completed, MovedTo, NoShow, Scheduled};

/// The month: (doctor, day from D, start in Berlin, patient, outcome). D is
/// the spring-forward Sunday; D - 14 to D is always March, D + 7 to D + 15
/// always April (D is March 25-31), D + 1 either.
const TABLE: [(&str, i32, &str, &str, Outcome); 38] = [
    (A, -14, "09:00", "ana", Completed),          // 1
    (A, -14, "09:30", "ben", Completed),          // 2
    (B, -14, "14:00", "cyd", Completed),          // 3
    (A, -13, "10:00", "dee", NoShow),             // 4
    (B, -13, "15:00", "ana", Completed),          // 5
    (A, -10, "11:00", "eve", Cancelled),          // 6
    (B, -10, "16:00", "fay", Completed),          // 7
    (A, -8, "09:00", "gus", Completed),           // 8
    (B, -8, "14:00", "hal", NoShow),              // 9
    (A, -7, "12:30", "ana", Completed),           // 10
    (B, -7, "17:00", "ben", Cancelled),           // 11
    (A, -5, "09:30", "ivy", Completed),           // 12
    (B, -5, "15:00", "joe", Completed),           // 13
    (A, -3, "10:30", "kim", Scheduled),           // 14
    (B, -3, "14:00", "lou", Completed),           // 15
    (A, -1, "09:00", "ben", Completed),           // 16
    (A, -1, "10:00", "cyd", MovedTo(8, "09:00")), // 17: March to April
    (B, -1, "16:00", "dee", NoShow),              // 18
    (A, 0, "09:00", "eve", Completed),            // 19
    (A, 0, "12:30", "fay", Cancelled),            // 20
    (B, 0, "15:00", "gus", MovedTo(0, "17:00")),  // 21: on the DST day
    (B, 0, "14:00", "ana", Completed),            // 22
    (A, 1, "09:00", "hal", Completed),            // 23
    (B, 1, "14:00", "ivy", NoShow),               // 24
    (A, 1, "11:30", "joe", Scheduled),            // 25
    (A, 7, "10:00", "kim", Completed),            // 26
    (B, 7, "16:00", "lou", Cancelled),            // 27
    (A, 8, "12:00", "ana", NoShow),               // 28
    (B, 8, "17:00", "ben", Completed),            // 29
    (A, 10, "11:00", "cyd", MovedTo(1, "12:00")), // 30
    (B, 10, "15:00", "eve", Scheduled),           // 31
    (A, 12, "09:30", "fay", Completed),           // 32
    (B, 12, "14:00", "gus", Cancelled),           // 33
    (A, 14, "10:30", "hal", Scheduled),           // 34
    (B, 14, "16:00", "ivy", Completed),           // 35
    (A, 15, "12:30", "joe", Cancelled),           // 36
    (B, 15, "17:00", "ana", Scheduled),           // 37
    (A, 15, "09:00", "dee", Completed),           // 38
];

/// One doctor's appointment figures in a bucket: [booked, completed,
/// cancelled, late cancellations, no-shows, booked minutes, moves].
#[derive(Clone, Copy, Default)]
struct Fig([u64; 7]);

// By hand from TABLE. A cancelled visit takes no minutes (a no-show does);
// a moved one counts, with its move, on the day it is on now.
// A, D - 14 to D: #1 2 4 6 8 10 12 14 16 19 20 = 11 (#17 left for D + 8);
// completed #1 2 8 10 12 16 19 = 7; cancelled #6 20; no-show #4;
// 9 not cancelled × 30 = 270.
const A_TO_D: Fig = Fig([11, 7, 2, 0, 1, 270, 0]);
// A, D + 1: #23 completed, #25 booked, #30 moved in: 3 × 30 = 90, 1 move.
const A_D1: Fig = Fig([3, 1, 0, 0, 0, 90, 1]);
// A, D + 7 to D + 15: #17 (moved in) 26 28 32 34 36 38 = 7; completed #26
// 32 38; cancelled #36; no-show #28; 6 × 30 = 180; 1 move.
const A_LATER: Fig = Fig([7, 3, 1, 0, 1, 180, 1]);
// B, D - 14 to D: #3 5 7 9 11 13 15 18 21 22 = 10; completed #3 5 7 13 15
// 22 = 6; cancelled #11; no-shows #9 18; 9 × 60 = 540; #21's move.
const B_TO_D: Fig = Fig([10, 6, 1, 0, 2, 540, 1]);
// B, D + 1: #24, a no-show: 60.
const B_D1: Fig = Fig([1, 0, 0, 0, 1, 60, 0]);
// B, D + 7 to D + 15: #27 29 31 33 35 37 = 6; completed #29 35; cancelled
// #27 33; 4 × 60 = 240.
const B_LATER: Fig = Fig([6, 2, 2, 0, 0, 240, 0]);
// The late pair (A, today or tomorrow): one cancelled late, one booked.
const LATE_PAIR: Fig = Fig([2, 0, 1, 1, 0, 30, 0]);

impl Fig {
    fn plus(self, o: Fig) -> Fig {
        Fig(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }

    /// As a report writes them, with `available` minutes and no median.
    fn json(self, available: u64) -> Value {
        let [booked, completed, cancelled, late, no_shows, minutes, moves] = self.0;
        json!({"booked": booked, "completed": completed, "cancelled": cancelled,
               "lateCancellations": late, "noShows": no_shows,
               "noShowRate": rate(no_shows + late, booked), "bookedMinutes": minutes,
               "availableMinutes": available, "fillRate": rate(minutes, available),
               "medianLeadHours": null, "reschedules": moves, "waitlistFills": 0})
    }
}

/// `part ÷ whole` rounded half up to 4 places; null for 0.
fn month(day: Date) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// `figures` as the row of `period` and `provider`.
fn row(period: &str, provider: &str, mut figures: Value) -> Value {
    figures["period"] = json!(period);
    figures["providerId"] = json!(provider);
    figures
}

/// `report` with every median lead nulled (they depend on when the test
/// runs), after checking that each row with bookings has one.
fn without_leads(report: &Value) -> Value {
    let mut r = report.clone();
    for row in r["rows"].as_array_mut().unwrap() {
        if row["booked"] != 0 {
            assert!(row["medianLeadHours"].is_u64(), "{row}");
        }
        row["medianLeadHours"] = Value::Null;
    }
    r["totals"]["medianLeadHours"] = Value::Null;
    r
}

/// Asserts that `report`'s median lead is the whole hours to `start` from
/// a booking made between `t0` and `t1`; the median.
fn within(report: &Value, start: Timestamp, (t0, t1): (Timestamp, Timestamp), what: &str) -> i64 {
    let median = &report["totals"]["medianLeadHours"];
    let lo = start.duration_since(t1).as_hours();
    let hi = start.duration_since(t0).as_hours();
    let got = median
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: {median}"));
    assert!(
        (lo..=hi).contains(&got),
        "{what}: median {got} not in {lo}..={hi}"
    );
    got
}

/// Asserts a 2xx answer; its body.
fn ok((status, body): (u16, Value), what: &str) -> Value {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
    body
}

/// A GET that must answer 200; its body.
async fn get_json(app: &TestApp, admin: &str, path: &str) -> Value {
    let (status, body) = app.get(path, Some(admin)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Cents written as the API takes money: `12.50`.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Service lines costing `lines` (cents).
fn services(lines: &[i64]) -> Value {
    let line = |(i, c): (usize, &i64)| json!({"serviceId": format!("s{i}"), "description": "Visit", "amount": money(*c)});
    lines.iter().enumerate().map(line).collect()
}

/// One doctor's use of one weekday's clinic hour in `report`.
fn hour_use(report: &Value, weekday: &str, hour: u8) -> Value {
    let hours = report["utilisation"].as_array().unwrap();
    let mut found = hours.iter().filter(|h| h["hour"] == hour);
    found
        .find(|h| h["weekday"] == weekday)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_month_of_a_clinic_has_known_answers_in_every_report() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    doctor(&app, &admin, (A, CLINIC, &["09:00-13:00"], 30)).await;
    doctor(&app, &admin, (B, CLINIC, &["14:00-18:00"], 60)).await;
    let mut ids: HashMap<&str, String> = HashMap::new();
    for name in PATIENTS {
        ids.insert(name, app.signup_patient(name).await.patient_id);
    }

    // D: the clinic's next spring-forward Sunday (02:00 → 03:00); the one
    // after when D - 14 is not after tomorrow (the month must lie ahead,
    // its cancellations early).
    let berlin = TimeZone::get(CLINIC).unwrap();
    let spring_after = |t: Timestamp| -> Date {
        let change = berlin
            .following(t)
            .map(|c| c.timestamp())
            .find(|c| berlin.to_offset(*c) > berlin.to_offset(*c - SignedDuration::from_hours(1)))
            .unwrap();
        change.to_zoned(berlin.clone()).date()
    };
    let now = Timestamp::now();
    let today = now.to_zoned(berlin.clone()).date();
    let d = {
        let first = spring_after(now);
        if first - 14.days() <= today.tomorrow().unwrap() {
            let after = first.to_zoned(berlin.clone()).unwrap().timestamp();
            spring_after(after + SignedDuration::from_hours(48))
        } else {
            first
        }
    };
    let day = |off: i32| d + off.days();
    let at = |off: i32, h: i8, m: i8| {
        let local = day(off).at(h, m, 0, 0);
        local.to_zoned(berlin.clone()).unwrap().timestamp()
    };
    assert_eq!(
        (d.weekday(), day(-14).month(), d.month(), day(7).month()),
        (Weekday::Sunday, 3, 3, 4),
        "the table's months"
    );

    let t0 = Timestamp::now();
    for (doctor, off, time, who, outcome) in TABLE {
        let id = book(&app, &admin, &ids[who], (doctor, day(off), time)).await;
        let change = match outcome {
            Completed => {
                set(&app, &admin, &id, json!({"status": "CheckedIn"})).await;
                json!({"status": "Completed"})
            }
            NoShow => json!({"status": "NoShow"}),
            Cancelled => json!({"status": "Cancelled"}),
            Scheduled => continue,
            MovedTo(to, start) => {
                json!({"appointmentDate": day(to).to_string(), "timeSlot": start})
            }
        };
        set(&app, &admin, &id, change).await;
    }
    let t1 = Timestamp::now();

    // The late pair: A's first slot starting 2 to 24 hours from now (there
    // always is one: its slot starts are at most 20.5 hours apart) and its
    // neighbour that day; the first is cancelled now, less than 24 h ahead.
    let start = |on: Date, k: i8| {
        let local = on.at(9 + k / 2, 30 * (k % 2), 0, 0);
        local.to_zoned(berlin.clone()).unwrap().timestamp()
    };
    let hhmm = |k: i8| format!("{:02}:{:02}", 9 + k / 2, 30 * (k % 2));
    let now = Timestamp::now();
    let ahead = now + SignedDuration::from_hours(2)..now + SignedDuration::from_hours(24);
    let (late_day, k) = [today, today.tomorrow().unwrap()]
        .into_iter()
        .flat_map(|on| (0..8).map(move |k| (on, k)))
        .find(|&(on, k)| ahead.contains(&start(on, k)))
        .expect("a slot 2 to 24 hours ahead");
    let neighbour = if k < 7 { k + 1 } else { k - 1 };
    let late = book(&app, &admin, &ids["kim"], (A, late_day, &hhmm(k))).await;
    book(&app, &admin, &ids["lou"], (A, late_day, &hhmm(neighbour))).await;
    set(&app, &admin, &late, json!({"status": "Cancelled"})).await;

    // The days around the change land on their own clinic days; the 23-hour
    // DST day offers each doctor its 240 minutes too.
    let path = format!("/api/analytics/appointments?from={}&to={}", day(-1), day(1));
    let days = get_json(&app, &admin, &path).await;
    let around = [
        (-1, A, Fig([1, 1, 0, 0, 0, 30, 0])), // #16 (#17 moved away)
        (-1, B, Fig([1, 0, 0, 0, 1, 60, 0])), // #18
        (0, A, Fig([2, 1, 1, 0, 0, 30, 0])),  // #19, #20 cancelled
        (0, B, Fig([2, 1, 0, 0, 0, 120, 1])), // #21 moved to 17:00, #22
        (1, A, A_D1),
        (1, B, B_D1),
    ]
    .map(|(off, doctor, f)| row(&day(off).to_string(), doctor, f.json(240)));
    assert_eq!(without_leads(&days)["rows"], json!(around), "{days}");

    // The whole run, by month, from today (the late pair) to D + 15. The
    // one figure counted at run time is availability: 240 minutes a doctor
    // for every day from today to D + 15 (both doctors open daily).
    let end = day(15);
    let range = format!("from={today}&to={end}");
    let mut days_in: BTreeMap<String, u64> = BTreeMap::new();
    for on in today.series(1.day()).take_while(|on| *on <= end) {
        *days_in.entry(month(on)).or_default() += 1;
    }
    let available = 480 * days_in.values().sum::<u64>();
    let mut want: BTreeMap<String, [Fig; 2]> = days_in
        .keys()
        .map(|m| (m.clone(), [Fig::default(); 2]))
        .collect();
    for (on, doctor, f) in [
        (day(0), 0, A_TO_D),
        (day(0), 1, B_TO_D),
        (day(1), 0, A_D1),
        (day(1), 1, B_D1),
        (day(7), 0, A_LATER),
        (day(7), 1, B_LATER),
        (late_day, 0, LATE_PAIR),
    ] {
        let cell = &mut want.get_mut(&month(on)).unwrap()[doctor];
        *cell = cell.plus(f);
    }
    let mut rows = Vec::new();
    for (m, figs) in &want {
        for (doctor, f) in [A, B].into_iter().zip(figs) {
            rows.push(row(m, doctor, f.json(240 * days_in[m])));
        }
    }
    let path = format!("/api/analytics/appointments?{range}&groupBy=month");
    let months = get_json(&app, &admin, &path).await;
    // The lower middle of the 40 leads is the 20th by start: the late pair,
    // 17 of the table up to D - 1 (#17 moved away), then #19 at D 09:00.
    let median = within(&months, at(0, 9, 0), (t0, t1), "all: #19");
    // 40 booked, 19 completed (7 + 1 + 3 + 6 + 2), 7 cancelled (2 + 1 + 1
    // + 2 + 1), 1 late, 5 no-shows (1 + 1 + 2 + 1): (5 + 1) ÷ 40 = 0.15;
    // 270 + 90 + 180 + 540 + 60 + 240 + 30 = 1,410 minutes; 3 moves.
    let totals = json!({"booked": 40, "completed": 19, "cancelled": 7, "lateCancellations": 1,
        "noShows": 5, "noShowRate": 0.15, "bookedMinutes": 1_410, "availableMinutes": available,
        "fillRate": rate(1_410, available), "medianLeadHours": null, "reschedules": 3,
        "waitlistFills": 0});
    assert_eq!(
        without_leads(&months),
        json!({"from": today.to_string(), "to": end.to_string(), "groupBy": "month",
               "timeZone": CLINIC, "rows": rows, "totals": totals})
    );
    let text = csv(&app, &admin, &path).await;
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 2 * days_in.len() + 3, "{text}");
    let fill = rate(1_410, available).as_f64().unwrap();
    assert_eq!(
        lines[lines.len() - 2],
        format!("total,,40,19,7,1,5,0.15,1410,{available},{fill},{median},3,0"),
        "{text}"
    );
    assert_eq!(lines[lines.len() - 1], "");

    // Each doctor's month (D - 14 to D + 15: 30 days, 7,200 minutes each;
    // 5 Sundays and 5 Mondays, 4 of each other weekday).
    let window = format!("from={}&to={end}&groupBy=month", day(-14));
    let provider = |id: &str| format!("/api/analytics/providers/{id}?{window}");
    let a_report = get_json(&app, &admin, &provider(A)).await;
    let b_report = get_json(&app, &admin, &provider(B)).await;
    // A's 11th of 21 by start is #20 (D 12:30); B's 9th of 17 is #22 (D 14:00).
    within(&a_report, at(0, 12, 30), (t0, t1), "A: #20");
    within(&b_report, at(0, 14, 0), (t0, t1), "B: #22");
    // A saw ana (#1 10), ben (#2 16), gus, ivy, eve, hal, kim, fay, dee:
    // 9 patients, 11 visits; 2 ÷ 21 = 0.0952; 540 ÷ 7,200 = 0.075.
    let a_totals = json!({"patientsSeen": 9, "visits": 11, "booked": 21, "completed": 11,
        "cancelled": 3, "lateCancellations": 0, "noShows": 2, "noShowRate": 0.0952,
        "bookedMinutes": 540, "availableMinutes": 7_200, "fillRate": 0.075,
        "medianLeadHours": null, "reschedules": 2, "waitlistFills": 0});
    // B saw cyd, ana (#5 22), fay, joe, lou, ben, ivy: 7 patients, 8 visits;
    // 3 ÷ 17 = 0.1765; 840 ÷ 7,200 = 0.1167.
    let b_totals = json!({"patientsSeen": 7, "visits": 8, "booked": 17, "completed": 8,
        "cancelled": 3, "lateCancellations": 0, "noShows": 3, "noShowRate": 0.1765,
        "bookedMinutes": 840, "availableMinutes": 7_200, "fillRate": 0.1167,
        "medianLeadHours": null, "reschedules": 1, "waitlistFills": 0});
    // Some hours (weekday, hour, booked, available, use). A: Sundays 9-10
    // #1 #2 #19 (#20 at 12:30 cancelled); Mondays 12-13 #30 (moved in) and
    // #28 (a no-show), not #36 (cancelled); Saturdays 10-11 nothing (#17
    // moved away). B: Sundays 15-16 nothing (#21 moved to 17:00); Sundays
    // 17-18 #21 (#11 cancelled); Mondays 17-18 #29 #37.
    let a_hours = [
        ("Sunday", 9, 90, 300, 0.3),
        ("Monday", 12, 60, 300, 0.2),
        ("Saturday", 10, 0, 240, 0.0),
    ];
    let b_hours = [
        ("Sunday", 15, 0, 300, 0.0),
        ("Sunday", 17, 60, 300, 0.2),
        ("Monday", 17, 120, 300, 0.4),
    ];
    for (report, doctor, totals, hours) in [
        (&a_report, A, a_totals, a_hours),
        (&b_report, B, b_totals, b_hours),
    ] {
        let got = without_leads(report);
        assert_eq!(
            (&got["providerId"], &got["totals"]),
            (&json!(doctor), &totals)
        );
        let rows = got["rows"].as_array().unwrap();
        let periods: Vec<&Value> = rows.iter().map(|r| &r["period"]).collect();
        assert_eq!(periods, [&json!(month(d)), &json!(month(end))], "{doctor}");
        // 7 weekdays × 4 hours.
        assert_eq!(got["utilisation"].as_array().unwrap().len(), 28, "{doctor}");
        for (weekday, hour, booked, open, use_) in hours {
            assert_eq!(
                hour_use(&got, weekday, hour),
                json!({"weekday": weekday, "hour": hour, "bookedMinutes": booked,
                       "availableMinutes": open, "utilisation": use_}),
                "{doctor}"
            );
        }
    }

    // No medical record was written.
    let path = format!("/api/analytics/records?{range}&groupBy=month");
    assert_eq!(
        get_json(&app, &admin, &path).await,
        json!({"from": today.to_string(), "to": end.to_string(), "groupBy": "month",
               "timeZone": CLINIC, "rows": [], "totals": {"created": 0, "updated": 0, "deleted": 0}})
    );

    // Three bills, written today, for patients seen this month (cents):
    // ana's 150.00 claimed in full, approved in full and paid by the
    // insurer; ben's 80.00 claimed and denied; ivy's 60.00 paid at the desk,
    // 20.00 of it refunded.
    let claim = |c: i64| json!({"insuranceClaim": {"insuranceProvider": "HealthInsure", "claimAmount": money(c)}});
    for (bill, who, lines, extra) in [
        ("b_insured", "ana", &[12_000, 3_000][..], claim(15_000)),
        ("b_denied", "ben", &[8_000][..], claim(8_000)),
        ("b_cash", "ivy", &[4_500, 1_500][..], json!({})),
    ] {
        let mut body = json!({"billId": bill, "patientId": ids[who].as_str(),
                              "services": services(lines)});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        ok(app.post("/api/bills", body, Some(&admin)).await, bill);
    }
    for bill in ["b_insured", "b_denied"] {
        let path = format!("/api/bills/{bill}/claim/submit");
        ok(app.post(&path, json!({}), Some(&admin)).await, bill);
    }
    for (bill, decision) in [
        ("b_insured", json!({"status": "approved"})),
        ("b_insured", json!({"status": "paid"})),
        ("b_denied", json!({"status": "in_review"})),
        (
            "b_denied",
            json!({"status": "denied", "reason": "Not covered by the plan"}),
        ),
    ] {
        let written = get_json(&app, &admin, &format!("/api/bills/{bill}")).await;
        let claim = written["claimId"].as_str().unwrap();
        ok(
            app.put(&format!("/api/claims/{claim}"), decision, &admin)
                .await,
            bill,
        );
    }
    let path = format!("/api/patients/{}/payments", ids["ivy"]);
    let body = json!({"amount": "60.00", "method": "cash", "billIds": ["b_cash"]});
    let paid = ok(app.post(&path, body, Some(&admin)).await, "pay");
    let path = format!(
        "/api/payments/{}/refunds",
        paid["paymentId"].as_str().unwrap()
    );
    let body = json!({"amount": "20.00", "reason": "overpaid"});
    let back = ok(app.post(&path, body, Some(&admin)).await, "refund");
    assert_eq!(back["status"], "partially_refunded", "{back}");

    // Charges 150 + 80 + 60 = 290.00 on 3 bills; from patients 60.00 in one
    // payment (the refund does not undo it); from insurers 150.00; refunds
    // 20.00: net (60 + 150 - 20) ÷ 290 = 0.65517… → 0.6552. Two claims
    // answered: one approved in full (clean), one denied.
    let money_day = json!({"charges": 290.0, "bills": 3, "collectedFromPatients": 60.0,
        "payments": 1, "collectedFromInsurers": 150.0, "refunds": 20.0,
        "netCollectionRate": 0.6552, "claimsAnswered": 2, "claimsDenied": 1,
        "claimsClean": 1, "denialRate": 0.5, "cleanClaimRate": 0.5});
    let nothing = json!({"charges": 0.0, "bills": 0, "collectedFromPatients": 0.0,
        "payments": 0, "collectedFromInsurers": 0.0, "refunds": 0.0,
        "netCollectionRate": null, "claimsAnswered": 0, "claimsDenied": 0,
        "claimsClean": 0, "denialRate": null, "cleanClaimRate": null});
    let billing_rows: Vec<Value> = days_in
        .keys()
        .map(|m| {
            let mut r = if *m == month(today) {
                money_day.clone()
            } else {
                nothing.clone()
            };
            r["period"] = json!(m);
            r
        })
        .collect();
    // Owed now: b_insured nothing (paid); b_denied 80.00, all the patient's
    // (a denied claim expects nothing); b_cash 20.00 again after the refund.
    // Patients 100.00, insurers 0.00, all written today (0-30 days). Days in
    // A/R: 100 ÷ (290 charged ÷ 1 day billed) = 0.34… → 0.3.
    let mut aging =
        vec![json!({"days": "0-30", "patients": 100.0, "insurers": 0.0, "total": 100.0})];
    for days in ["31-60", "61-90", "91-120", "over-120"] {
        aging.push(json!({"days": days, "patients": 0.0, "insurers": 0.0, "total": 0.0}));
    }
    let path = format!("/api/analytics/billing?{range}&groupBy=month");
    let billing = get_json(&app, &admin, &path).await;
    assert_eq!(
        billing,
        json!({"from": today.to_string(), "to": end.to_string(), "groupBy": "month",
               "timeZone": CLINIC, "rows": billing_rows, "totals": money_day,
               "receivable": {"asOf": today.to_string(), "aging": aging, "patients": 100.0,
                              "insurers": 0.0, "total": 100.0, "daysInAr": 0.3}})
    );
    let text = csv(&app, &admin, &path).await;
    let lines: Vec<&str> = text.split("\r\n").collect();
    let bucket_total = "total,290.00,3,60.00,1,150.00,20.00,0.6552,2,1,1,0.5,0.5";
    assert!(lines.contains(&bucket_total), "{text}");
    let aging_total = format!("total,100.00,0.00,100.00,{today},0.3");
    assert!(lines.contains(&aging_total.as_str()), "{text}");

    // A recount offline finds nothing to change; a restart keeps the reports.
    let (app, admin, _) = recount_and_restart(app, clinic).await;
    let path = format!("/api/analytics/appointments?{range}&groupBy=month");
    assert_eq!(get_json(&app, &admin, &path).await, months);
    let path = format!("/api/analytics/billing?{range}&groupBy=month");
    assert_eq!(get_json(&app, &admin, &path).await, billing);
}
