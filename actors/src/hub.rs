//! In-memory fan-out of committed events to live subscribers.
//!
//! The store writer publishes each event here after its commit, in seq order.
//! A channel is in the hub only while someone listens to it: the first
//! [`EventHub::subscribe`] creates its ring (a `tokio::sync::broadcast`
//! channel) and the last [`Listener`] to go removes it, so a channel nobody
//! watches costs nothing. The frame is rendered to JSON once and shared by
//! every subscriber.
//!
//! # Ring sizes
//! A ring keeps the last events it carried until they are overwritten, and
//! its slots are allocated when it is created. Most channels see an event now
//! and then, so a ring starts small (`initial` events) and doubles, up to
//! `max`, only when a listener falls more than its size behind. A broadcast
//! channel cannot be resized, so growing replaces the channel's sender: the
//! listener that lagged moves to the new ring at once; the others read what
//! is left in the old one, find it closed and move over too.
//!
//! A listener that may have missed events (it lagged, or it moved to a new
//! ring) gets [`RecvError::Missed`] and catches up from the store's channel
//! history, where every event is committed before it is published here; so
//! the hub never loses an event, and never holds more than `max` frames per
//! channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use medrelay_protocol::ws::{EventFrame, EventTag};
use medrelay_protocol::{Channel, ErrorCode, Event};
use serde_json::json;
use tokio::sync::broadcast;

/// A rendered event frame (UTF-8 JSON text), shared by every socket it goes
/// to: cloning it, or handing it to the WebSocket library, copies nothing.
pub type FrameText = bytes::Bytes;

/// One committed event, ready to send.
#[derive(Debug)]
pub struct Published {
    /// Its channel.
    pub channel: Channel,
    /// Its seq in the channel.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// The whole WebSocket frame, rendered once.
    pub frame: FrameText,
    /// The frame without patients' identities, for viewers who may not see
    /// them; `None` when the event names no patient.
    pub redacted: Option<FrameText>,
}

impl Published {
    /// Renders the frames for an event.
    pub fn new(channel: Channel, seq: u64, event: Event) -> Self {
        let render = |event: Event| -> FrameText {
            let frame = EventFrame {
                tag: EventTag::Event,
                channel: channel.clone(),
                seq,
                event,
            };
            match serde_json::to_string(&frame) {
                Ok(text) => text.into(),
                Err(e) => {
                    // Events are plain data and serialise; should one ever
                    // fail, its subscribers start over from a snapshot
                    // rather than miss it silently.
                    tracing::error!(%channel, seq, error = %e, "could not render an event frame");
                    unrenderable(&channel).into()
                }
            }
        };
        let redacted = event.redacted().map(render);
        Self {
            frame: render(event.clone()),
            redacted,
            channel,
            seq,
            event,
        }
    }

    /// The frame a viewer gets: full, or redacted when it may not see patients.
    pub fn frame_for(&self, reveal_patients: bool) -> FrameText {
        match (&self.redacted, reveal_patients) {
            (Some(redacted), false) => redacted.clone(),
            _ => self.frame.clone(),
        }
    }
}

/// The `resync_required` reply sent in place of an event that could not be
/// rendered (built from a `Value`, whose rendering cannot fail).
fn unrenderable(channel: &Channel) -> String {
    json!({
        "ok": false,
        "error": {
            "code": ErrorCode::ResyncRequired.as_str(),
            "message": format!("an event of {channel} could not be sent; subscribe again"),
            "field": channel.to_string(),
        },
    })
    .to_string()
}

/// Why a [`Listener`] has no event to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Events may have been dropped for this listener (it lagged, or its
    /// channel's ring was replaced): read them from the store's history.
    Missed,
    /// The hub is gone (the process is stopping).
    Closed,
}

/// Why [`Listener::try_recv`] has no event to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing was published since the last event.
    Empty,
    /// As [`RecvError::Missed`].
    Missed,
    /// As [`RecvError::Closed`].
    Closed,
}

/// One channel's ring.
struct Ring {
    sender: broadcast::Sender<Arc<Published>>,
    capacity: usize,
    /// Unique in the hub: a listener whose ring has another generation is
    /// on a ring that was replaced.
    generation: u64,
}

