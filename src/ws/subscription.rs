//! Channel subscriptions: permission check, replay after `since`, then live
//! events, with gaps filled from the store's channel history.

use std::sync::Arc;

use medrelay_actors::channels;
use medrelay_actors::hub::Published;
use medrelay_actors::store::Store;
use medrelay_protocol::ws::{Reply, Subscribed};
use medrelay_protocol::{Channel, ErrorBody, ErrorCode};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::outbound::{Frame, Outbox};
use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;

/// Checks permission, queues the reply (and any replayed events), and spawns
/// the task that forwards live events.
///
/// # Errors
/// [`ApiError::Forbidden`] when the caller may not see the channel; an
/// internal error when the store cannot be read.
pub fn start(
    state: &Arc<AppState>,
    principal: &Principal,
    out: &Outbox,
    id: Option<String>,
    channel: Channel,
    since: Option<u64>,
) -> Result<JoinHandle<()>, ApiError> {
    if !channels::may_subscribe(&principal.user_id, principal.role, &channel) {
        return Err(ApiError::Forbidden(format!(
            "you may not subscribe to {channel}"
        )));
    }
    // Listen first, then read the head: an event committed in between is
    // both in the store and in the receiver, and the seq check drops the copy.
    let rx = state.hub.subscribe(&channel);
    let store = &state.store;
    let head = store.channel_head(&channel)?;
    let mut replay = Vec::new();
    let resync = match since {
        None => false,
        Some(since) if since > head => true,
        Some(since) => {
            let (events, _) = store.channel_events(&channel, since, (head - since) as usize)?;
            let complete = events.len() as u64 == head - since
                && events.first().is_none_or(|e| e.seq == since + 1);
            if complete {
                replay = events;
            }
            !complete
        }
    };
    let snapshot = if since.is_none() || resync {
        Some(channels::snapshot(store, &channel)?)
    } else {
        None
    };
    let data = Subscribed {
        channel: channel.clone(),
        seq: head,
        replayed: replay.len() as u64,
        resync,
        snapshot,
    };
    let data = serde_json::to_value(data).map_err(ApiError::internal)?;
    out.reply(Reply::ok(id, data));
    for event in replay {
        let frame = Published::new(channel.clone(), event.seq, event.event).frame;
        if !out.push(Frame::Shared(frame)) {
            break;
        }
    }
    Ok(tokio::spawn(forward(
        rx,
        head,
        channel,
        store.clone(),
        out.clone(),
    )))
}

async fn forward(
    mut rx: tokio::sync::broadcast::Receiver<Arc<Published>>,
    mut last: u64,
    channel: Channel,
    store: Store,
    out: Outbox,
) {
    loop {
        match rx.recv().await {
            Ok(published) => {
                if published.seq <= last {
                    continue;
                }
                if published.seq > last + 1
                    && !catch_up(&store, &channel, &mut last, published.seq - 1, &out)
                {
                    return;
                }
                if !out.push(Frame::Shared(published.frame.clone())) {
                    return;
                }
                last = published.seq;
            }
            Err(RecvError::Lagged(_)) => {
                let head = match store.channel_head(&channel) {
                    Ok(head) => head,
                    Err(e) => {
                        tracing::error!(%channel, error = %e, "could not read channel head");
                        return;
                    }
                };
                if !catch_up(&store, &channel, &mut last, head, &out) {
                    return;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sends the stored events `last+1 ..= upto`; when they are no longer kept,
/// tells the client to subscribe again and ends the subscription.
fn catch_up(store: &Store, channel: &Channel, last: &mut u64, upto: u64, out: &Outbox) -> bool {
    if upto <= *last {
        return true;
    }
    let wanted = upto - *last;
    let events = match store.channel_events(channel, *last, wanted as usize) {
        Ok((events, _)) => events,
        Err(e) => {
            tracing::error!(%channel, error = %e, "could not read channel history");
            Vec::new()
        }
    };
    if events.len() as u64 != wanted || events.first().is_some_and(|e| e.seq != *last + 1) {
        out.reply(Reply::err(
            None,
            ErrorBody::new(
                ErrorCode::ResyncRequired,
                format!("missed events of {channel} are no longer kept; subscribe again"),
            )
            .with_field(channel.to_string()),
        ));
        return false;
    }
    for event in events {
        let seq = event.seq;
        if !out.push(Frame::Shared(
            Published::new(channel.clone(), seq, event.event).frame,
        )) {
            return false;
        }
        *last = seq;
    }
    true
}
