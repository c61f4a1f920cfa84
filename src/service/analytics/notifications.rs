//! The notifications report: per bucket, channel and category, what became
//! of the notifications made, from the figures the store keeps per clinic
//! day (`n/<day>/<channel>/<category>`); it replaced the delivery
//! statistics that read every notification.

use std::collections::HashMap;

use medrelay_actors::stats::notifications as n;
use medrelay_protocol::analytics::{
    NotificationFigures, NotificationsReport, NotificationsRow, PeriodQuery,
};

use super::{Owners, Period, ratio};
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// The notifications report (admins).
///
/// # Errors
/// 403 for other roles; 422 naming `from`, `to` or `groupBy`.
pub fn notifications(
    state: &AppState,
    principal: &Principal,
    q: PeriodQuery,
) -> Result<NotificationsReport, AppError> {
    let period = Period::asked(
        state,
        principal,
        (q.from.as_deref(), q.to.as_deref(), q.group_by.as_deref()),
    )?;
    // "<channel>/<category>" by position.
    let mut kinds = Owners::default();
    let mut cells: HashMap<(usize, usize), Sums> = HashMap::new();
    period.visit(&state.store, "n", |bucket, _, kind, figures| {
        cells
            .entry((bucket, kinds.of(kind)))
            .or_default()
            .add(figures);
    })?;
    let mut total = Sums::default();
    let rows = kinds
        .sorted(cells)
        .into_iter()
        .map(|((bucket, kind), sums)| {
            let (channel, category) = kinds.names[kind]
                .split_once('/')
                .unwrap_or((kinds.names[kind].as_str(), ""));
            let in_app = channel == "in_app";
            total.merge(&sums, in_app);
            NotificationsRow {
                period: period.buckets[bucket].clone(),
                channel: channel.to_owned(),
                category: category.to_owned(),
                figures: sums.figures(in_app.then_some(sums.counts[usize::from(n::DELIVERED)])),
            }
        })
        .collect();
    Ok(NotificationsReport {
        period: period.report(state),
        rows,
        totals: total.figures(Some(total.in_app_delivered)),
    })
}

/// Summed figures of one cell.
#[derive(Default)]
struct Sums {
    counts: [i64; 7],
    /// In-app notifications delivered (what acknowledgements are out of).
    in_app_delivered: i64,
}

impl Sums {
    fn add(&mut self, figures: &[(u16, i64)]) {
        for (code, value) in figures {
            if let Some(count) = self.counts.get_mut(usize::from(*code)) {
                *count += value;
            } // else a figure a later release added
        }
    }

    fn merge(&mut self, other: &Sums, in_app: bool) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        if in_app {
            self.in_app_delivered += other.counts[usize::from(n::DELIVERED)];
        }
    }

    /// The figures; `in_app_delivered` is what acknowledgements are out of
    /// (`None`: a channel without them).
    fn figures(&self, in_app_delivered: Option<i64>) -> NotificationFigures {
        let count = |code: u16| u64::try_from(self.counts[usize::from(code)]).unwrap_or(0);
        NotificationFigures {
            notifications: count(n::MADE),
            sent: count(n::SENT),
            delivered: count(n::DELIVERED),
            failed: count(n::FAILED),
            expired: count(n::EXPIRED),
            failed_attempts: count(n::FAILED_ATTEMPTS),
            acknowledged: count(n::ACKNOWLEDGED),
            delivery_rate: ratio(count(n::DELIVERED), count(n::MADE)),
            acknowledgement_rate: in_app_delivered
                .and_then(|d| ratio(count(n::ACKNOWLEDGED), u64::try_from(d).unwrap_or(0))),
        }
    }
}
