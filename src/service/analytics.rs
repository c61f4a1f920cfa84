//! Analytics reports, summed from the figures kept per doctor and clinic
//! day ([`medrelay_actors::stats`]): a report reads one small row per
//! doctor and day that had appointments, never the appointments.

use std::collections::{BTreeMap, HashMap};

use jiff::ToSpan;
use jiff::civil::Date;
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::schedule::rules::ranges_for;
use medrelay_actors::stats::appointments as a;
use medrelay_protocol::analytics::{
    AppointmentFigures, AppointmentsQuery, AppointmentsReport, AppointmentsRow, GroupBy,
};
use medrelay_protocol::schedule::TimeRange;
use medrelay_protocol::{ProviderId, Role};

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// The most doctors one report covers.
const MAX_PROVIDERS: usize = 10_000;

/// The appointments report (admins).
///
/// # Errors
/// 403 for other roles; 422 naming `from`, `to`, `groupBy` or `providerId`.
pub fn appointments(
    state: &AppState,
    principal: &Principal,
    q: AppointmentsQuery,
) -> Result<AppointmentsReport, AppError> {
    principal.require(&[Role::Admin])?;
    let (from, to) = range(
        q.from.as_deref(),
        q.to.as_deref(),
        state.settings.analytics.max_days,
    )?;
    let group_by = match q.group_by.as_deref() {
        None | Some("day") => GroupBy::Day,
        Some("week") => GroupBy::Week,
        Some("month") => GroupBy::Month,
        Some(_) => return Err(AppError::invalid("groupBy", "one of day, week, month")),
    };
    let only = q
        .provider_id
        .as_deref()
        .map(|p| ProviderId::parse(p).map_err(|e| AppError::invalid("providerId", e)))
        .transpose()?;
    let store = &state.store;
    let providers: Vec<ProviderRecord> = match &only {
        Some(o) => vec![
            store
                .get::<ProviderRecord>(o.as_str())
                .map_err(AppError::internal)?
                .ok_or_else(|| AppError::NotFound(format!("no provider {o}")))?,
        ],
        None => store
            .scan::<ProviderRecord>(None, MAX_PROVIDERS)
            .map_err(AppError::internal)?
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
    };

    // Buckets in order, and each day's bucket, computed once.
    let days: Vec<Date> = from.series(1.day()).take_while(|d| *d <= to).collect();
    let mut buckets: Vec<String> = Vec::new();
    let bucket_of: Vec<usize> = days
        .iter()
        .map(|d| {
            let name = bucket(*d, group_by);
            if buckets.last() != Some(&name) {
                buckets.push(name);
            }
            buckets.len() - 1
        })
        .collect();
    // Doctors by position; a deleted doctor's figures still count.
    let mut doctors: Vec<String> = providers
        .iter()
        .map(|p| p.provider_id.to_string())
        .collect();
    let mut doctor_at: HashMap<String, usize> = doctors
        .iter()
        .enumerate()
        .map(|(i, d)| (d.clone(), i))
        .collect();
    let mut cells: HashMap<(usize, usize), Sums> = HashMap::new();
    let mut day_index: Option<(String, usize)> = None;
    store
        .visit_stats(
            &format!("a/{from}/"),
            &format!("a/{to}/\u{10ffff}"),
            |key, figures| {
                // a/<yyyy-mm-dd>/<provider>; rows come day by day.
                let (Some(day), Some(provider)) = (key.get(2..12), key.get(13..)) else {
                    return;
                };
                if only.as_ref().is_some_and(|o| o.as_str() != provider) {
                    return;
                }
                let index = match &day_index {
                    Some((seen, i)) if seen == day => *i,
                    _ => {
                        let Some(i) = day
                            .parse::<Date>()
                            .ok()
                            .and_then(|d| usize::try_from((d - from).get_days()).ok())
                            .filter(|i| *i < days.len())
                        else {
                            return;
                        };
                        day_index = Some((day.to_owned(), i));
                        i
                    }
                };
                let doctor = match doctor_at.get(provider) {
                    Some(d) => *d,
                    None => {
                        doctors.push(provider.to_owned());
                        doctor_at.insert(provider.to_owned(), doctors.len() - 1);
                        doctors.len() - 1
                    }
                };
                cells
                    .entry((bucket_of[index], doctor))
                    .or_default()
                    .add(figures);
            },
        )
        .map_err(AppError::internal)?;
    // The doctors' hours, day by day (their own dates; see the docs).
    for (doctor, p) in providers.iter().enumerate() {
        let hours = Hours::of(p, from, to);
        for (day, bucket) in days.iter().zip(&bucket_of) {
            let minutes = hours.minutes(*day);
            if minutes > 0 {
                cells.entry((*bucket, doctor)).or_default().available += minutes;
            }
        }
    }
    let mut cells: Vec<((usize, usize), Sums)> = cells.into_iter().collect();
    cells.sort_by(|((b1, d1), _), ((b2, d2), _)| (b1, &doctors[*d1]).cmp(&(b2, &doctors[*d2])));
    let mut total = Sums::default();
    let rows = cells
        .into_iter()
        .map(|((bucket, doctor), sums)| {
            total.merge(&sums);
            AppointmentsRow {
                period: buckets[bucket].clone(),
                provider_id: doctors[doctor].clone(),
                figures: sums.figures(),
            }
        })
        .collect();
    Ok(AppointmentsReport {
        from,
        to,
        group_by,
        time_zone: state.settings.analytics.time_zone.clone(),
        rows,
        totals: total.figures(),
    })
}

