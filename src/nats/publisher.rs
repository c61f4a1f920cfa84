//! The outbox publisher: every outbox entry, in position order, to JetStream.
//!
//! Entries are published a window at a time (`nats.publish_window`) and the
//! window's acks awaited in order. Only the acknowledged prefix is recorded
//! (and deleted from the outbox); anything after the first failure is
//! published again on the next pass.
//!
//! Exactly once in the stream:
//! - each message carries its event id as `Nats-Msg-Id`, so a republish of
//!   something the stream already holds (after a crash between the stream's
//!   ack and our record of it) is dropped by JetStream's dedup window;
//! - at start-up the stream's newest message is looked up in the outbox, and
//!   everything up to it is recorded as done, so a restart after a long
//!   outage does not depend on the dedup window at all.
//!
//! In order: inside a window every message after the first names its
//! predecessor in `Nats-Expected-Last-Msg-Id`. If one message is lost (the
//! connection dropped with it in flight), JetStream refuses every later one
//! in the window instead of storing them ahead of it; the next pass
//! publishes again from the lost one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use medrelay_actors::store::{OutboxEntry, WriteBatch};
use medrelay_protocol::nats::{EVENT_SCHEMA_VERSION, EventEnvelope};

use super::{back_off, stream_config};
use crate::state::AppState;
use crate::state::NatsLink;

/// Longest wait between retries while JetStream is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long the outbox stays quiet before its lazily recorded acks are
/// made durable with an empty commit.
const SYNC_AFTER: Duration = Duration::from_millis(200);

/// While keeping up, what JetStream stored is recorded at most this often
/// (or once a window's worth is unrecorded).
const RECORD_EVERY: Duration = Duration::from_millis(50);

/// Runs until the task is aborted at shutdown.
pub async fn run(state: Arc<AppState>, link: NatsLink) {
    let mut delay = Duration::from_millis(100);
    loop {
        match session(&state, &link).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "outbox publisher: JetStream unavailable; retrying"
                );
                back_off(&mut delay, MAX_BACKOFF).await;
            }
        }
    }
}

