//! The appointments report: per bucket and doctor, from the figures kept
//! per doctor and clinic day, with rates from the doctors' hours.

use std::collections::{BTreeMap, HashMap};

use jiff::ToSpan;
use jiff::civil::Date;
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::schedule::rules::ranges_for;
use medrelay_actors::stats::appointments as a;
use medrelay_actors::store::Store;
use medrelay_protocol::ProviderId;
use medrelay_protocol::analytics::{
    AppointmentFigures, AppointmentsQuery, AppointmentsReport, AppointmentsRow,
};
use medrelay_protocol::schedule::TimeRange;

use super::{Owners, Period, ratio};
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
    let period = Period::asked(
        state,
        principal,
        (q.from.as_deref(), q.to.as_deref(), q.group_by.as_deref()),
    )?;
    let only = q
        .provider_id
        .as_deref()
        .map(|p| ProviderId::parse(p).map_err(|e| AppError::invalid("providerId", e)))
        .transpose()?;
    let store = &state.store;
    let providers: Vec<ProviderRecord> = match &only {
        Some(o) => vec![doctor(store, o)?],
        None => store
            .scan::<ProviderRecord>(None, MAX_PROVIDERS)
            .map_err(AppError::internal)?
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
    };

    let (rows, totals) = table(store, &period, &providers, only.as_ref(), |_, _| {})?;
    Ok(AppointmentsReport {
        period: period.report(state),
        rows,
        totals,
    })
}

/// A doctor's record.
///
/// # Errors
/// 404 for no such doctor; 500 on a storage error.
pub(super) fn doctor(store: &Store, id: &ProviderId) -> Result<ProviderRecord, AppError> {
    store
        .get::<ProviderRecord>(id.as_str())
        .map_err(AppError::internal)?
        .ok_or_else(|| AppError::NotFound(format!("no provider {id}")))
}

/// The report's rows (per bucket, then doctor) and totals: the figures of
/// `only` (or of every doctor), and the hours of `providers`. Each kept row
/// it sums is also shown to `also` (day, figures), for a report that reads
/// more of them.
///
/// # Errors
/// 500 on a storage error.
pub(super) fn table(
    store: &Store,
    period: &Period,
    providers: &[ProviderRecord],
    only: Option<&ProviderId>,
    mut also: impl FnMut(Date, &[(u16, i64)]),
) -> Result<(Vec<AppointmentsRow>, AppointmentFigures), AppError> {
    // Doctors by position; a deleted doctor's figures still count.
    let mut doctors = Owners::default();
    for p in providers {
        doctors.of(p.provider_id.as_str());
    }
    let mut cells: HashMap<(usize, usize), Sums> = HashMap::new();
    period.visit(store, "a", |bucket, day, provider, figures| {
        if only.is_none_or(|o| o.as_str() == provider) {
            let doctor = doctors.of(provider);
            cells.entry((bucket, doctor)).or_default().add(figures);
            also(day, figures);
        }
    })?;
    // The doctors' hours, day by day (their own dates; see the docs).
    for (doctor, p) in providers.iter().enumerate() {
        let hours = Hours::of(p, period.from, period.to);
        for (day, bucket) in period.from.series(1.day()).zip(&period.bucket_of) {
            let minutes = hours.minutes(day);
            if minutes > 0 {
                cells.entry((*bucket, doctor)).or_default().available += minutes;
            }
        }
    }
    let mut total = Sums::default();
    let rows = doctors
        .sorted(cells)
        .into_iter()
        .map(|((bucket, doctor), sums)| {
            total.merge(&sums);
            AppointmentsRow {
                period: period.buckets[bucket].clone(),
                provider_id: doctors.names[doctor].clone(),
                figures: sums.figures(),
            }
        })
        .collect();
    Ok((rows, total.figures()))
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
