//! `PatientSession`: one per patient with live devices; what it keeps and how
//! it delivers, catches up and takes acknowledgements.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use futures_util::stream;
use jiff::Timestamp;
use medrelay_protocol::notification::DeliveryStatus;
use medrelay_protocol::ws::{Reply, Subscribed};
use medrelay_protocol::{Channel, ErrorBody, ErrorCode, Event, PatientId};

use crate::channels;
use crate::hub::{EventHub, FrameText, Published, RecvError};
use crate::notify::NotificationRecord;
use crate::stats::notifications;
use crate::store::{Store, StoreError, StoredEvent, WriteBatch};
use crate::system::{KeyedActor, Retire, count_restart, guarded};

use super::*;

/// A notification no device has acknowledged.
struct Unacked {
    notification_id: String,
    frame: FrameText,
}

/// One patient's live devices and unacknowledged notifications.
pub struct PatientSession {
    /// Unique in the process; keys this session's presence count.
    uid: u64,
    patient: PatientId,
    channel: Channel,
    store: Store,
    hub: EventHub,
    presence: Presence,
    retire: Retire<PatientSession>,
    devices: HashMap<u64, Arc<dyn DeviceSink>>,
    /// The last seq every device has been sent; `None` until first started.
    seen: Option<u64>,
    /// The last acknowledged seq.
    acked: u64,
    /// seq → notification, oldest first, at most [`MAX_UNACKED`].
    unacked: BTreeMap<u64, Unacked>,
}

impl PatientSession {
    /// A session for the patient whose id is `key`; loads in `started`.
    pub(super) fn new(
        key: &str,
        store: Store,
        hub: EventHub,
        presence: Presence,
        retire: Retire<Self>,
    ) -> Self {
        // [`Sessions`] keys the registry by parsed ids only, so the fallback
        // (a valid id no patient has) is never used.
        let patient = PatientId::parse(key)
            .unwrap_or_else(|_| PatientId::parse("unknown-patient").expect("a literal valid id"));
        Self {
            uid: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            channel: Channel::Patient(patient.clone()),
            patient,
            store,
            hub,
            presence,
            retire,
            devices: HashMap::new(),
            seen: None,
            acked: 0,
            unacked: BTreeMap::new(),
        }
    }

    /// First start: the acknowledgement and the unacknowledged notifications
    /// still in the channel's history.
    fn load(&mut self, head: u64) -> Result<(), StoreError> {
        self.acked = self
            .store
            .get::<AckRecord>(self.patient.as_str())?
            .map_or(0, |a| a.seq);
        let from = self
            .acked
            .max(head.saturating_sub(self.store.channel_history()));
        let (events, _) = self.store.channel_events(&self.channel, from, usize::MAX)?;
        for StoredEvent { seq, event } in events {
            let channel = self.channel.clone();
            let frame = || Published::new(channel, seq, event.clone()).frame;
            self.remember(seq, &event, frame);
        }
        Ok(())
    }

    /// Keeps the event at `seq` if it is an in-app notification not yet
    /// acknowledged; `frame` renders it (only called for those).
    fn remember(&mut self, seq: u64, event: &Event, frame: impl FnOnce() -> FrameText) {
        if seq <= self.acked {
            return;
        }
        if let Event::Notification {
            notification_id, ..
        } = event
        {
            self.unacked.insert(
                seq,
                Unacked {
                    notification_id: notification_id.clone(),
                    frame: frame(),
                },
            );
            while self.unacked.len() > MAX_UNACKED {
                self.unacked.pop_first();
            }
        }
    }

    /// Sends one committed event to every device.
    fn deliver(&mut self, seq: u64, frame: &FrameText) {
        self.devices.retain(|_, sink| sink.push(frame.clone()));
        self.seen = Some(seq);
    }

