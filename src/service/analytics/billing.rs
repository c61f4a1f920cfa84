//! The billing report: charges, collections, refunds and claim answers per
//! bucket, and accounts receivable now by age, from the clinic's billing
//! figures per clinic day ([`medrelay_actors::stats::billing`]).

use jiff::ToSpan;
use jiff::civil::Date;
use medrelay_actors::stats::billing as b;
use medrelay_protocol::Money;
use medrelay_protocol::analytics::{
    AgingBucket, BillingFigures, BillingReport, BillingRow, PeriodQuery, Receivable,
};

use super::{Period, ratio, rounded};
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// The ages A/R is told apart by: the last clinic day of each (the last
/// bucket has no end), and its name.
const AGES: [(i64, &str); 5] = [
    (30, "0-30"),
    (60, "31-60"),
    (90, "61-90"),
    (120, "91-120"),
    (i64::MAX, "over-120"),
];

/// The clinic days whose charges make the average day's for days in A/R
/// (fewer while the clinic has billed for fewer).
const AR_DAYS: i64 = 90;

/// The billing report (admins).
///
/// # Errors
/// 403 for other roles; 422 naming `from`, `to` or `groupBy`.
pub fn billing(
    state: &AppState,
    principal: &Principal,
    q: PeriodQuery,
) -> Result<BillingReport, AppError> {
    let period = Period::asked(
        state,
        principal,
        (q.from.as_deref(), q.to.as_deref(), q.group_by.as_deref()),
    )?;
    let store = &state.store;
    let mut sums = vec![Sums::default(); period.buckets.len()];
    period.visit(store, "b", |bucket, _, _, figures| {
        sums[bucket].add(figures)
    })?;
    let mut all = Sums::default();
    for s in &sums {
        all.add_sums(s);
    }
    let rows = period
        .buckets
        .iter()
        .zip(&sums)
        .map(|(period, s)| BillingRow {
            period: period.clone(),
            figures: s.figures(),
        })
        .collect();
    Ok(BillingReport {
        period: period.report(state),
        rows,
        totals: all.figures(),
        receivable: receivable(state)?,
    })
}

/// What open bills owe now, by the age of the clinic day they were written.
fn receivable(state: &AppState) -> Result<Receivable, AppError> {
    let store = &state.store;
    let today = jiff::Timestamp::now()
        .to_zoned(store.stats_zone().clone())
        .date();
    let mut aging = Aging::new(today);
    let (_, last) = medrelay_actors::stats::day_range("b", today, today);
    store
        .visit_stats("b/", &last, |key, figures| {
            if let Some(day) = key.get(2..12).and_then(|d| d.parse::<Date>().ok()) {
                aging.add(day, figures);
            }
        })
        .map_err(AppError::internal)?;
    Ok(aging.receivable())
}

/// Sums of what is owed by age, and of the recent charges.
struct Aging {
    today: Date,
    /// The first of the [`AR_DAYS`] clinic days to `today`.
    recent: Date,
    /// (patients, insurers) in cents, by [`AGES`].
    owed: [(i64, i64); AGES.len()],
    recent_charges: i64,
    /// The first day anything was charged.
    first_charged: Option<Date>,
}

impl Aging {
    fn new(today: Date) -> Self {
        Self {
            today,
            recent: today.checked_sub((AR_DAYS - 1).days()).unwrap_or(Date::MIN),
            owed: [(0, 0); AGES.len()],
            recent_charges: 0,
            first_charged: None,
        }
    }

    /// Adds the figures of clinic day `day`.
    fn add(&mut self, day: Date, figures: &[(u16, i64)]) {
        let age = i64::from((self.today - day).get_days());
        let at = AGES.iter().position(|(last, _)| age <= *last).unwrap_or(0);
        for (code, value) in figures {
            match *code {
                b::OWED_BY_PATIENTS => self.owed[at].0 += value,
                b::OWED_BY_INSURERS => self.owed[at].1 += value,
                b::CHARGES => {
                    if day >= self.recent {
                        self.recent_charges += value;
                    }
                    if *value != 0 && self.first_charged.is_none_or(|f| day < f) {
                        self.first_charged = Some(day);
                    }
                }
                _ => {}
            }
        }
    }

    fn receivable(self) -> Receivable {
        let (mut patients, mut insurers) = (0, 0);
        let aging = AGES
            .iter()
            .zip(self.owed)
            .map(|((_, days), (p, i))| {
                // As `money` shows them, so that the totals add up.
                let (p, i) = (p.max(0), i.max(0));
                patients += p;
                insurers += i;
                AgingBucket {
                    days: (*days).to_owned(),
                    patients: money(p),
                    insurers: money(i),
                    total: money(p + i),
                }
            })
            .collect();
        let total = patients + insurers;
        let days = self.first_charged.map_or(AR_DAYS, |first| {
            i64::from((self.today - first).get_days() + 1).clamp(1, AR_DAYS)
        });
        Receivable {
            as_of: self.today,
            aging,
            patients: money(patients),
            insurers: money(insurers),
            total: money(total),
            // total ÷ (charges ÷ days) = total × days ÷ charges.
            days_in_ar: rounded(
                i128::from(total) * i128::from(days),
                i128::from(self.recent_charges),
                1,
            ),
        }
    }
}