struct Shared {
    channels: Mutex<HashMap<Channel, Ring>>,
    initial: usize,
    max: usize,
    generations: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Channel, Ring>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ring(&self, capacity: usize) -> Ring {
        Ring {
            sender: broadcast::channel(capacity).0,
            capacity,
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    shared: Arc<Shared>,
}

impl EventHub {
    /// A hub whose rings hold `capacity` events from the start.
    pub fn new(capacity: usize) -> Self {
        Self::with_rings(capacity, capacity)
    }

    /// A hub whose rings start at `initial` events and grow up to `max`
    /// while their listeners fall behind.
    pub fn with_rings(initial: usize, max: usize) -> Self {
        let max = max.max(1);
        Self {
            shared: Arc::new(Shared {
                channels: Mutex::default(),
                initial: initial.clamp(1, max),
                max,
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// Starts listening to `channel`, creating its ring if nobody listens
    /// yet. Subscribe before reading the channel's head from the store, so no
    /// event can fall between the two; subscribe only to channels that
    /// exist, as the ring lives as long as its listeners.
    pub fn subscribe(&self, channel: &Channel) -> Listener {
        let mut channels = self.shared.lock();
        let ring = channels
            .entry(channel.clone())
            .or_insert_with(|| self.shared.ring(self.shared.initial));
        Listener {
            rx: Some(ring.sender.subscribe()),
            generation: ring.generation,
            channel: channel.clone(),
            hub: Arc::downgrade(&self.shared),
        }
    }

    /// Hands committed events to their listeners; channels nobody listens to
    /// cost one map lookup.
    pub fn publish(&self, events: Vec<(Channel, u64, Event)>) {
        if events.is_empty() {
            return;
        }
        let mut channels = self.shared.lock();
        for (channel, seq, event) in events {
            let Some(ring) = channels.get(&channel) else {
                continue;
            };
            if ring.sender.receiver_count() == 0 {
                channels.remove(&channel);
                continue;
            }
            let _ = ring
                .sender
                .send(Arc::new(Published::new(channel, seq, event)));
        }
    }

    /// Forgets channels whose listeners have all gone. Listeners remove their
    /// channel as the last one leaves; this is a safety net, called
    /// periodically.
    pub fn prune(&self) {
        self.shared
            .lock()
            .retain(|_, ring| ring.sender.receiver_count() > 0);
    }

    /// How many channels have a ring (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// The slots of every ring together (for metrics).
    pub fn ring_slots(&self) -> usize {
        self.shared.lock().values().map(|r| r.capacity).sum()
    }

    /// The size of `channel`'s ring, if it has one.
    pub fn ring_capacity(&self, channel: &Channel) -> Option<usize> {
        self.shared.lock().get(channel).map(|r| r.capacity)
    }
}

/// One subscriber's end of a channel. Dropping the last listener of a
/// channel removes the channel's ring from the hub.
pub struct Listener {
    /// `None` once the hub is gone.
    rx: Option<broadcast::Receiver<Arc<Published>>>,
    generation: u64,
    channel: Channel,
    hub: Weak<Shared>,
}

impl Listener {
    /// The next event, in seq order.
    ///
    /// # Errors
    /// [`RecvError::Missed`] when events may have been skipped (the listener
    /// is already back on its channel's current ring); [`RecvError::Closed`]
    /// once the hub is gone.
    pub async fn recv(&mut self) -> Result<Arc<Published>, RecvError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(RecvError::Closed);
        };
        let outcome = rx.recv().await;
        match outcome {
            Ok(published) => Ok(published),
            Err(broadcast::error::RecvError::Lagged(_)) => Err(self.move_on(true)),
            Err(broadcast::error::RecvError::Closed) => Err(self.move_on(false)),
        }
    }

    /// The next event if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none is; otherwise as [`Listener::recv`].
    pub fn try_recv(&mut self) -> Result<Arc<Published>, TryRecvError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(TryRecvError::Closed);
        };
        let outcome = rx.try_recv();
        let gap = match outcome {
            Ok(published) => return Ok(published),
            Err(broadcast::error::TryRecvError::Empty) => return Err(TryRecvError::Empty),
            Err(broadcast::error::TryRecvError::Lagged(_)) => self.move_on(true),
            Err(broadcast::error::TryRecvError::Closed) => self.move_on(false),
        };
        Err(match gap {
            RecvError::Missed => TryRecvError::Missed,
            RecvError::Closed => TryRecvError::Closed,
        })
    }

    /// After a lag (`lagged`) or the end of this listener's ring: grows the
    /// ring if this listener lagged on the current one and it may grow, and
    /// moves to the channel's current ring (creating one if the channel has
    /// none any more).
    fn move_on(&mut self, lagged: bool) -> RecvError {
        let Some(shared) = self.hub.upgrade() else {
            self.rx = None;
            return RecvError::Closed;
        };
        let mut channels = shared.lock();
        let ring = channels
            .entry(self.channel.clone())
            .or_insert_with(|| shared.ring(shared.initial));
        if lagged && ring.generation == self.generation && ring.capacity < shared.max {
            let capacity = ring.capacity.saturating_mul(2).min(shared.max);
            *ring = shared.ring(capacity);
            metrics::counter!("hub_ring_growths_total").increment(1);
        }
        // A receiver that lagged on a ring already at full size keeps it:
        // it has skipped to the oldest event the ring still holds.
        if !lagged || ring.generation != self.generation {
            self.rx = Some(ring.sender.subscribe());
            self.generation = ring.generation;
        }
        RecvError::Missed
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Let go of the ring first, so the count below no longer includes us.
        self.rx = None;
        let Some(shared) = self.hub.upgrade() else {
            return;
        };
        let mut channels = shared.lock();
        if channels
            .get(&self.channel)
            .is_some_and(|ring| ring.sender.receiver_count() == 0)
        {
            channels.remove(&self.channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use medrelay_protocol::UserId;

    use super::*;

    fn event(i: u64) -> Event {
        Event::SignedIn {
            user_id: UserId::parse(&format!("u{i}")).unwrap(),
            at: jiff::Timestamp::now(),
        }
    }

    fn publish(hub: &EventHub, channel: &Channel, seqs: std::ops::RangeInclusive<u64>) {
        hub.publish(seqs.map(|s| (channel.clone(), s, event(s))).collect());
    }

    #[test]
    fn a_channel_exists_only_while_someone_listens() {
        let hub = EventHub::with_rings(4, 64);
        let a = Channel::Users;
        assert_eq!(hub.channel_count(), 0);
        let first = hub.subscribe(&a);
        let second = hub.subscribe(&a);
        assert_eq!((hub.channel_count(), hub.ring_slots()), (1, 4));
        drop(first);
        assert_eq!(hub.channel_count(), 1);
        drop(second);
        assert_eq!((hub.channel_count(), hub.ring_slots()), (0, 0));
        // Publishing to a channel nobody listens to creates nothing.
        publish(&hub, &a, 1..=3);
        assert_eq!(hub.channel_count(), 0);
    }

    #[test]
    fn a_lagging_listener_grows_the_ring_once_and_everyone_moves_over() {
        let hub = EventHub::with_rings(2, 8);
        let channel = Channel::Users;
        let mut slow = hub.subscribe(&channel);
        let mut other = hub.subscribe(&channel);
        publish(&hub, &channel, 1..=3);
        // Three events in a ring of two: the slow listener lagged.
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Missed);
        assert_eq!(hub.ring_capacity(&channel), Some(4));
        // The other one lagged on the old ring: it moves over, and the ring
        // does not grow twice for the same burst.
        assert_eq!(other.try_recv().unwrap_err(), TryRecvError::Missed);
        assert_eq!(hub.ring_capacity(&channel), Some(4));
        publish(&hub, &channel, 4..=7);
        for listener in [&mut slow, &mut other] {
            let seqs: Vec<u64> = std::iter::from_fn(|| listener.try_recv().ok())
                .map(|p| p.seq)
                .collect();
            assert_eq!(seqs, [4, 5, 6, 7]);
        }
        // Growth stops at the largest size.
        publish(&hub, &channel, 8..=20);
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Missed);
        publish(&hub, &channel, 21..=40);
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Missed);
        assert_eq!(hub.ring_capacity(&channel), Some(8));
        assert_eq!(slow.try_recv().unwrap().seq, 33);
        drop((slow, other));
        assert_eq!(hub.channel_count(), 0);
    }

    #[test]
    fn a_listener_on_a_replaced_ring_reads_it_out_then_moves_over() {
        let hub = EventHub::with_rings(2, 8);
        let channel = Channel::Users;
        let mut slow = hub.subscribe(&channel);
        let mut keeping_up = hub.subscribe(&channel);
        publish(&hub, &channel, 1..=2);
        assert_eq!(keeping_up.try_recv().unwrap().seq, 1);
        assert_eq!(keeping_up.try_recv().unwrap().seq, 2);
        publish(&hub, &channel, 3..=4);
        // The slow one missed 1 and 2: the ring grows and it moves over.
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Missed);
        assert_eq!(hub.ring_capacity(&channel), Some(4));
        // The old ring still holds 3 and 4 for the listener that kept up...
        assert_eq!(keeping_up.try_recv().unwrap().seq, 3);
        assert_eq!(keeping_up.try_recv().unwrap().seq, 4);
        publish(&hub, &channel, 5..=5);
        // ...then it is closed: the listener moves on and is told it may
        // have missed 5, which went to the new ring only.
        assert_eq!(keeping_up.try_recv().unwrap_err(), TryRecvError::Missed);
        publish(&hub, &channel, 6..=6);
        assert_eq!(keeping_up.try_recv().unwrap().seq, 6);
        assert_eq!(slow.try_recv().unwrap().seq, 5);
        assert_eq!(slow.try_recv().unwrap().seq, 6);
    }

    #[test]
    fn listeners_outliving_the_hub_are_closed() {
        let hub = EventHub::new(4);
        let mut listener = hub.subscribe(&Channel::Users);
        drop(hub);
        assert_eq!(listener.try_recv().unwrap_err(), TryRecvError::Closed);
        assert_eq!(listener.try_recv().unwrap_err(), TryRecvError::Closed);
    }
}