    /// Sends every device the committed events after `seen` up to `upto`,
    /// from the store. When they are no longer kept, every device is told to
    /// subscribe again and is dropped.
    fn catch_up(&mut self, upto: u64) -> Result<(), StoreError> {
        let seen = self.seen.unwrap_or(upto);
        if upto <= seen {
            return Ok(());
        }
        let owed = channels::replay(&self.store, &self.channel, seen, upto)?;
        if owed.resync {
            let error = ErrorBody::new(
                ErrorCode::ResyncRequired,
                format!(
                    "missed events of {} are no longer kept; subscribe again",
                    self.channel
                ),
            )
            .with_field(self.channel.to_string());
            for sink in self.devices.values() {
                sink.reply(Reply::err(None, error.clone()));
            }
            self.devices.clear();
            self.seen = Some(upto);
            return Ok(());
        }
        for StoredEvent { seq, event } in owed.events {
            let frame = Published::new(self.channel.clone(), seq, event.clone()).frame;
            self.remember(seq, &event, || frame.clone());
            self.deliver(seq, &frame);
        }
        Ok(())
    }

    fn attach(&mut self, msg: Attach) -> Result<(), SessionError> {
        let head = self.store.channel_head(&self.channel)?;
        // Bring the devices already here (and `unacked`) up to `head` first,
        // so the new device joins at the same point as every other.
        self.catch_up(head)?;
        let Attach {
            device,
            sink,
            request_id,
            since,
        } = msg;
        let (replay, resync) = match since {
            None => (Vec::new(), false),
            Some(since) => {
                let owed = channels::replay(&self.store, &self.channel, since, head)?;
                (owed.events, owed.resync)
            }
        };
        let fresh = since.is_none() || resync;
        let snapshot = if fresh {
            Some(channels::snapshot(&self.store, &self.channel)?)
        } else {
            None
        };
        let owed: Vec<FrameText> = if fresh {
            self.unacked.values().map(|u| u.frame.clone()).collect()
        } else {
            replay
                .into_iter()
                .map(|e| Published::new(self.channel.clone(), e.seq, e.event).frame)
                .collect()
        };
        let data = Subscribed {
            channel: self.channel.clone(),
            seq: head,
            replayed: if fresh { 0 } else { owed.len() as u64 },
            resync,
            snapshot,
            unacknowledged: Some(self.unacked.len() as u64),
        };
        let data = serde_json::to_value(data).map_err(|_| SessionError::Internal)?;
        if !sink.reply(Reply::ok(request_id, data)) {
            return Ok(());
        }
        for frame in owed {
            if !sink.push(frame) {
                return Ok(());
            }
        }
        self.devices.insert(device, sink);
        self.seen = Some(head);
        self.presence
            .set(&self.patient, self.uid, self.devices.len());
        Ok(())
    }

    /// Publishes the device count, and stops the session once no device is
    /// left.
    fn stop_if_empty(&mut self, ctx: &mut Context<Self>) {
        self.presence
            .set(&self.patient, self.uid, self.devices.len());
        if self.devices.is_empty() {
            self.retire.now(&ctx.address());
            ctx.stop();
        }
    }
}

impl Actor for PatientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A restart can also revive a session that had just retired, when a
        // late message (an `Attach` racing its last `Detach`) kept its
        // address alive. It takes its key back if no newer session holds
        // it, and otherwise serves its own devices until they leave.
        self.retire.reinstate(&ctx.address());
        // Listen before reading the head, so nothing falls in between.
        let rx = self.hub.subscribe(&self.channel);
        ctx.add_stream(stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Err(RecvError::Closed) => None,
                item => Some((item, rx)),
            }
        }));
        let loaded = self.store.channel_head(&self.channel).and_then(|head| {
            if self.seen.is_none() {
                self.load(head)?;
                self.seen = Some(head);
            }
            // After a restart: what was committed while the session was down.
            self.catch_up(head)
        });
        if let Err(e) = loaded {
            tracing::error!(patient = %self.patient, error = %e, "patient session could not read its channel");
        }
        // `stopped` cleared the count if this is a restart.
        self.presence
            .set(&self.patient, self.uid, self.devices.len());
        // A session whose first socket never attached (it closed while the
        // session started) must not linger.
        ctx.run_interval(IDLE_CHECK, |act, ctx| act.stop_if_empty(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.presence.set(&self.patient, self.uid, 0);
    }
}

impl Supervised for PatientSession {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Counted when there was something to keep: a session with no
        // device was revived after retiring, or had nothing to lose.
        if !self.devices.is_empty() {
            count_restart(Self::KIND);
        }
    }
}

impl KeyedActor for PatientSession {
    const KIND: &'static str = "patient_session";
}

