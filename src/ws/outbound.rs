//! A socket's bounded outbound queue and the task that writes it out.
//!
//! The same task runs the socket's subscriptions (see [`Outbox::follow`]):
//! an event then wakes one task per socket, the one that writes it, instead
//! of a forwarding task that hands it on to the writer. With a thousand
//! sockets on a board, that second wake-up was what separated medrelay's
//! fan-out from a plain broadcast.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{AbortHandle, abortable};
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WireFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::Socket;
use medrelay_actors::hub::FrameText;
use medrelay_actors::session::DeviceSink;
use medrelay_protocol::ws::{Reply, ServerFrame, close};
use tokio::sync::{mpsc, watch};

/// Text longer than this goes out as a fragmented message: tungstenite keeps
/// its write buffer at the size of the largest frame it has written, so one
/// big board snapshot would otherwise pin that much memory to the socket for
/// its whole life.
pub const FRAGMENT: usize = 2 * 1024;

/// Sent in place of a reply that could not be rendered.
const UNRENDERABLE_REPLY: &str =
    r#"{"ok":false,"error":{"code":"internal","message":"the reply could not be rendered"}}"#;

/// How long the final close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One frame waiting to be written.
pub enum Frame {
    /// A reply or a frame rendered for this socket.
    Text(String),
    /// An event frame rendered once and shared by every subscriber.
    Shared(FrameText),
    /// A heartbeat ping.
    Ping,
}

/// A subscription's forwarding loop (see [`Outbox::follow`]).
type Follower = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Forwarding loops handed to the writer task and not yet running. A plain
/// list and a wake-up rather than a channel: a socket that never subscribes
/// allocates nothing for it.
#[derive(Default)]
struct NewFollowers {
    waiting: std::sync::Mutex<Vec<Follower>>,
    added: tokio::sync::Notify,
}

impl NewFollowers {
    fn add(&self, follower: Follower) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(follower);
        // Stored if the writer is busy: its next wait returns at once.
        self.added.notify_one();
    }

    fn take(&self) -> Vec<Follower> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Why and how the socket is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The close code.
    pub code: u16,
    /// The reason sent with it.
    pub reason: &'static str,
}

/// The sending side of a socket's queue; cheap to clone into forwarders.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    /// Subscriptions' forwarding loops, for the writer task to run. Apart
    /// from the frames so that starting one never takes a frame's place in
    /// the bounded queue; there are at most `max_subscriptions` per socket.
    followers: Arc<NewFollowers>,
    closer: Arc<watch::Sender<Option<Close>>>,
}

impl Outbox {
    /// Queues a frame. A full queue means the client is not reading: the
    /// socket is closed with 4008 and `false` is returned, as it is once the
    /// socket is closing for any reason.
    pub fn push(&self, frame: Frame) -> bool {
        if self.closer.borrow().is_some() {
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("ws_slow_consumer_closes_total").increment(1);
                tracing::info!("closing a WebSocket whose client does not read (queue full)");
                self.close(close::SLOW_CONSUMER, "outbound queue full: read faster");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply.
    pub fn reply(&self, reply: Reply) -> bool {
        let text = serde_json::to_string(&ServerFrame::Reply(reply)).unwrap_or_else(|e| {
            // Replies are plain data and serialise; should one ever fail,
            // the client still gets an answer and the socket stays up.
            tracing::error!(error = %e, "could not render a WebSocket reply");
            UNRENDERABLE_REPLY.to_owned()
        });
        self.push(Frame::Text(text))
    }

    /// Runs `forward` (a loop that pushes a channel's events into this
    /// outbox) on the socket's writer task; what it pushes goes out after
    /// everything queued before this call. The returned handle ends it; it
    /// also ends with the socket.
    pub fn follow(&self, forward: impl Future<Output = ()> + Send + 'static) -> AbortHandle {
        let (forward, handle) = abortable(forward);
        self.followers.add(Box::pin(async move {
            let _ = forward.await;
        }));
        handle
    }

    /// Asks the writer to close the socket (the first reason given wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        self.closer.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(Close { code, reason });
                true
            } else {
                false
            }
        });
    }

    /// Resolves once a close was requested.
    pub async fn closing(&self) {
        close_requested(&mut self.closer.subscribe()).await;
    }
}

/// Creates the queue and spawns its writer; returns the outbox and the writer's handle.
pub fn spawn_writer(
    sink: SplitSink<Socket, Message>,
    capacity: usize,
) -> (Outbox, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let followers = Arc::new(NewFollowers::default());
    let (closer, close_rx) = watch::channel(None);
    let outbox = Outbox {
        tx,
        followers: followers.clone(),
        closer: Arc::new(closer),
    };
    let handle = tokio::spawn(write_loop(sink, rx, followers, close_rx));
    (outbox, handle)
}