/// Makes sure the stream exists, reconciles with it, then publishes until
/// the stream goes missing (an `Err` restarts the session) or shutdown.
async fn session(state: &AppState, link: &NatsLink) -> anyhow::Result<()> {
    let config = stream_config(&state.settings.nats, &link.subjects);
    let stream = link
        .jetstream
        .get_or_create_stream(config)
        .await
        .context("could not create or open the event stream")?;
    reconcile(state, &stream).await?;
    let window = state.settings.nats.publish_window;
    let mut delay = Duration::from_millis(50);
    let mut shutdown = state.shutdown.clone();
    let mut acks = Acks::default();
    loop {
        let (head, recorded) = state.store.outbox_positions()?;
        if *shutdown.borrow() {
            // Record what JetStream holds, so a restart does not publish it
            // again (the store's closing checkpoint makes this durable).
            if acks.published > recorded {
                acks.record(state, true).await?;
            }
            return Ok(());
        }
        let published = acks.published.max(recorded);
        metrics::gauge!("outbox_pending").set(head.saturating_sub(published) as f64);
        if head <= published {
            let idle = if acks.owed(recorded) {
                SYNC_AFTER
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                () = state.store.outbox_grew() => {}
                () = tokio::time::sleep(idle) => {
                    if acks.owed(recorded) {
                        // Quiet for a while: make the record durable, so a
                        // restart need not publish anything again.
                        acks.record(state, false).await?;
                    }
                }
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let entries = state.store.outbox_after(published, window)?;
        let (done, failure) = publish_window(link, &entries).await;
        if let Some(through) = done {
            acks.published = through;
            let count = entries.iter().filter(|e| e.position <= through).count();
            metrics::counter!("nats_events_published_total").increment(count as u64);
            if entries.len() >= window {
                // Catching up a backlog: every record is durable, so a crash
                // never leaves more than a window to publish again.
                acks.record(state, false).await?;
            } else if acks.published - recorded >= window as u64
                || acks.last_record.elapsed() >= RECORD_EVERY
            {
                // Keeping up: the record costs no fsync of its own (it
                // rides on the next booking's) nor a commit per window.
                // Losing it in a crash republishes at most a window or
                // RECORD_EVERY of events, which reconcile() and JetStream's
                // duplicate window drop.
                acks.record(state, true).await?;
            }
        }
        match failure {
            None => delay = Duration::from_millis(50),
            Some(kind) => {
                metrics::counter!("nats_publish_failures_total").increment(1);
                if kind == PublishErrorKind::StreamNotFound {
                    anyhow::bail!("the event stream disappeared");
                }
                tracing::debug!(%kind, "publish window failed; publishing again from the first unacknowledged event");
                back_off(&mut delay, MAX_BACKOFF).await;
            }
        }
    }
}

/// What JetStream has stored, and what of it the outbox has recorded.
struct Acks {
    /// The outbox position of the last entry JetStream acknowledged.
    published: u64,
    /// Whether the last record was written lazily (may lack its fsync).
    lazy: bool,
    last_record: Instant,
}

impl Default for Acks {
    fn default() -> Self {
        Acks {
            published: 0,
            lazy: false,
            last_record: Instant::now(),
        }
    }
}

impl Acks {
    /// Whether something published is unrecorded or not yet durable.
    fn owed(&self, recorded: u64) -> bool {
        self.published > recorded || self.lazy
    }

    /// Records everything published so far (deleting it from the outbox).
    async fn record(&mut self, state: &AppState, lazy: bool) -> anyhow::Result<()> {
        let mut batch = WriteBatch::new();
        batch.ack_outbox(self.published);
        if lazy {
            batch.lazy();
        }
        state
            .store
            .write(batch)
            .await
            .context("could not record published events")?;
        self.lazy = lazy;
        self.last_record = Instant::now();
        Ok(())
    }
}

/// Publishes `entries` and awaits their acks in order. Returns the position
/// of the last entry of the acknowledged prefix, and why the rest failed.
async fn publish_window(
    link: &NatsLink,
    entries: &[OutboxEntry],
) -> (Option<u64>, Option<PublishErrorKind>) {
    let mut pending = Vec::with_capacity(entries.len());
    let mut previous: Option<&str> = None;
    let mut failure = None;
    for entry in entries {
        let Some(subject) = link.subjects.event(&entry.channel, &entry.event) else {
            // Not a published channel (written by an older release): done.
            pending.push((entry.position, None));
            continue;
        };
        let envelope = EventEnvelope {
            v: EVENT_SCHEMA_VERSION,
            event_id: entry.event_id.clone(),
            channel: entry.channel.clone(),
            seq: entry.seq,
            event: entry.event.clone(),
        };
        let payload = serde_json::to_vec(&envelope).expect("envelopes serialise to JSON");
        let mut message = PublishMessage::build()
            .payload(payload.into())
            .message_id(&entry.event_id)
            .header("Medrelay-Schema", EVENT_SCHEMA_VERSION.to_string().as_str());
        if let Some(previous) = previous {
            message = message.expected_last_message_id(previous);
        }
        match link.jetstream.send_publish(subject, message).await {
            Ok(ack) => pending.push((entry.position, Some(ack))),
            Err(e) => {
                failure = Some(e.kind());
                break;
            }
        }
        previous = Some(&entry.event_id);
    }
    let mut done = None;
    for (position, ack) in pending {
        match ack {
            None => done = Some(position),
            Some(ack) => match ack.await {
                Ok(_) => done = Some(position),
                Err(e) => {
                    failure = Some(e.kind());
                    break;
                }
            },
        }
    }
    (done, failure)
}

/// After a restart: everything up to the stream's newest message is already
/// published, whatever this node managed to record before it stopped.
async fn reconcile(
    state: &AppState,
    stream: &async_nats::jetstream::stream::Stream,
) -> anyhow::Result<()> {
    let last = stream.get_info().await?.state.last_sequence;
    if last == 0 {
        return Ok(());
    }
    let message = stream.get_raw_message(last).await?;
    let Ok(envelope) = serde_json::from_slice::<EventEnvelope>(&message.payload) else {
        return Ok(());
    };
    let (_, acked) = state.store.outbox_positions()?;
    // Only a few windows can be published but unrecorded.
    let horizon = state.settings.nats.publish_window.saturating_mul(4);
    let entries = state.store.outbox_after(acked, horizon)?;
    if let Some(entry) = entries.iter().find(|e| e.event_id == envelope.event_id) {
        let mut batch = WriteBatch::new();
        batch.ack_outbox(entry.position);
        state.store.write(batch).await?;
        tracing::info!(
            through = entry.position,
            "outbox: events the stream already held are recorded as published"
        );
    }
    Ok(())
}
