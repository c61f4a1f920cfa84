//! `/api/analytics/billing`: a seeded day with known answers (charges,
//! collections, refunds, claim answers, what patients and insurers still
//! owe) as JSON and CSV, the same after a recount and a restart; random
//! billing work whose live figures equal a recount and the sums kept beside
//! it; who may read the report, and bad queries.

use crate::analytics_support::{only_admins_read, recount_and_restart};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::helpers::*;

const CLINIC: &str = "Europe/Berlin";

fn clinic(s: &mut medrelay::config::Settings) {
    s.analytics.time_zone = CLINIC.into();
}

/// Today by the clinic's clock.
fn clinic_today() -> Date {
    let zone = TimeZone::get(CLINIC).unwrap();
    Timestamp::now().to_zoned(zone).date()
}

/// The query of the day before `day` to the day after.
fn around(day: Date) -> String {
    let (from, to) = (day.yesterday().unwrap(), day.tomorrow().unwrap());
    format!("from={from}&to={to}")
}

async fn report(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.get(&format!("/api/analytics/billing?{query}"), Some(token))
        .await
}

/// Cents written as the API takes money: `12.50`.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Cents as a report's number (`12.50` reads back as 12.5).
fn amount(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

/// An amount the API wrote, in cents.
fn cents(v: &Value) -> i64 {
    let amount = v.as_f64().unwrap_or_else(|| panic!("not an amount: {v}"));
    (amount * 100.0).round() as i64
}

/// Asserts a 2xx answer; its body.
fn ok((status, body): (u16, Value), what: &str) -> Value {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
    body
}

/// A GET (as `admin`) that must succeed.
async fn get_ok(app: &TestApp, admin: &str, path: &str) -> Value {
    ok(app.get(path, Some(admin)).await, path)
}

/// A claim with HealthInsure for `cents`, as a bill names it.
fn claim(cents: i64) -> Value {
    json!({"insuranceProvider": "HealthInsure", "claimAmount": money(cents)})
}

/// Service lines costing `lines` (cents).
fn services(lines: &[i64]) -> Value {
    let line = |(i, c): (usize, &i64)| {
        json!({"serviceId": format!("s{i}"), "description": "Visit",
               "amount": money(*c)})
    };
    lines.iter().enumerate().map(line).collect()
}

/// Writes bill `id` of `patient` with `extra` fields (`insuranceClaim`, `status`).
async fn new_bill(
    app: &TestApp,
    admin: &str,
    (id, patient): (&str, &str),
    lines: &[i64],
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({"billId": id, "patientId": patient, "services": services(lines)});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post("/api/bills", body, Some(admin)).await
}

/// The id of the claim bill `id` names, if any.
async fn claim_of(app: &TestApp, admin: &str, id: &str) -> Option<String> {
    let bill = get_ok(app, admin, &format!("/api/bills/{id}")).await;
    bill["claimId"].as_str().map(str::to_owned)
}

async fn void(app: &TestApp, admin: &str, id: &str) -> (u16, Value) {
    let url = app.url(&format!("/api/bills/{id}"));
    let request = app.http.delete(url).bearer_auth(admin);
    read(request.send().await.unwrap()).await
}

async fn submit(app: &TestApp, admin: &str, bill: &str) -> (u16, Value) {
    let path = format!("/api/bills/{bill}/claim/submit");
    app.post(&path, json!({}), Some(admin)).await
}

async fn decide(app: &TestApp, admin: &str, claim: &str, decision: Value) -> (u16, Value) {
    let path = format!("/api/claims/{claim}");
    app.put(&path, decision, admin).await
}

/// Cash at the desk, paying `bills` (none named: the oldest open ones).
async fn pay(app: &TestApp, admin: &str, (who, c): (&str, i64), bills: &[&str]) -> (u16, Value) {
    let mut body = json!({"amount": money(c), "method": "cash"});
    if !bills.is_empty() {
        body["billIds"] = json!(bills);
    }
    let path = format!("/api/patients/{who}/payments");
    app.post(&path, body, Some(admin)).await
}

async fn refund(app: &TestApp, admin: &str, payment: &str, cents: i64) -> (u16, Value) {
    let path = format!("/api/payments/{payment}/refunds");
    let body = json!({"amount": money(cents), "reason": "overpaid"});
    app.post(&path, body, Some(admin)).await
}

/// `part ÷ whole` rounded half away from zero to `places` places, as the
/// report writes a rate; null without a whole.
fn rate(part: i64, whole: i64, places: u32) -> Value {
    if whole <= 0 {
        return Value::Null;
    }
    let scale = 10_i64.pow(places);
    let units = (2 * part * scale + part.signum() * whole) / (2 * whole);
    json!(units as f64 / scale as f64)
}

/// A bucket's figures from its amounts (charges, collected from patients,
/// from insurers, refunds; cents) and counts (bills, payments, claims
/// answered, denied, clean), with the rates they make.
fn figures([charges, patients, insurers, refunds]: [i64; 4], counts: [i64; 5]) -> Value {
    let [bills, payments, answered, denied, clean] = counts;
    json!({"charges": amount(charges), "bills": bills,
           "collectedFromPatients": amount(patients), "payments": payments,
           "collectedFromInsurers": amount(insurers), "refunds": amount(refunds),
           "netCollectionRate": rate(patients + insurers - refunds, charges, 4),
           "claimsAnswered": answered, "claimsDenied": denied, "claimsClean": clean,
           "denialRate": rate(denied, answered, 4), "cleanClaimRate": rate(clean, answered, 4)})
}

/// `figures` as the row of `period`.
fn row(period: impl ToString, figures: &Value) -> Value {
    let mut row = figures.clone();
    row["period"] = json!(period.to_string());
    row
}

/// What is owed as of `as_of` (cents), all of it written in the last 30 days.
fn receivable(as_of: &str, patients: i64, insurers: i64, days_in_ar: Value) -> Value {
    let total = patients + insurers;
    let mut aging = vec![json!({"days": "0-30", "patients": amount(patients),
                                "insurers": amount(insurers), "total": amount(total)})];
    for days in ["31-60", "61-90", "91-120", "over-120"] {
        aging.push(json!({"days": days, "patients": 0.0, "insurers": 0.0, "total": 0.0}));
    }
    json!({"asOf": as_of, "aging": aging, "patients": amount(patients),
           "insurers": amount(insurers), "total": amount(total), "daysInAr": days_in_ar})
}

#[tokio::test]
async fn a_seeded_day_has_known_figures_as_json_and_csv_that_survive_a_recount_and_a_restart() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    let alice = app.signup_patient("alice").await.patient_id;
    let bob = app.signup_patient("bob").await.patient_id;
    let today = clinic_today();
    let (yesterday, tomorrow) = (today.yesterday().unwrap(), today.tomorrow().unwrap());

    // Alice's bills (cents), five with a claim; Bob's, one a draft.
    let with_claim = |cents| json!({"insuranceClaim": claim(cents)});
    for (id, patient, lines, extra) in [
        ("b_denied", &alice, &[15_000, 5_000][..], with_claim(15_000)),
        ("b_clean", &alice, &[30_000][..], with_claim(25_000)),
        ("b_partial", &alice, &[10_000][..], with_claim(8_000)),
        ("b_paid", &alice, &[8_000][..], with_claim(8_000)),
        ("b_submitted", &alice, &[7_000][..], with_claim(7_000)),
        ("b_void", &alice, &[4_000][..], json!({})),
        ("b_bob", &bob, &[9_000][..], json!({})),
        ("b_draft", &bob, &[50_000][..], json!({"status": "Draft"})),
    ] {
        let answer = new_bill(&app, &admin, (id, patient), lines, extra).await;
        ok(answer, id);
    }
    ok(void(&app, &admin, "b_void").await, "void");
    for bill in ["b_denied", "b_clean", "b_partial", "b_paid", "b_submitted"] {
        ok(submit(&app, &admin, bill).await, bill);
    }
    let step = |status: &str| json!({"status": status});
    let denial = json!({"status": "denied", "reason": "Lab panel not covered"});
    let part = json!({"status": "partially_approved", "approvedAmount": "50.00"});
    for (bill, decision) in [
        // b_denied: denied at the first answer; corrected to 120.00 below,
        // resubmitted, approved and paid.
        ("b_denied", step("in_review")),
        ("b_denied", denial),
        ("b_denied", json!(null)),
        ("b_denied", step("approved")),
        ("b_denied", step("paid")),
        // b_clean: approved in full (250.00), not yet paid by the insurer.
        ("b_clean", step("approved")),
        // b_partial: 50.00 of the 80.00 claimed.
        ("b_partial", part),
        // b_paid: approved in full and paid (80.00): the bill is paid.
        ("b_paid", step("approved")),
        ("b_paid", step("paid")),
    ] {
        if decision.is_null() {
            let corrected = json!({"insuranceClaim": claim(12_000)});
            let answer = app.put("/api/bills/b_denied", corrected, &admin).await;
            ok(answer, "fix");
            ok(submit(&app, &admin, bill).await, "resubmit");
            continue;
        }
        let claim = claim_of(&app, &admin, bill).await.unwrap();
        ok(decide(&app, &admin, &claim, decision).await, bill);
    }
    // Bob pays 120.00 on his 90.00 bill (30.00 credit); 40.00 goes back:
    // 30.00 of credit and 10.00 of the bill, open again.
    let p1 = ok(pay(&app, &admin, (&bob, 12_000), &["b_bob"]).await, "p1");
    let back = refund(&app, &admin, p1["paymentId"].as_str().unwrap(), 4_000).await;
    assert_eq!(ok(back, "refund")["status"], "partially_refunded");
    for (bill, cents) in [("b_clean", 5_000), ("b_denied", 3_000)] {
        ok(pay(&app, &admin, (&alice, cents), &[bill]).await, bill);
    }

    // Charges: 200 + 300 + 100 + 80 + 70 + 90 = 840.00 on 6 bills (the void
    // 40.00 and the draft 500.00 charge nothing).
    // From patients: 120 + 50 + 30 = 200.00 in 3 payments (the refund does
    // not undo Bob's); from insurers: 120 + 80 = 200.00; refunds 40.00.
    // Net collection: (200 + 200 - 40) / 840 = 0.428571... -> 0.4286.
    // Answered: b_denied, b_clean, b_partial, b_paid = 4 (b_submitted is
    // not); denied at first: b_denied = 1 (0.25); clean: b_clean, b_paid =
    // 2 (0.5).
    let day = json!({"charges": 840.0, "bills": 6, "collectedFromPatients": 200.0,
        "payments": 3, "collectedFromInsurers": 200.0, "refunds": 40.0,
        "netCollectionRate": 0.4286, "claimsAnswered": 4, "claimsDenied": 1,
        "claimsClean": 2, "denialRate": 0.25, "cleanClaimRate": 0.5});
    // Owed now, by open bill (balance: insurers' part, patients' part):
    // b_denied 200 - 120 - 30 = 50 (claim paid: 0, 50); b_clean 300 - 50 =
    // 250 (approved 250: 250, 0); b_partial 100 (approved 50: 50, 50);
    // b_submitted 70 (claimed 70: 70, 0); b_bob 90 - 80 = 10 (0, 10).
    // Patients 110.00, insurers 370.00, 480.00 in all, all written today.
    // Days in A/R: the clinic has billed for one day (today), so
    // 480 owed ÷ (840 charged ÷ 1 day) = 0.571... -> 0.6.
    let owed = receivable(&today.to_string(), 11_000, 37_000, json!(0.6));
    let nothing = figures([0; 4], [0; 5]);

    let range = around(today);
    let body = ok(report(&app, &admin, &range).await, "report");
    let want = json!({"from": yesterday.to_string(), "to": tomorrow.to_string(), "groupBy": "day",
        "timeZone": CLINIC, "totals": day, "receivable": owed,
        "rows": [row(yesterday, &nothing), row(today, &day), row(tomorrow, &nothing)]});
    assert_eq!(body, want);
    // Money exactly, with two decimals.
    let text = get_text(&app, &format!("/api/analytics/billing?{range}"), &admin).await;
    let exact = r#""charges":840.00,"bills":6,"collectedFromPatients":200.00"#;
    assert!(text.contains(exact), "{text}");

    // The same as CSV: the buckets and their total, a blank line, the ages.
    let url = app.url(&format!("/api/analytics/billing?{range}"));
    let request = app.http.get(url).bearer_auth(&admin);
    let csv = request.header("accept", "text/csv").send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let day = "840.00,6,200.00,3,200.00,40.00,0.4286,4,1,2,0.25,0.5";
    let empty = |d: Date| format!("{d},0.00,0,0.00,0,0.00,0.00,,0,0,0,,");
    let mut want: Vec<String> = vec![
        "period,charges,bills,collectedFromPatients,payments,collectedFromInsurers,refunds,\
         netCollectionRate,claimsAnswered,claimsDenied,claimsClean,denialRate,cleanClaimRate"
            .into(),
        empty(yesterday),
        format!("{today},{day}"),
        empty(tomorrow),
        format!("total,{day}"),
        String::new(),
        "ageDays,patients,insurers,total,asOf,daysInAr".into(),
        "0-30,110.00,370.00,480.00,,".into(),
    ];
    for days in ["31-60", "61-90", "91-120", "over-120"] {
        want.push(format!("{days},0.00,0.00,0.00,,"));
    }
    want.push(format!("total,110.00,370.00,480.00,{today},0.6"));
    want.push(String::new());
    assert_eq!(lines, want, "{text}");

    // A recount offline finds nothing to change; a restart keeps the report.
    let (app, admin, _) = recount_and_restart(app, clinic).await;
    assert_eq!(report(&app, &admin, &range).await, (200, body));
}