/// Resolves once a close is requested (drops the watch guard before returning).
async fn close_requested(rx: &mut watch::Receiver<Option<Close>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::Receiver<Frame>,
    new_followers: Arc<NewFollowers>,
    mut close_rx: watch::Receiver<Option<Close>>,
) {
    let mut followers = FuturesUnordered::new();
    'frames: loop {
        let frame = tokio::select! {
            biased;
            () = close_requested(&mut close_rx) => break 'frames,
            // Followers run here and push their events into `rx`; a
            // follower that ends (its subscription gone) is simply dropped.
            () = new_followers.added.notified() => {
                followers.extend(new_followers.take());
                continue 'frames;
            }
            Some(()) = followers.next(), if !followers.is_empty() => continue 'frames,
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break 'frames,
            },
        };
        let sent = match frame {
            Frame::Text(text) => send_text(&mut sink, &mut close_rx, Bytes::from(text)).await,
            Frame::Shared(text) => send_text(&mut sink, &mut close_rx, text).await,
            Frame::Ping => send(&mut sink, &mut close_rx, Message::Ping(Bytes::new())).await,
        };
        match sent {
            Ok(()) => {}
            Err(Stop::Closing) => break 'frames,
            Err(Stop::Broken) => return,
        }
    }
    let close = *close_rx.borrow();
    if let Some(Close { code, reason }) = close {
        metrics::counter!("ws_closes_total", "code" => code.to_string()).increment(1);
        let frame = Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Why a send did not happen.
enum Stop {
    /// A close was requested: send the close frame.
    Closing,
    /// The connection failed: nothing more can be sent.
    Broken,
}

/// Sends `message`. A client that stops reading blocks the send once TCP
/// buffers are full; a close request must still get through, so race them.
async fn send(
    sink: &mut SplitSink<Socket, Message>,
    close_rx: &mut watch::Receiver<Option<Close>>,
    message: Message,
) -> Result<(), Stop> {
    tokio::select! {
        biased;
        () = close_requested(close_rx) => Err(Stop::Closing),
        sent = sink.send(message) => sent.map_err(|_| Stop::Broken),
    }
}

/// Sends `text` as one message (fragmented when long).
async fn send_text(
    sink: &mut SplitSink<Socket, Message>,
    close_rx: &mut watch::Receiver<Option<Close>>,
    text: Bytes,
) -> Result<(), Stop> {
    let parts = fragments(&text);
    for part in 0..parts {
        send(sink, close_rx, text_message(&text, part, parts)).await?;
    }
    Ok(())
}

/// How many frames `text` goes out as: one, or for long text the fragments
/// of one message (RFC 6455 section 5.4).
fn fragments(text: &Bytes) -> usize {
    text.len().div_ceil(FRAGMENT).max(1)
}

/// Frame `part` of `parts` of `text` (UTF-8): the whole text, or a text
/// frame, continuation frames and a final one. Fragments may split a UTF-8
/// sequence; clients validate the whole message. Nothing is copied: each
/// frame shares `text`'s buffer.
fn text_message(text: &Bytes, part: usize, parts: usize) -> Message {
    if parts == 1 {
        // Rendered from a `String` (or checked here once, without copying).
        let text = Utf8Bytes::try_from(text.clone())
            .unwrap_or_else(|_| Utf8Bytes::from_static(UNRENDERABLE_REPLY));
        return Message::Text(text);
    }
    let start = part * FRAGMENT;
    let chunk = text.slice(start..(start + FRAGMENT).min(text.len()));
    let opcode = if part == 0 {
        Data::Text
    } else {
        Data::Continue
    };
    Message::Frame(WireFrame::message(
        chunk,
        OpCode::Data(opcode),
        part + 1 == parts,
    ))
}

impl DeviceSink for Outbox {
    fn push(&self, frame: FrameText) -> bool {
        Outbox::push(self, Frame::Shared(frame))
    }

    fn reply(&self, reply: Reply) -> bool {
        Outbox::reply(self, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<Message> {
        let text = Bytes::copy_from_slice(text.as_bytes());
        let parts = fragments(&text);
        (0..parts).map(|i| text_message(&text, i, parts)).collect()
    }

    #[test]
    fn long_text_is_fragmented_into_one_message() {
        assert_eq!(messages("short").len(), 1);
        // Two bytes per character, so fragment borders split characters.
        let long = "\u{e9}".repeat(FRAGMENT);
        let parts = messages(&long);
        assert_eq!(parts.len(), 2);
        let mut joined = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let Message::Frame(frame) = part else {
                panic!("expected raw frames")
            };
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            assert_eq!(frame.header().opcode, OpCode::Data(opcode));
            assert_eq!(frame.header().is_final, i == parts.len() - 1);
            joined.extend_from_slice(frame.payload());
        }
        assert_eq!(joined, long.as_bytes());
        // A text of exactly one fragment is one plain message.
        assert!(matches!(
            &messages(&"a".repeat(FRAGMENT))[..],
            [Message::Text(_)]
        ));
    }
}
