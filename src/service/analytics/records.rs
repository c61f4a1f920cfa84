//! The medical-records report: records created, changed and deleted per
//! bucket and author, from the figures kept per author and clinic day.

use std::collections::HashMap;

use medrelay_actors::accounts::UserRecord;
use medrelay_actors::stats::records as r;
use medrelay_protocol::analytics::{PeriodQuery, RecordFigures, RecordsReport, RecordsRow};

use super::{Owners, Period};
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// The records report (admins).
///
/// # Errors
/// 403 for other roles; 422 naming `from`, `to` or `groupBy`.
pub fn records(
    state: &AppState,
    principal: &Principal,
    q: PeriodQuery,
) -> Result<RecordsReport, AppError> {
    let period = Period::asked(
        state,
        principal,
        (q.from.as_deref(), q.to.as_deref(), q.group_by.as_deref()),
    )?;
    let store = &state.store;
    let mut authors = Owners::default();
    let mut cells: HashMap<(usize, usize), RecordFigures> = HashMap::new();
    period.visit(store, "r", |bucket, _, author, figures| {
        let cell = cells.entry((bucket, authors.of(author))).or_default();
        for (code, value) in figures {
            let value = u64::try_from(*value).unwrap_or(0);
            match *code {
                r::CREATED => cell.created += value,
                r::UPDATED => cell.updated += value,
                r::DELETED => cell.deleted += value,
                _ => {} // a figure a later release added
            }
        }
    })?;
    // Each author's schedule, read once per author.
    let mut schedules: Vec<Option<String>> = Vec::with_capacity(authors.names.len());
    for author in &authors.names {
        let user = store
            .get::<UserRecord>(author)
            .map_err(AppError::internal)?;
        schedules.push(user.and_then(|u| u.provider_id).map(|p| p.to_string()));
    }
    let mut totals = RecordFigures::default();
    let rows = authors
        .sorted(cells)
        .into_iter()
        .map(|((bucket, author), figures)| {
            totals.created += figures.created;
            totals.updated += figures.updated;
            totals.deleted += figures.deleted;
            RecordsRow {
                period: period.buckets[bucket].clone(),
                author_id: authors.names[author].clone(),
                provider_id: schedules[author].clone(),
                figures,
            }
        })
        .collect();
    Ok(RecordsReport {
        period: period.report(state),
        rows,
        totals,
    })
}
