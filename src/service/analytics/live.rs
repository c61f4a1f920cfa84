//! The `analytics` channel: today's headline figures of the whole clinic,
//! pushed to admins' dashboards as they change, at most once a second.
//!
//! Once a second, the kept rows of today (one per doctor and author who
//! had anything) are summed; when the sum differs from the last one pushed,
//! it is written as an `analytics_today` event on the channel. Events go
//! through the store like every channel's, so a dashboard that reconnects
//! with `since` catches up, and one that subscribes afresh gets the same
//! figures as its snapshot.

use std::sync::Arc;
use std::time::Duration;

use medrelay_actors::stats;
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::{Channel, Event};

use crate::state::AppState;

/// How often the figures are summed: at most one frame a second.
const EVERY: Duration = Duration::from_secs(1);

/// Pushes today's figures whenever they changed, until the task is stopped.
pub async fn push_today(state: Arc<AppState>) {
    let store = &state.store;
    // What subscribers last saw: the newest event kept, if any.
    let mut last = store
        .channel_events(
            &Channel::Analytics,
            store
                .channel_head(&Channel::Analytics)
                .unwrap_or(0)
                .saturating_sub(1),
            1,
        )
        .ok()
        .and_then(|(events, _)| events.into_iter().last())
        .and_then(|e| match e.event {
            Event::AnalyticsToday(h) => Some(h),
            _ => None,
        });
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let today = match stats::headline(store, jiff::Timestamp::now()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "could not sum today's figures");
                continue;
            }
        };
        if last.as_ref() == Some(&today) {
            continue;
        }
        let mut batch = WriteBatch::new();
        batch.event(Channel::Analytics, Event::AnalyticsToday(today.clone()));
        match store.write(batch).await {
            Ok(_) => last = Some(today),
            Err(e) => tracing::warn!(error = %e, "could not push today's figures"),
        }
    }
}
