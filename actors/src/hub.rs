//! In-memory fan-out of committed events to live subscribers.
//!
//! The store writer publishes each event here after its commit, in seq order.
//! Each channel with listeners has one `tokio::sync::broadcast` sender; the
//! frame is rendered to JSON once and shared by every subscriber. A subscriber
//! that falls more than `capacity` events behind sees `Lagged` and catches up
//! from the store's channel history, so the hub never holds more than
//! `capacity` frames per channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use medrelay_protocol::ws::{EventFrame, EventTag};
use medrelay_protocol::{Channel, Event};
use tokio::sync::broadcast;

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
    pub frame: Arc<str>,
    /// The frame without patients' identities, for viewers who may not see
    /// them; `None` when the event names no patient.
    pub redacted: Option<Arc<str>>,
}

impl Published {
    /// Renders the frames for an event.
    pub fn new(channel: Channel, seq: u64, event: Event) -> Self {
        let render = |event: Event| -> Arc<str> {
            let frame = EventFrame {
                tag: EventTag::Event,
                channel: channel.clone(),
                seq,
                event,
            };
            serde_json::to_string(&frame)
                .expect("event frames serialise to JSON")
                .into()
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
    pub fn frame_for(&self, reveal_patients: bool) -> Arc<str> {
        match (&self.redacted, reveal_patients) {
            (Some(redacted), false) => redacted.clone(),
            _ => self.frame.clone(),
        }
    }
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    channels: Arc<Mutex<HashMap<Channel, broadcast::Sender<Arc<Published>>>>>,
    capacity: usize,
}

impl EventHub {
    /// A hub whose channels buffer up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Starts listening to `channel`. Subscribe before reading the channel's
    /// head from the store, so no event can fall between the two.
    pub fn subscribe(&self, channel: &Channel) -> broadcast::Receiver<Arc<Published>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(channel.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Hands committed events to their listeners; channels nobody listens to
    /// cost one map lookup and are forgotten.
    pub fn publish(&self, events: Vec<(Channel, u64, Event)>) {
        if events.is_empty() {
            return;
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for (channel, seq, event) in events {
            let Some(sender) = channels.get(&channel) else {
                continue;
            };
            if sender.receiver_count() == 0 {
                channels.remove(&channel);
                continue;
            }
            let _ = sender.send(Arc::new(Published::new(channel, seq, event)));
        }
    }

    /// Forgets channels whose subscribers have all gone (called periodically;
    /// `publish` also forgets them as it meets them).
    pub fn prune(&self) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, sender| sender.receiver_count() > 0);
    }

    /// How many channels have a live sender (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}