impl StreamHandler<Result<Arc<Published>, RecvError>> for PatientSession {
    fn handle(&mut self, item: Result<Arc<Published>, RecvError>, ctx: &mut Context<Self>) {
        guarded(
            self,
            ctx,
            || (),
            |act, ctx| {
                let had_devices = !act.devices.is_empty();
                let upto = match &item {
                    Ok(published) => published.seq.saturating_sub(1),
                    Err(_) => act.store.channel_head(&act.channel).unwrap_or(0),
                };
                if let Err(e) = act.catch_up(upto) {
                    tracing::error!(patient = %act.patient, error = %e, "patient session could not catch up");
                }
                if let Ok(published) = item
                    && act.seen.is_none_or(|seen| published.seq > seen)
                {
                    act.remember(published.seq, &published.event, || published.frame.clone());
                    act.deliver(published.seq, &published.frame);
                }
                if had_devices {
                    // The last device's socket turned out to be gone.
                    act.stop_if_empty(ctx);
                }
            },
        );
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The hub is gone: the process is stopping.
    }
}

impl Handler<Attach> for PatientSession {
    type Result = Result<Addr<PatientSession>, SessionError>;

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(SessionError::Internal),
            |act, ctx| {
                let attached = act.attach(msg);
                act.stop_if_empty(ctx);
                attached.map(|()| ctx.address())
            },
        )
    }
}

impl Handler<Detach> for PatientSession {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Context<Self>) {
        self.devices.remove(&msg.device);
        self.stop_if_empty(ctx);
    }
}

impl Handler<Ack> for PatientSession {
    type Result = AtomicResponse<Self, Result<Acked, SessionError>>;

    fn handle(&mut self, msg: Ack, ctx: &mut Context<Self>) -> Self::Result {
        let prepared = guarded(
            self,
            ctx,
            || Err(SessionError::Internal),
            |act, _| act.prepare_ack(msg.seq),
        );
        let (batch, covered) = match prepared {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                let done = Acked {
                    seq: self.acked,
                    acknowledged: 0,
                    unacknowledged: self.unacked.len(),
                };
                return AtomicResponse::new(Box::pin(fut::ready(Ok(done))));
            }
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let store = self.store.clone();
        let seq = msg.seq;
        AtomicResponse::new(Box::pin(
            async move { store.write(batch).await }
                .into_actor(self)
                .map(move |written, act, _| {
                    written.map_err(|e| SessionError::Storage(Fault::new(e)))?;
                    act.acked = act.acked.max(seq);
                    act.unacked.retain(|s, _| *s > seq);
                    Ok(Acked {
                        seq: act.acked,
                        acknowledged: covered,
                        unacknowledged: act.unacked.len(),
                    })
                }),
        ))
    }
}

impl PatientSession {
    /// The write for an acknowledgement up to `seq`: the new mark, and on
    /// each covered notification when it was acknowledged (the engagement
    /// figures) and `delivered` if it was only `sent` (no device was live
    /// when it was recorded). `None` when there is nothing new to
    /// acknowledge.
    fn prepare_ack(&mut self, seq: u64) -> Result<Option<(WriteBatch, usize)>, SessionError> {
        let head = self.store.channel_head(&self.channel)?;
        if seq > head {
            return Err(SessionError::AheadOfChannel { seq, head });
        }
        if seq <= self.acked {
            return Ok(None);
        }
        let now = Timestamp::now();
        let mut batch = WriteBatch::new();
        let mut covered = 0;
        for unacked in self.unacked.range(..=seq).map(|(_, u)| u) {
            covered += 1;
            let Some(mut record) = self
                .store
                .get::<NotificationRecord>(&unacked.notification_id)?
            else {
                continue;
            };
            if record.acknowledged_at.is_some() {
                continue;
            }
            record.acknowledged_at = Some(now);
            if record.status == DeliveryStatus::Sent {
                record.push_status(
                    DeliveryStatus::Delivered,
                    now,
                    None,
                    Some("acknowledged by the patient's device".into()),
                );
            }
            notifications::put(&mut batch, self.store.stats_zone(), &record);
        }
        batch.put(self.patient.as_str(), &AckRecord { seq, at: now });
        Ok(Some((batch, covered)))
    }
}

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<InjectPanic> for PatientSession {
    type Result = Result<(), SessionError>;

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || Err(SessionError::Internal),
            |act, _| panic!("injected fault for {}", act.patient),
        )
    }
}
