//! Analytics reports, summed from the figures kept per owner (doctor or
//! author) and clinic day ([`medrelay_actors::stats`]): a report reads one
//! small row per owner and day of its range, never the records.
//!
//! - [`appointments`]: per doctor, with rates from their hours.
//! - [`provider`]: one doctor's activity, patients seen, use of their hours.
//! - [`records`]: medical records written per author.
//! - [`notifications`]: notifications by channel and category, by outcome.
//! - [`billing`]: charges, collections, claims, and what is owed by age.
//! - [`live`]: today's headline figures on the `analytics` channel.

mod appointments;
mod billing;
pub mod live;
mod notifications;
mod providers;
mod records;

use std::collections::HashMap;

use jiff::ToSpan;
use jiff::civil::Date;
use medrelay_actors::store::Store;
use medrelay_protocol::Role;
use medrelay_protocol::analytics::{GroupBy, ReportPeriod};

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

pub use appointments::appointments;
pub use billing::billing;
pub use notifications::notifications;
pub use providers::provider;
pub use records::records;

/// The days a report covers, grouped into its buckets.
struct Period {
    from: Date,
    to: Date,
    group_by: GroupBy,
    /// Bucket names, in order.
    buckets: Vec<String>,
    /// The bucket of each day.
    bucket_of: Vec<usize>,
}

impl Period {
    /// The period an admin asks a report for: `from`, `to` and `groupBy`.
    ///
    /// # Errors
    /// 403 for other roles, then 422 naming the field at fault.
    fn asked(
        state: &AppState,
        principal: &Principal,
        (from, to, group_by): (Option<&str>, Option<&str>, Option<&str>),
    ) -> Result<Self, AppError> {
        principal.require(&[Role::Admin])?;
        Self::parse(from, to, group_by, state.settings.analytics.max_days)
    }

    /// Reads a report's `from`, `to` (at most `max_days` days, inclusive)
    /// and `groupBy`.
    ///
    /// # Errors
    /// 422 naming the field at fault.
    fn parse(
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
        max_days: u32,
    ) -> Result<Self, AppError> {
        let (from, to) = range(from, to, max_days)?;
        let group_by = match group_by {
            None | Some("day") => GroupBy::Day,
            Some("week") => GroupBy::Week,
            Some("month") => GroupBy::Month,
            Some(_) => return Err(AppError::invalid("groupBy", "one of day, week, month")),
        };
        let mut buckets: Vec<String> = Vec::new();
        let bucket_of = from
            .series(1.day())
            .take_while(|d| *d <= to)
            .map(|d| {
                let name = bucket(d, group_by);
                if buckets.last() != Some(&name) {
                    buckets.push(name);
                }
                buckets.len() - 1
            })
            .collect();
        Ok(Self {
            from,
            to,
            group_by,
            buckets,
            bucket_of,
        })
    }

    /// The period as a report names it.
    fn report(&self, state: &AppState) -> ReportPeriod {
        ReportPeriod {
            from: self.from,
            to: self.to,
            group_by: self.group_by,
            time_zone: state.settings.analytics.time_zone.clone(),
        }
    }

    /// Visits the kept rows `<kind>/<yyyy-mm-dd>/<owner>` of the period,
    /// in day order, as (bucket, day, owner, figures).
    ///
    /// # Errors
    /// 500 on a storage error.
    fn visit(
        &self,
        store: &Store,
        kind: &str,
        visit: impl FnMut(usize, Date, &str, &[(u16, i64)]),
    ) -> Result<(), AppError> {
        let (first, last) = medrelay_actors::stats::day_range(kind, self.from, self.to);
        self.visit_rows(store, (&first, &last), kind.len() + 1, visit)
    }

    /// Visits the kept rows from `first` to `last` whose key holds a day of
    /// the period at `at` (then `/` and the rest of the key), as (bucket,
    /// day, the rest, figures).
    ///
    /// # Errors
    /// 500 on a storage error.
    fn visit_rows(
        &self,
        store: &Store,
        (first, last): (&str, &str),
        at: usize,
        mut visit: impl FnMut(usize, Date, &str, &[(u16, i64)]),
    ) -> Result<(), AppError> {
        // Rows come day by day: each day's bucket is looked up once.
        let mut current: Option<(String, Option<(usize, Date)>)> = None;
        store
            .visit_stats(first, last, |key, figures| {
                let (Some(day), Some(rest)) = (key.get(at..at + 10), key.get(at + 11..)) else {
                    return;
                };
                let found = match &current {
                    Some((seen, found)) if seen == day => *found,
                    _ => {
                        let found = day.parse::<Date>().ok().and_then(|d| {
                            let i = usize::try_from((d - self.from).get_days()).ok()?;
                            Some((*self.bucket_of.get(i)?, d))
                        });
                        current = Some((day.to_owned(), found));
                        found
                    }
                };
                if let Some((bucket, day)) = found {
                    visit(bucket, day, rest, figures);
                }
            })
            .map_err(AppError::internal)
    }
}

/// Owners (doctors, authors) by position, so that sums are keyed without
/// allocating a string per row.
#[derive(Default)]
struct Owners {
    names: Vec<String>,
    at: HashMap<String, usize>,
}

impl Owners {
    /// The position of `name`, added when new.
    fn of(&mut self, name: &str) -> usize {
        if let Some(i) = self.at.get(name) {
            return *i;
        }
        self.names.push(name.to_owned());
        self.at.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    /// `cells` in bucket order, then by owner name.
    fn sorted<T>(&self, cells: HashMap<(usize, usize), T>) -> Vec<((usize, usize), T)> {
        let mut cells: Vec<_> = cells.into_iter().collect();
        cells.sort_by(|((b1, o1), _), ((b2, o2), _)| {
            (b1, &self.names[*o1]).cmp(&(b2, &self.names[*o2]))
        });
        cells
    }
}

/// Reads `from` and `to` as an inclusive range of at most `max_days` days.
///
/// # Errors
/// 422 naming the field at fault.
fn range(from: Option<&str>, to: Option<&str>, max_days: u32) -> Result<(Date, Date), AppError> {
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

/// `part ÷ whole` to 4 places ([`rounded`]).
fn ratio(part: impl Into<i128>, whole: impl Into<i128>) -> Option<f64> {
    rounded(part.into(), whole.into(), 4)
}

/// `part ÷ whole` rounded half away from zero to `places` places, in
/// integers so that the same counts always give the same digits; `None`
/// when `whole` is not positive.
fn rounded(part: i128, whole: i128, places: u32) -> Option<f64> {
    if whole <= 0 {
        return None;
    }
    let scale = 10_i128.pow(places);
    let units = (2 * part * scale + part.signum() * whole) / (2 * whole);
    Some(units as f64 / scale as f64)
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
