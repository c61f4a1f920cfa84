//! One doctor's report: the appointments report's figures for them, the
//! patients they saw (from the `p/<provider>/<day>/<patient>` rows, so
//! that a patient seen twice counts once), and how full each weekday's
//! clinic hour was.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::schedule::rules::slots_for_date;
use medrelay_actors::stats::appointments::{self as a, by_hour};
use medrelay_protocol::ProviderId;
use medrelay_protocol::analytics::{
    HourUse, PeriodQuery, ProviderFigures, ProviderReport, ProviderRow,
};
use medrelay_protocol::schedule::Weekday;

use super::appointments::{doctor, table};
use super::{Period, ratio};
use crate::auth::Principal;
use crate::error::AppError;
use crate::service::schedule::viewer;
use crate::state::AppState;

/// (weekday from Monday = 0, clinic hour) → minutes.
type ByHour = BTreeMap<(u8, u8), u64>;

/// A doctor's report: admins, and the doctor themself.
///
/// # Errors
/// 422 naming `providerId`, `from`, `to` or `groupBy`; 403 for anyone
/// else; 404 for no such doctor.
pub fn provider(
    state: &AppState,
    principal: &Principal,
    id: &str,
    q: PeriodQuery,
) -> Result<ProviderReport, AppError> {
    let id = ProviderId::parse(id).map_err(|e| AppError::invalid("providerId", e))?;
    // A display board's viewer manages nothing.
    if !viewer(state, principal)?.manages(&id) {
        return Err(AppError::Forbidden(
            "a doctor's report is for admins and that doctor".into(),
        ));
    }
    let period = Period::parse(
        q.from.as_deref(),
        q.to.as_deref(),
        q.group_by.as_deref(),
        state.settings.analytics.max_days,
    )?;
    let store = &state.store;
    let record = doctor(store, &id)?;
    // Booked minutes by the clinic's weekday and hour, in the same pass.
    let mut booked = ByHour::new();
    let (rows, totals) = table(
        store,
        &period,
        std::slice::from_ref(&record),
        Some(&id),
        |day, figures| {
            let weekday = weekday_index(day);
            for (code, minutes) in figures {
                if let Some(hour) = code.checked_sub(a::HOUR_MINUTES).filter(|h| *h < 24) {
                    let hour = u8::try_from(hour).unwrap_or(0);
                    *booked.entry((weekday, hour)).or_default() +=
                        u64::try_from(*minutes).unwrap_or(0);
                }
            }
        },
    )?;

    // Patients seen, per bucket and over the range.
    let mut seen: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut seen_at_all: HashSet<String> = HashSet::new();
    let prefix = format!("p/{id}/");
    let (first, last) = (
        format!("{prefix}{}/", period.from),
        format!("{prefix}{}/\u{10ffff}", period.to),
    );
    period.visit_rows(
        store,
        (&first, &last),
        prefix.len(),
        |bucket, _, patient, figures| {
            if figures.iter().any(|(code, n)| *code == a::VISITS && *n > 0) {
                seen.entry(bucket).or_default().insert(patient.to_owned());
                seen_at_all.insert(patient.to_owned());
            }
        },
    )?;

    let zone = store.stats_zone();
    let available = available(&record, &period, zone);

    let buckets: HashMap<&str, usize> = period
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let rows = rows
        .into_iter()
        .map(|row| {
            let bucket = buckets.get(row.period.as_str()).copied();
            let patients = bucket.and_then(|b| seen.get(&b)).map_or(0, HashSet::len);
            ProviderRow {
                period: row.period,
                figures: activity(patients, row.figures),
            }
        })
        .collect();
    let hours: HashSet<(u8, u8)> = booked.keys().chain(available.keys()).copied().collect();
    let mut hours: Vec<(u8, u8)> = hours.into_iter().collect();
    hours.sort_unstable();
    let utilisation = hours
        .into_iter()
        .map(|(weekday, hour)| {
            let (b, v) = (
                booked.get(&(weekday, hour)).copied().unwrap_or(0),
                available.get(&(weekday, hour)).copied().unwrap_or(0),
            );
            HourUse {
                weekday: Weekday::from(
                    jiff::civil::Weekday::from_monday_zero_offset(
                        i8::try_from(weekday).unwrap_or(0),
                    )
                    .unwrap_or(jiff::civil::Weekday::Monday),
                ),
                hour,
                booked_minutes: b,
                available_minutes: v,
                utilisation: ratio(b, v),
            }
        })
        .collect();
    Ok(ProviderReport {
        provider_id: id.to_string(),
        period: period.report(state),
        rows,
        totals: activity(seen_at_all.len(), totals),
        utilisation,
    })
}

fn activity(
    patients: usize,
    appointments: medrelay_protocol::analytics::AppointmentFigures,
) -> ProviderFigures {
    ProviderFigures {
        patients_seen: patients as u64,
        visits: appointments.completed,
        appointments,
    }
}

/// Monday = 0.
fn weekday_index(day: Date) -> u8 {
    u8::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0)
}

/// Minutes of the doctor's slots that start on the period's clinic days
/// (their hours as they are now, the slots a patient could book), by the
/// clinic's weekday and hour.
fn available(record: &ProviderRecord, period: &Period, zone: &TimeZone) -> ByHour {
    let mut out = ByHour::new();
    let Ok(own) = TimeZone::get(&record.time_zone) else {
        return out;
    };
    // A clinic day can hold slots of the doctor's dates either side of it.
    let first = period.from.yesterday().unwrap_or(period.from);
    let last = period.to.tomorrow().unwrap_or(period.to);
    for date in first.series(1.day()).take_while(|d| *d <= last) {
        let slots = slots_for_date(
            &own,
            date,
            record.slot_minutes.max(1),
            &record.availability,
            &record.exceptions,
        );
        for slot in slots {
            let day = slot.start.to_zoned(zone.clone()).date();
            if day < period.from || day > period.to {
                continue;
            }
            let weekday = weekday_index(day);
            for (hour, minutes) in by_hour(slot.start, slot.end, zone) {
                let hour = u8::try_from(hour).unwrap_or(0);
                *out.entry((weekday, hour)).or_default() += u64::try_from(minutes).unwrap_or(0);
            }
        }
    }
    out
}
