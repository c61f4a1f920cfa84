//! A channel's actor: takes notification ids from its mailbox and sends each
//! one through the provider, at the configured pace and concurrency, behind
//! the provider's circuit breaker.
//!
//! The mailbox is the channel's bounded queue (`notifications.delivery.
//! queue_capacity`): the actor holds it shut while it waits for the pace and
//! for a free send slot, so ids pile up there and no further; a full mailbox
//! leaves the id pending in the store for the next sweep. Each send runs as
//! its own task on the actor's thread, so a slow provider call never holds
//! the mailbox, and a panic in one is caught and leaves the notification
//! pending.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use medrelay_actors::notify::NotificationRecord;
use medrelay_actors::store::{Table, WriteBatch};
use medrelay_actors::system::count_restart;
use medrelay_protocol::notification::{DeliveryStatus, NotificationChannel};
use tokio::sync::OwnedSemaphorePermit;

use super::Notifier;
use super::providers::{Outgoing, Receipt, SendError};

/// What happens to a notification after an attempt.
enum Next {
    /// The lane is done with it.
    Done,
    /// Try again after this long.
    RetryAfter(Duration),
}

/// Send notification `id` (pending in the store) on the actor's channel.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub String);

/// One external channel (e-mail, SMS or push), supervised.
pub struct ChannelActor {
    n: Arc<Notifier>,
    channel: NotificationChannel,
    /// The id waiting for the pace or a send slot, if any: a restart
    /// drops that wait, and the id must then go back to the store's sweep.
    gating: Option<String>,
}

impl ChannelActor {
    /// The actor for `channel`'s lane of `n`.
    pub fn new(n: Arc<Notifier>, channel: NotificationChannel) -> Self {
        Self {
            n,
            channel,
            gating: None,
        }
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.n.settings.delivery.queue_capacity);
    }
}

impl Supervised for ChannelActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        count_restart("notification_channel");
        if let Some(id) = self.gating.take() {
            self.n.release(self.channel, &id);
            self.n.note_overflow();
        }
    }
}

impl Handler<Deliver> for ChannelActor {
    type Result = ();

    fn handle(&mut self, Deliver(id): Deliver, ctx: &mut Context<Self>) {
        let n = self.n.clone();
        let channel = self.channel;
        self.gating = Some(id.clone());
        // `wait` holds the mailbox until the pace allows a send and a slot
        // is free: the backpressure that keeps the queue bounded.
        ctx.wait(
            async move {
                let lane = n.lane(channel)?;
                lane.limiter.until_ready().await;
                lane.slots.clone().acquire_owned().await.ok()
            }
            .into_actor(self)
            .map(move |slot, act, _| {
                act.gating = None;
                match slot {
                    Some(slot) => {
                        actix::spawn(send(act.n.clone(), channel, id, slot));
                    }
                    None => act.n.release(channel, &id),
                }
            }),
        );
    }
}

/// One send and what follows it: done, or a retry after a backoff.
async fn send(
    n: Arc<Notifier>,
    channel: NotificationChannel,
    id: String,
    slot: OwnedSemaphorePermit,
) {
    // A panic in one send must not take the lane down: the notification
    // stays pending in the store and the next sweep hands it over again.
    let next = AssertUnwindSafe(attempt(&n, channel, &id))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(notification = %id, "a send panicked; it stays pending");
            n.note_overflow();
            Next::Done
        });
    drop(slot);
    match next {
        Next::Done => n.release(channel, &id),
        Next::RetryAfter(wait) => {
            tokio::time::sleep(wait).await;
            // Waits for room in the mailbox, unlike a first hand-over.
            let delivered = match n.lane(channel).and_then(|lane| lane.actor.get()) {
                Some(actor) => actor.send(Deliver(id.clone())).await.is_ok(),
                None => false,
            };
            if !delivered {
                n.release(channel, &id);
            }
        }
    }
}

/// One attempt at sending notification `id`.
async fn attempt(n: &Notifier, channel: NotificationChannel, id: &str) -> Next {
    match try_attempt(n, channel, id).await {
        Ok(next) => next,
        Err(e) => {
            // The store failed; the entry is still pending, so try later.
            tracing::error!(notification = %id, error = %e, "could not record a send");
            Next::RetryAfter(Duration::from_secs(5))
        }
    }
}

