//! Channel subscriptions: permission check, replay after `since`, then live
//! events, with gaps filled from the store's channel history. Viewers who may
//! not see patients (patients and displays on a doctor's board) get the
//! redacted frame of every event.

use std::sync::Arc;

use futures_util::future::AbortHandle;
use medrelay_actors::channels::{self, Viewer};
use medrelay_actors::hub::{Listener, Published, RecvError};
use medrelay_actors::schedule::messages::GetBoard;
use medrelay_actors::store::{Store, StoredEvent};
use medrelay_protocol::ws::{Reply, Subscribed};
use medrelay_protocol::{Channel, ErrorBody, ErrorCode};

use super::outbound::{Frame, Outbox};
use crate::auth::Principal;
use crate::error::AppError;
use crate::nats::replica;
use crate::state::AppState;

/// What a subscriber asked for.
pub struct Request {
    /// The command id to answer.
    pub id: Option<String>,
    /// The channel.
    pub channel: Channel,
    /// Resume after this seq.
    pub since: Option<u64>,
    /// Boards: snapshot dates.
    pub from: Option<jiff::civil::Date>,
    /// Boards: snapshot dates.
    pub to: Option<jiff::civil::Date>,
}

/// Checks permission and existence, queues the reply (and any replayed
/// events), and starts the loop that forwards live events.
///
/// # Errors
/// [`AppError::Forbidden`] when the viewer may not see the channel;
/// [`AppError::NotFound`] when its account, doctor or patient does not exist
/// (checked before the hub allocates anything for it); the board's errors
/// (bad range); an internal error when the store cannot be read.
pub async fn start(
    state: &Arc<AppState>,
    viewer: &Viewer,
    out: &Outbox,
    req: Request,
) -> Result<AbortHandle, AppError> {
    let Request {
        id,
        channel,
        since,
        from,
        to,
    } = req;
    if !channels::may_subscribe(&state.store, viewer, &channel)? {
        return Err(AppError::Forbidden(format!(
            "you may not subscribe to {channel}"
        )));
    }
    if !channels::exists(&state.store, &channel)? {
        return Err(AppError::NotFound(format!("{channel} does not exist")));
    }
    let reveal = channels::reveals_patients(viewer, &channel);
    // Listen first, then read the state: an event committed in between is
    // both in the state and in the receiver, and the seq check drops the copy.
    let rx = state.hub.subscribe(&channel);
    let store = &state.store;
    let head = store.channel_head(&channel)?;
    let mut replay = Vec::new();
    let resync = match since {
        None => false,
        Some(since) => {
            let owed = channels::replay(store, &channel, since, head)?;
            replay = owed.events;
            owed.resync
        }
    };
    let (snapshot, seq) = if since.is_none() || resync {
        let (snapshot, seq) = snapshot_of(state, &channel, reveal, from, to).await?;
        (Some(snapshot), seq.unwrap_or(head))
    } else {
        (None, head)
    };
    let data = Subscribed {
        channel: channel.clone(),
        seq,
        replayed: replay.len() as u64,
        resync,
        snapshot,
        unacknowledged: None,
    };
    follow(store, out, id, data, replay, reveal, rx)
}

/// [`start`] on a board replica: the owner node decides, with the viewer's
/// own token, whether they may watch the board and see its patients, and
/// gives the snapshot; events come from this node's copy of the owner's.
///
/// # Errors
/// `unavailable` for channels other than boards or when the owner does not
/// answer; the owner's own errors (forbidden, unknown doctor, bad range).
/// This node has no directory to check the doctor against, so the channel's
/// ring exists while the owner is asked; it goes with the listener when the
/// owner refuses.
pub async fn start_on_replica(
    state: &Arc<AppState>,
    principal: &Principal,
    out: &Outbox,
    req: Request,
) -> Result<AbortHandle, AppError> {
    let (Channel::Board(provider), Some(link)) = (&req.channel, &state.nats) else {
        return Err(AppError::Unavailable(
            "this node is a board replica: it serves board:<providerId> channels only".into(),
        ));
    };
    let rx = state.hub.subscribe(&req.channel);
    let store = &state.store;
    let head = store.channel_head(&req.channel)?;
    let owner =
        replica::owner_board(state, link, &principal.token, provider, req.from, req.to).await?;
    let reveal = owner.patients_shown;
    let mut replay = Vec::new();
    // `head` is how far this node's copy has got; the owner may be ahead of it.
    let (resync, last) = match req.since {
        None => (false, owner.seq),
        Some(since) if since > head.max(owner.seq) => (true, owner.seq),
        // Nothing here to replay yet: the copy brings the rest live.
        Some(since) if since >= head => (false, since),
        Some(since) => {
            let owed = channels::replay(store, &req.channel, since, head)?;
            if owed.resync {
                (true, owner.seq)
            } else {
                replay = owed.events;
                (false, head)
            }
        }
    };
    let data = Subscribed {
        channel: req.channel.clone(),
        seq: last,
        replayed: replay.len() as u64,
        resync,
        snapshot: (req.since.is_none() || resync).then_some(owner.snapshot),
        unacknowledged: None,
    };
    follow(store, out, req.id, data, replay, reveal, rx)
}