/// Cents as money; never below zero (a figure below zero would be a fault
/// a recount corrects, not a debt).
fn money(cents: i64) -> Money {
    Money::from_cents(cents.max(0))
}

/// How many figures this release keeps per day (codes 0 to the last).
const FIGURES: usize = b::CLAIMS_CLEAN as usize + 1;

/// The kept figures of one bucket, summed.
#[derive(Debug, Clone, Default)]
struct Sums {
    f: [i64; FIGURES],
}

impl Sums {
    fn add(&mut self, figures: &[(u16, i64)]) {
        for (code, value) in figures {
            // A figure a later release added is not this release's.
            if let Some(sum) = self.f.get_mut(usize::from(*code)) {
                *sum += value;
            }
        }
    }

    fn add_sums(&mut self, other: &Sums) {
        for (sum, value) in self.f.iter_mut().zip(other.f) {
            *sum += value;
        }
    }

    fn figures(&self) -> BillingFigures {
        let f = |code: u16| self.f[usize::from(code)];
        let count = |code: u16| u64::try_from(f(code)).unwrap_or(0);
        let net = f(b::COLLECTED) + f(b::INSURERS_PAID) - f(b::REFUNDED);
        BillingFigures {
            charges: money(f(b::CHARGES)),
            bills: count(b::BILLS),
            collected_from_patients: money(f(b::COLLECTED)),
            payments: count(b::PAYMENTS),
            collected_from_insurers: money(f(b::INSURERS_PAID)),
            refunds: money(f(b::REFUNDED)),
            net_collection_rate: ratio(net, f(b::CHARGES)),
            claims_answered: count(b::CLAIMS_ANSWERED),
            claims_denied: count(b::CLAIMS_DENIED),
            claims_clean: count(b::CLAIMS_CLEAN),
            denial_rate: ratio(f(b::CLAIMS_DENIED), f(b::CLAIMS_ANSWERED)),
            clean_claim_rate: ratio(f(b::CLAIMS_CLEAN), f(b::CLAIMS_ANSWERED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    #[test]
    fn what_is_owed_falls_in_the_age_of_the_day_its_bill_was_written() {
        let today = date(2026, 12, 6);
        let mut aging = Aging::new(today);
        let owed = |p, i| [(b::OWED_BY_PATIENTS, p), (b::OWED_BY_INSURERS, i)];
        // The edges of each age, in cents.
        for (days_ago, patients, insurers) in [
            (0, 100, 0),
            (30, 1, 2),
            (31, 10, 0),
            (60, 0, 20),
            (61, 300, 0),
            (90, 0, 0),
            (91, 4, 5),
            (120, 6, 0),
            (121, 7, 8),
            (2_000, 9, 0),
        ] {
            let day = today.checked_sub(jiff::Span::new().days(days_ago)).unwrap();
            aging.add(day, &owed(patients, insurers));
        }
        // 90 days of charges: 9.00 in all, 0.10 a day; the 91st day's don't count.
        aging.add(today, &[(b::CHARGES, 400)]);
        aging.add(today - 89.days(), &[(b::CHARGES, 500)]);
        aging.add(today - 90.days(), &[(b::CHARGES, 777_777)]);
        let r = aging.receivable();
        let ages: Vec<(String, String, String, String)> = r
            .aging
            .iter()
            .map(|a| {
                let m = |m: Money| m.to_string();
                (a.days.clone(), m(a.patients), m(a.insurers), m(a.total))
            })
            .collect();
        let row = |d: &str, p: &str, i: &str, t: &str| (d.into(), p.into(), i.into(), t.into());
        assert_eq!(
            ages,
            vec![
                row("0-30", "1.01", "0.02", "1.03"),
                row("31-60", "0.10", "0.20", "0.30"),
                row("61-90", "3.00", "0.00", "3.00"),
                row("91-120", "0.10", "0.05", "0.15"),
                row("over-120", "0.16", "0.08", "0.24"),
            ]
        );
        assert_eq!(r.total.to_string(), "4.72");
        assert_eq!(
            (r.patients.to_string(), r.insurers.to_string()),
            ("4.37".into(), "0.35".into())
        );
        // 4.72 owed ÷ 0.10 a day.
        assert_eq!(r.days_in_ar, Some(47.2));
        assert_eq!(r.as_of, today);

        // A clinic that has billed for three days: their average.
        let mut young = Aging::new(today);
        young.add(today - 2.days(), &[(b::CHARGES, 1_000)]);
        young.add(today, &[(b::CHARGES, 500), (b::OWED_BY_PATIENTS, 900)]);
        // 9.00 owed ÷ (15.00 ÷ 3 days).
        assert_eq!(young.receivable().days_in_ar, Some(1.8));
    }

    #[test]
    fn rates_round_half_away_from_zero_and_need_a_whole() {
        assert_eq!(ratio(1_u64, 3_u64), Some(0.3333));
        assert_eq!(ratio(2_u64, 3_u64), Some(0.6667));
        assert_eq!(ratio(-1_i64, 8_i64), Some(-0.125));
        assert_eq!(ratio(-2_i64, 3_i64), Some(-0.6667));
        assert_eq!(ratio(5_u64, 0_u64), None);
        assert_eq!(rounded(472 * 90, 900_000, 1), Some(0.0));
        assert_eq!(rounded(50_000 * 90, 900_000, 1), Some(5.0));
        assert_eq!(rounded(5, 100, 1), Some(0.1));
    }
}