async fn try_attempt(
    n: &Notifier,
    channel: NotificationChannel,
    id: &str,
) -> Result<Next, super::NotifyError> {
    let Some(lane) = n.lane(channel) else {
        return Ok(Next::Done);
    };
    let Some(mut record) = n.record(id)? else {
        forget_pending(n, id).await?;
        return Ok(Next::Done);
    };
    if record.channel != channel || lane_done_with(&record) {
        forget_pending(n, id).await?;
        return Ok(Next::Done);
    }
    let d = &n.settings.delivery;
    if record.in_flight {
        // The last run stopped during this send: it may have gone out.
        if let Some(receipt) = lane.provider.already_sent(id).await {
            tracing::info!(notification = %id, "send interrupted by a restart had gone through");
            finish_ok(n, record, receipt, "found after a restart").await?;
            return Ok(Next::Done);
        }
        tracing::warn!(
            notification = %id,
            "send interrupted by a restart; sending once more with the same idempotency key"
        );
    }
    let text = match record.text(&n.vault) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(notification = %id, error = %e, "a notification's text does not open");
            fail_final(n, record, "its sealed text does not open".into()).await?;
            return Ok(Next::Done);
        }
    };
    if !lane.breaker.allow() {
        record.attempts += 1;
        return fail_transient(n, record, "circuit open: the provider is failing".into()).await;
    }
    record.attempts += 1;
    record.in_flight = true;
    let mut batch = WriteBatch::new();
    n.put(&mut batch, &record);
    n.store.write(batch).await?;

    let message = Outgoing {
        id: id.to_owned(),
        to: text.recipient.clone(),
        calendar: n.invitation(&record, &text.recipient),
        subject: text.subject,
        body: text.body,
    };
    let timeout = Duration::from_secs(d.send_timeout_secs);
    let outcome = match tokio::time::timeout(timeout, lane.provider.send(&message)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(SendError::Transient(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
    };
    record.in_flight = false;
    match outcome.map_err(|e| without_address(e, &text.recipient)) {
        Ok(receipt) => {
            lane.breaker.success();
            finish_ok(n, record, receipt, "").await?;
            Ok(Next::Done)
        }
        Err(SendError::Transient(reason)) => {
            lane.breaker.failure();
            fail_transient(n, record, reason).await
        }
        Err(SendError::Permanent {
            reason,
            unregistered,
        }) => {
            // The provider answered, so it is healthy.
            lane.breaker.success();
            if unregistered && let Some(user) = &record.user_id {
                n.forget_device(user, &text.recipient).await;
            }
            fail_final(n, record, reason).await?;
            Ok(Next::Done)
        }
    }
}

/// Whether the lane has nothing left to do for it.
fn lane_done_with(record: &NotificationRecord) -> bool {
    record.status.is_final() || (record.status == DeliveryStatus::Sent && !record.in_flight)
}

/// Whether the record reached a final status while this send was under
/// way (a provider callback can arrive before the send's own answer); its
/// outcome then stands and this one is dropped. Otherwise `record` takes up
/// the stored text, which is what it writes back.
fn settled_meanwhile(
    n: &Notifier,
    record: &mut NotificationRecord,
) -> Result<bool, super::NotifyError> {
    match n.record(&record.notification_id)? {
        Some(stored) if stored.status.is_final() => Ok(true),
        Some(stored) => {
            // A key rotation may have re-sealed the text during the send:
            // writing back the copy read before it would bring back a seal
            // whose key is about to be retired.
            record.text = stored.text;
            Ok(false)
        }
        None => Ok(false),
    }
}

async fn forget_pending(n: &Notifier, id: &str) -> Result<(), super::NotifyError> {
    let mut batch = WriteBatch::new();
    batch.delete(Table::NotificationQueue, id);
    n.store.write(batch).await?;
    Ok(())
}

async fn finish_ok(
    n: &Notifier,
    mut record: NotificationRecord,
    receipt: Receipt,
    note: &str,
) -> Result<(), super::NotifyError> {
    if settled_meanwhile(n, &mut record)? {
        return Ok(());
    }
    let now = n.clock.now();
    record.in_flight = false;
    let (status, detail) = if receipt.delivered {
        (DeliveryStatus::Delivered, "written to the outbox folder")
    } else {
        (DeliveryStatus::Sent, "accepted by the provider")
    };
    let detail = if note.is_empty() {
        detail.to_owned()
    } else {
        format!("{detail}; {note}")
    };
    record.push_status(status, now, receipt.provider_message_id, Some(detail));
    let mut batch = WriteBatch::new();
    batch.delete(Table::NotificationQueue, record.notification_id.as_str());
    n.put(&mut batch, &record);
    n.store.write(batch).await?;
    metrics::counter!("notifications_sent_total", "channel" => record.channel.as_str())
        .increment(1);
    lateness(&record, now);
    Ok(())
}

fn lateness(record: &NotificationRecord, now: jiff::Timestamp) {
    if let Some(due) = record.due_at {
        let late = now.duration_since(due).as_secs_f64().max(0.0);
        metrics::histogram!("reminder_delivery_lateness_seconds", "channel" => record.channel.as_str())
            .record(late);
    }
}

/// A transient failure: retry after a backoff, or give up after the last
/// attempt (which may start a fallback).
async fn fail_transient(
    n: &Notifier,
    mut record: NotificationRecord,
    reason: String,
) -> Result<Next, super::NotifyError> {
    if settled_meanwhile(n, &mut record)? {
        return Ok(Next::Done);
    }
    let d = &n.settings.delivery;
    if record.attempts >= d.max_attempts {
        let reason = format!("gave up after {} attempts: {reason}", record.attempts);
        fail_final(n, record, reason).await?;
        return Ok(Next::Done);
    }
    let wait = backoff(
        record.attempts,
        Duration::from_millis(d.backoff_initial_ms),
        Duration::from_millis(d.backoff_max_ms),
    );
    tracing::warn!(
        notification = %record.notification_id,
        channel = %record.channel,
        attempt = record.attempts,
        retry_in_ms = wait.as_millis() as u64,
        error = %reason,
        "send failed; will retry"
    );
    let now = n.clock.now();
    record.in_flight = false;
    record.push_status(
        DeliveryStatus::Failed,
        now,
        None,
        Some(format!(
            "attempt {} of {}: {reason}; retrying in {} ms",
            record.attempts,
            d.max_attempts,
            wait.as_millis()
        )),
    );
    let mut batch = WriteBatch::new();
    n.put(&mut batch, &record);
    n.store.write(batch).await?;
    metrics::counter!("notification_retries_total", "channel" => record.channel.as_str())
        .increment(1);
    Ok(Next::RetryAfter(wait))
}

/// A final failure: `undeliverable`, and the next fallback channel, if any.
async fn fail_final(
    n: &Notifier,
    mut record: NotificationRecord,
    reason: String,
) -> Result<(), super::NotifyError> {
    if settled_meanwhile(n, &mut record)? {
        return Ok(());
    }
    let now = n.clock.now();
    tracing::warn!(
        notification = %record.notification_id,
        channel = %record.channel,
        error = %reason,
        "notification undeliverable"
    );
    record.in_flight = false;
    record.push_status(DeliveryStatus::Undeliverable, now, None, Some(reason));
    let mut batch = WriteBatch::new();
    let follow = n.fallback(&mut batch, &mut record, now);
    batch.delete(Table::NotificationQueue, record.notification_id.as_str());
    n.put(&mut batch, &record);
    n.store.write(batch).await?;
    metrics::counter!("notifications_undeliverable_total", "channel" => record.channel.as_str())
        .increment(1);
    if let Some((channel, id)) = follow {
        n.enqueue(channel, &id);
    }
    Ok(())
}

/// Exponential backoff with full jitter in its upper half: attempt 1 waits
/// about `initial`, each later one about twice as long, capped at `max`.
fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let base = exp.min(max);
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes).unwrap_or_default();
    let jitter = f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX);
    base.mul_f64(0.5 + 0.5 * jitter)
}