/// Sends the subscribe reply and the replayed events, then starts the loop
/// that forwards live events after `data.seq`.
fn follow(
    store: &Store,
    out: &Outbox,
    id: Option<String>,
    data: Subscribed,
    replay: Vec<StoredEvent>,
    reveal: bool,
    rx: Listener,
) -> Result<AbortHandle, AppError> {
    let (channel, last) = (data.channel.clone(), data.seq);
    let data = serde_json::to_value(data).map_err(AppError::internal)?;
    out.reply(Reply::ok(id, data));
    for event in replay {
        let frame = Published::new(channel.clone(), event.seq, event.event).frame_for(reveal);
        if !out.push(Frame::Shared(frame)) {
            break;
        }
    }
    let forwarder = Forwarder {
        channel,
        store: store.clone(),
        out: out.clone(),
        reveal,
    };
    Ok(out.follow(forwarder.run(rx, last)))
}

/// A channel's snapshot, and for boards the exact seq it reflects.
async fn snapshot_of(
    state: &AppState,
    channel: &Channel,
    reveal: bool,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<(serde_json::Value, Option<u64>), AppError> {
    match channel {
        Channel::Board(provider) => {
            let board =
                crate::service::schedule::ask(state, provider, GetBoard { from, to }).await??;
            Ok((
                crate::service::schedule::board_json(
                    &board,
                    reveal,
                    state.settings.schedule.min_notice_minutes,
                ),
                Some(board.seq),
            ))
        }
        other => Ok((channels::snapshot(&state.store, other)?, None)),
    }
}

struct Forwarder {
    channel: Channel,
    store: Store,
    out: Outbox,
    reveal: bool,
}

impl Forwarder {
    async fn run(self, mut rx: Listener, mut last: u64) {
        loop {
            match rx.recv().await {
                Ok(published) => {
                    if published.seq <= last {
                        continue;
                    }
                    if published.seq > last + 1 && !self.catch_up(&mut last, published.seq - 1) {
                        return;
                    }
                    if !self
                        .out
                        .push(Frame::Shared(published.frame_for(self.reveal)))
                    {
                        return;
                    }
                    last = published.seq;
                }
                // Lagged, or moved to the channel's grown ring: what was
                // skipped is in the store.
                Err(RecvError::Missed) => {
                    let head = match self.store.channel_head(&self.channel) {
                        Ok(head) => head,
                        Err(e) => {
                            tracing::error!(channel = %self.channel, error = %e, "could not read channel head");
                            return;
                        }
                    };
                    if !self.catch_up(&mut last, head) {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Sends the stored events `last+1 ..= upto`; when they are no longer
    /// kept, tells the client to subscribe again and ends the subscription.
    fn catch_up(&self, last: &mut u64, upto: u64) -> bool {
        if upto <= *last {
            return true;
        }
        let wanted = upto - *last;
        let events = match self
            .store
            .channel_events(&self.channel, *last, wanted as usize)
        {
            Ok((events, _)) => events,
            Err(e) => {
                tracing::error!(channel = %self.channel, error = %e, "could not read channel history");
                Vec::new()
            }
        };
        if events.len() as u64 != wanted || events.first().is_some_and(|e| e.seq != *last + 1) {
            self.out.reply(Reply::err(
                None,
                ErrorBody::new(
                    ErrorCode::ResyncRequired,
                    format!(
                        "missed events of {} are no longer kept; subscribe again",
                        self.channel
                    ),
                )
                .with_field(self.channel.to_string()),
            ));
            return false;
        }
        for event in events {
            let seq = event.seq;
            let frame =
                Published::new(self.channel.clone(), seq, event.event).frame_for(self.reveal);
            if !self.out.push(Frame::Shared(frame)) {
                return false;
            }
            *last = seq;
        }
        true
    }
}
