//! The payments' upkeep, run in the background: payments left unsettled
//! (or a refund a stop interrupted) handed to their actors again, and
//! idempotency keys and card gateway events pruned once past keeping.

use std::sync::Arc;

use jiff::Timestamp;
use medrelay_actors::billing::payment_actor::Settle;
use medrelay_actors::billing::payments::{self, GatewayEvent};
use medrelay_actors::idempotency::IdempotencyRecord;
use medrelay_actors::store::WriteBatch;

use crate::state::AppState;

/// Settles the payments left unsettled (by a stop, a gateway that was
/// away, a request that gave up), each through its actor: at start-up, then
/// every 30 seconds. Settling is idempotent, so one a request is settling
/// meanwhile is not applied twice.
pub async fn resume(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        tick.tick().await;
        let ids = match payments::unsettled(&state.store, 10_000) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "could not read the payments left unsettled");
                continue;
            }
        };
        for id in ids {
            match state.payments.send(id.as_str(), Settle).await {
                Ok(Ok(p)) => {
                    tracing::info!(payment = %id, status = p.status.as_str(), "unsettled payment settled")
                }
                Ok(Err(e)) => {
                    tracing::warn!(payment = %id, error = %e, "an unsettled payment is still unsettled")
                }
                Err(e) => {
                    tracing::warn!(payment = %id, error = %e, "no payment actor took an unsettled payment")
                }
            }
        }
    }
}

/// How long a card gateway's event id is kept against replays (the
/// gateway stops re-sending after three days).
const EVENTS_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);

/// Forgets idempotency keys past their 24 hours, and card gateway events
/// past their 30 days, every hour.
pub async fn prune_keys(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let keys = prune::<IdempotencyRecord>(&state, |r| r.expired(now)).await;
        let events =
            prune::<GatewayEvent>(&state, |e| now.duration_since(e.received_at) > EVENTS_KEPT)
                .await;
        if keys + events > 0 {
            tracing::info!(
                keys,
                events,
                "forgot idempotency keys past 24 hours and gateway events past 30 days"
            );
        }
    }
}

/// Deletes the records of `T`'s table that `gone` says are past keeping;
/// how many.
async fn prune<T>(state: &AppState, gone: impl Fn(&T) -> bool) -> usize
where
    T: medrelay_actors::store::Record,
{
    let mut after: Option<String> = None;
    let mut pruned = 0;
    loop {
        let page = match state.store.scan::<T>(after.as_deref(), 512) {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(table = T::TABLE.name(), error = %e, "could not read records to prune");
                return pruned;
            }
        };
        let Some((last, _)) = page.last() else {
            return pruned;
        };
        after = Some(last.clone());
        let mut batch = WriteBatch::new();
        for (key, record) in page.into_iter().filter(|(_, r)| gone(r)) {
            batch.require_equal(key.clone(), &record);
            batch.delete(T::TABLE, key);
            pruned += 1;
        }
        if !batch.is_empty()
            && let Err(e) = state.store.write(batch).await
        {
            tracing::warn!(table = T::TABLE.name(), error = %e, "could not prune records");
        }
    }
}