/// `error` with `address` taken out of its text. Providers often repeat
/// the address in their answers ("The 'To' number +1555... is not a valid
/// phone number", "550 <ann@example.org>: no such user"), and that text is
/// kept in the clear in the delivery history (shown to the sender and the
/// recipient, unmasked) and in the log.
fn without_address(mut error: SendError, address: &str) -> SendError {
    let (SendError::Transient(reason) | SendError::Permanent { reason, .. }) = &mut error;
    if !address.is_empty() && reason.contains(address) {
        *reason = reason.replace(address, "<recipient>");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_answer_loses_the_address_it_repeats() {
        let twilio = SendError::Permanent {
            reason: "Twilio 400 (21211): The 'To' number +15557770123 is not a valid phone number."
                .into(),
            unregistered: false,
        };
        let kept = without_address(twilio, "+15557770123").to_string();
        assert!(!kept.contains("5557770123"), "{kept}");
        assert!(
            kept.contains("The 'To' number <recipient> is not"),
            "{kept}"
        );
        let smtp = SendError::Transient("450 <ann@example.org>: mailbox busy".into());
        assert_eq!(
            without_address(smtp, "ann@example.org").to_string(),
            "450 <<recipient>>: mailbox busy"
        );
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..10 {
            let b = backoff(attempt, i, m);
            let full = i.saturating_mul(1 << (attempt - 1)).min(m);
            assert!(b >= full / 2 && b <= full, "attempt {attempt}: {b:?}");
        }
    }
}