/// Reads `from` and `to` as an inclusive range of at most `max_days` days.
///
/// # Errors
/// 422 naming the field at fault.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    max_days: u32,
) -> Result<(Date, Date), AppError> {
    let date = |field: &str, v: Option<&str>| {
        v.ok_or_else(|| AppError::invalid(field, "is required (yyyy-mm-dd)"))?
            .parse::<Date>()
            .map_err(|_| AppError::invalid(field, "a date, yyyy-mm-dd"))
    };
    let (from, to) = (date("from", from)?, date("to", to)?);
    if from > to {
        return Err(AppError::invalid("from", "must not be after to"));
    }
    let last = from
        .checked_add(i64::from(max_days.saturating_sub(1)).days())
        .unwrap_or(Date::MAX);
    if to > last {
        return Err(AppError::invalid(
            "to",
            format!("a report covers at most {max_days} days"),
        ));
    }
    Ok((from, to))
}

/// The bucket a clinic day falls in.
fn bucket(day: Date, group_by: GroupBy) -> String {
    match group_by {
        GroupBy::Day => day.to_string(),
        GroupBy::Week => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            day.checked_sub(back.days()).unwrap_or(day).to_string()
        }
        GroupBy::Month => format!("{:04}-{:02}", day.year(), day.month()),
    }
}

/// Minutes of whole slots in one doctor's hours, by weekday and by the
/// date exceptions within a report's range, looked up once.
struct Hours {
    weekly: [u64; 7],
    exceptions: HashMap<Date, u64>,
}

impl Hours {
    fn of(p: &ProviderRecord, from: Date, to: Date) -> Self {
        let slot = p.slot_minutes.max(1);
        let minutes = |ranges: &[TimeRange]| -> u64 {
            ranges
                .iter()
                .map(|r| u64::from(r.end.minutes().saturating_sub(r.start.minutes()) / slot * slot))
                .sum()
        };
        let mut weekly = [0; 7];
        for day in from.series(1.day()).take(7) {
            let index = usize::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0);
            weekly[index] = minutes(ranges_for(day, &p.availability, &[]));
        }
        let exceptions = p
            .exceptions
            .iter()
            .filter(|e| (from..=to).contains(&e.date))
            .map(|e| (e.date, minutes(&e.slots)))
            .collect();
        Self { weekly, exceptions }
    }

    fn minutes(&self, day: Date) -> u64 {
        self.exceptions.get(&day).copied().unwrap_or_else(|| {
            let index = usize::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0);
            self.weekly[index]
        })
    }
}

/// Summed figures of one cell of the report.
#[derive(Default)]
struct Sums {
    counts: [i64; 8],
    leads: BTreeMap<u16, i64>,
    available: u64,
}

impl Sums {
    fn add(&mut self, figures: &[(u16, i64)]) {
        for (code, value) in figures {
            match usize::from(*code) {
                c if c < self.counts.len() => self.counts[c] += value,
                _ if *code >= a::LEAD_HOURS => {
                    *self.leads.entry(code - a::LEAD_HOURS).or_default() += value;
                }
                _ => {} // a figure a later release added
            }
        }
    }

    fn merge(&mut self, other: &Sums) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        for (hours, n) in &other.leads {
            *self.leads.entry(*hours).or_default() += n;
        }
        self.available += other.available;
    }

    fn figures(&self) -> AppointmentFigures {
        let n = |code: u16| u64::try_from(self.counts[usize::from(code)]).unwrap_or(0);
        let booked = n(a::BOOKED);
        let booked_minutes = n(a::BOOKED_MINUTES);
        AppointmentFigures {
            booked,
            completed: n(a::COMPLETED),
            cancelled: n(a::CANCELLED),
            late_cancellations: n(a::LATE_CANCELLED),
            no_shows: n(a::NO_SHOWS),
            no_show_rate: ratio(n(a::NO_SHOWS) + n(a::LATE_CANCELLED), booked),
            booked_minutes,
            available_minutes: self.available,
            fill_rate: ratio(booked_minutes, self.available),
            median_lead_hours: self.median_lead(),
            reschedules: n(a::RESCHEDULES),
            waitlist_fills: n(a::WAITLIST_FILLS),
        }
    }

    /// The lower middle of the leads, in hours.
    fn median_lead(&self) -> Option<u64> {
        let count: i64 = self.leads.values().sum();
        if count <= 0 {
            return None;
        }
        let mut seen = 0;
        for (hours, n) in &self.leads {
            seen += n;
            if seen * 2 >= count {
                return Some(u64::from(*hours));
            }
        }
        None
    }
}

/// `part ÷ whole` rounded half up to 4 places, in integers so that the
/// same counts always give the same digits; `None` when `whole` is 0.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    let (part, whole) = (u128::from(part), u128::from(whole));
    let ten_thousandths = (part * 20_000 + whole) / (2 * whole);
    Some(ten_thousandths as f64 / 10_000.0)
}