/// The seed of the random run: a failure replays with it.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const ANSWERS: [&str; 3] = ["approved", "partially_approved", "denied"];

/// xorshift64*: the same seed makes the same run.
struct Rng(u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }

    /// From `lo` to `hi`, both included (`lo` when `hi` is below it).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(usize::try_from(hi - lo + 1).unwrap_or(0)) as i64
    }

    /// One or two service lines of 10.00 to 400.00.
    fn lines(&mut self) -> Vec<i64> {
        let n = 1 + self.below(2);
        (0..n).map(|_| self.between(1_000, 40_000)).collect()
    }
}

/// A bill as the random run left it.
struct Tracked {
    id: String,
    patient: usize,
    total: i64,
    /// Whether it charges: issued (or part-paid, or paid), not a draft, not void.
    charges: bool,
    claim: Option<String>,
}

#[tokio::test]
async fn random_billing_work_keeps_the_live_figures_equal_to_a_recount_and_to_sums_kept_beside() {
    let app = spawn_app_with(clinic).await;
    let admin = app.admin_token().await;
    let mut patients = Vec::new();
    for name in ["ana", "ben", "cyd"] {
        patients.push(app.signup_patient(name).await.patient_id);
    }
    let range = around(clinic_today());
    let mut rng = Rng(SEED);
    let mut bills: Vec<Tracked> = Vec::new();
    // Succeeded payments: id and what is left to refund (cents).
    let mut payments: Vec<(String, i64)> = Vec::new();
    let (mut collected, mut refunded) = (0_i64, 0_i64);
    for step in 0..150 {
        let roll = if step < 8 { 0 } else { rng.below(100) };
        let (what, (status, reply)) = match roll {
            // A bill, half of them with a claim, some drafts.
            0..=19 => {
                let id = format!("r{}", bills.len());
                let patient = rng.below(patients.len());
                let lines = rng.lines();
                let total: i64 = lines.iter().sum();
                let claimed = (rng.below(2) == 0).then(|| claim(rng.between(1, total)));
                let charges = rng.below(8) > 0;
                let status = if charges { "Issued" } else { "Draft" };
                let extra = json!({"insuranceClaim": claimed, "status": status});
                let answer = new_bill(&app, &admin, (&id, &patients[patient]), &lines, extra).await;
                assert_eq!(answer.0, 201, "step {step}: a valid bill: {}", answer.1);
                let claim = claim_of(&app, &admin, &id).await;
                bills.push(Tracked {
                    id,
                    patient,
                    total,
                    charges,
                    claim,
                });
                ("create", answer)
            }
            // Cash, on a bill of theirs (open or not) or on their oldest open ones.
            20..=39 => {
                let b = &bills[rng.below(bills.len())];
                let amount = rng.between(500, 30_000);
                let named = [b.id.as_str()];
                let (who, named) = (&patients[b.patient], &named[..rng.below(2)]);
                let answer = pay(&app, &admin, (who, amount), named).await;
                if answer.0 == 201 {
                    assert_eq!(answer.1["status"], "succeeded", "{}", answer.1);
                    payments.push((answer.1["paymentId"].as_str().unwrap().into(), amount));
                    collected += amount;
                }
                ("pay", answer)
            }
            // Part or all of what is left of a payment.
            40..=49 => {
                let open: Vec<usize> = (0..payments.len()).filter(|i| payments[*i].1 > 0).collect();
                let Some(&i) = open.get(rng.below(open.len())) else {
                    continue;
                };
                let amount = rng.between(1, payments[i].1);
                let answer = refund(&app, &admin, &payments[i].0, amount).await;
                assert_eq!(answer.0, 201, "step {step}: {amount} is left: {}", answer.1);
                payments[i].1 -= amount;
                refunded += amount;
                ("refund", answer)
            }
            // A claim submitted, or the insurer's next step (now and then any step).
            50..=84 => {
                let claimed: Vec<&Tracked> = bills.iter().filter(|b| b.claim.is_some()).collect();
                let Some(&b) = claimed.get(rng.below(claimed.len())) else {
                    continue;
                };
                let id = b.claim.clone().unwrap();
                let now = get_ok(&app, &admin, &format!("/api/claims/{id}")).await;
                let state = now["status"].as_str().unwrap().to_owned();
                let stepwise = rng.below(5) > 0;
                if roll < 60 || (stepwise && matches!(state.as_str(), "draft" | "denied")) {
                    ("submit", submit(&app, &admin, &b.id).await)
                } else {
                    let next = match (stepwise, state.as_str(), rng.below(6)) {
                        (true, "submitted", 0) | (false, _, 0) => "in_review",
                        (true, "submitted" | "in_review", n) | (false, _, n @ 2..) => {
                            ANSWERS[n % 3]
                        }
                        // Approved (in part or in full), or paid (refused again).
                        _ => "paid",
                    };
                    let asked = cents(&now["claimAmount"]);
                    // Less than the claim: a partial approval, or part of it paid.
                    let some = money(rng.between(1, asked - 1));
                    let explicit = rng.below(2) == 0;
                    let decision = match next {
                        "partially_approved" => json!({"status": next, "approvedAmount": some}),
                        "denied" => json!({"status": next, "reason": "Not covered by the plan"}),
                        "paid" if explicit => json!({"status": next, "paidAmount": some}),
                        _ => json!({"status": next}),
                    };
                    ("decide", decide(&app, &admin, &id, decision).await)
                }
            }
            85..=89 => {
                let i = rng.below(bills.len());
                let answer = void(&app, &admin, &bills[i].id).await;
                if answer.0 == 200 {
                    bills[i].charges = false;
                }
                ("void", answer)
            }
            // New services; maybe a new state, or a corrected (or new) claim.
            _ => {
                let i = rng.below(bills.len());
                let lines = rng.lines();
                let total: i64 = lines.iter().sum();
                let set = [None, None, Some("Draft"), Some("Issued")][rng.below(4)];
                let claimed = (rng.below(3) == 0).then(|| claim(rng.between(1, total)));
                // Absent fields (null) stay as they are.
                let body = json!({"services": services(&lines), "status": set,
                                  "insuranceClaim": claimed.clone()});
                let path = format!("/api/bills/{}", bills[i].id);
                let answer = app.put(&path, body, &admin).await;
                if answer.0 == 200 {
                    let b = &mut bills[i];
                    b.total = total;
                    b.charges = set.map_or(b.charges, |s| s == "Issued");
                    if claimed.is_some() {
                        b.claim = claim_of(&app, &admin, &b.id).await;
                    }
                }
                ("update", answer)
            }
        };
        let at = format!("step {step} ({what}, seed {SEED:#x})");
        assert!(status < 500, "{at}: {status} {reply}");
    }

    // What the records say now, read back bill by bill and claim by claim.
    let (mut charges, mut charged, mut owed_patients, mut owed_insurers) = (0, 0, 0, 0);
    let (mut insurers_paid, mut answered, mut denied, mut clean) = (0, 0, 0, 0);
    for b in &bills {
        let bill = get_ok(&app, &admin, &format!("/api/bills/{}", b.id)).await;
        let status = bill["status"].as_str().unwrap();
        let charging = !matches!(status, "Draft" | "Void");
        let got = (charging, cents(&bill["totalAmount"]));
        assert_eq!(got, (b.charges, b.total), "kept right: {bill}");
        if b.charges {
            charges += b.total;
            charged += 1;
        }
        let claim = match bill["claimId"].as_str() {
            Some(id) => get_ok(&app, &admin, &format!("/api/claims/{id}")).await,
            None => Value::Null,
        };
        if matches!(status, "Issued" | "PartiallyPaid") {
            let due = cents(&bill["balanceDue"]);
            let insurer = match claim["status"].as_str() {
                Some("submitted" | "in_review") => cents(&claim["claimAmount"]),
                Some("approved" | "partially_approved") => cents(&claim["approvedAmount"]),
                _ => 0,
            };
            owed_insurers += due.min(insurer);
            owed_patients += due - due.min(insurer);
        }
        if claim["status"] == "paid" {
            insurers_paid += cents(&claim["paidAmount"]);
        }
        // The insurer's first answer, kept through corrections.
        let first = claim["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["status"].as_str())
            .find(|s| matches!(*s, "approved" | "partially_approved" | "denied"));
        if let Some(first) = first {
            answered += 1;
            denied += i64::from(first == "denied");
            clean += i64::from(first == "approved");
        }
    }
    assert!(
        answered > 0 && insurers_paid > 0 && refunded > 0,
        "the run (seed {SEED:#x}) answered, paid or refunded nothing; pick another seed"
    );
    let before = ok(report(&app, &admin, &range).await, "report");

    let (app, admin, _) = recount_and_restart(app, clinic).await;
    let (status, after) = report(&app, &admin, &range).await;
    assert_eq!((status, &after), (200, &before), "seed {SEED:#x}");
    assert_eq!(after["rows"].as_array().unwrap().len(), 3, "{after}");
    let amounts = [charges, collected, insurers_paid, refunded];
    let counts = [charged, payments.len() as i64, answered, denied, clean];
    assert_eq!(after["totals"], figures(amounts, counts), "seed {SEED:#x}");
    // Everything was written today: all of it is "0-30", and the average
    // day's charges are today's.
    let r = &after["receivable"];
    let days_in_ar = rate(owed_patients + owed_insurers, charges, 1);
    let as_of = r["asOf"].as_str().unwrap();
    let want = receivable(as_of, owed_patients, owed_insurers, days_in_ar);
    assert_eq!(*r, want, "seed {SEED:#x}");
}

#[tokio::test]
async fn only_admins_read_the_report_every_bucket_is_listed_and_bad_queries_name_their_field() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let january = "from=2026-01-01&to=2026-01-31";
    let path = format!("/api/analytics/billing?{january}");
    only_admins_read(&app, &admin, &path).await;

    // Nothing billed: every week of January is there (named by its Monday),
    // empty, its rates null; nothing is owed.
    let query = format!("{january}&groupBy=week");
    let weeks = ok(report(&app, &admin, &query).await, "weeks");
    let nothing = figures([0; 4], [0; 5]);
    let monday = |w: i32| row(date(2025, 12, 29) + w.weeks(), &nothing);
    assert_eq!(weeks["rows"], json!((0..5).map(monday).collect::<Vec<_>>()));
    assert_eq!(weeks["totals"], nothing);
    let as_of = weeks["receivable"]["asOf"].as_str().unwrap();
    assert_eq!(weeks["receivable"], receivable(as_of, 0, 0, Value::Null));
    let (_, months) = report(&app, &admin, "from=2026-01-15&to=2026-03-02&groupBy=month").await;
    let want = ["2026-01", "2026-02", "2026-03"].map(|m| row(m, &nothing));
    assert_eq!(months["rows"], json!(want));

    for (query, field) in [
        ("from=2026-02-01&to=2026-01-31", "from"),
        ("to=2026-01-31", "from"),
        ("from=2026-01-01", "to"),
        ("from=2020-01-01&to=2026-01-31", "to"),
        ("from=2026-01-01&to=2026-01-31&groupBy=year", "groupBy"),
    ] {
        let (status, body) = report(&app, &admin, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}
