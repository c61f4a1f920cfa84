//! A socket's bounded outbound queue and the task that writes it out.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WireFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::Socket;
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
    Shared(Arc<str>),
    /// A heartbeat ping.
    Ping,
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
    let (closer, close_rx) = watch::channel(None);
    let outbox = Outbox {
        tx,
        closer: Arc::new(closer),
    };
    let handle = tokio::spawn(write_loop(sink, rx, close_rx));
    (outbox, handle)
}

/// Resolves once a close is requested (drops the watch guard before returning).
async fn close_requested(rx: &mut watch::Receiver<Option<Close>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::Receiver<Frame>,
    mut close_rx: watch::Receiver<Option<Close>>,
) {
    'frames: loop {
        let frame = tokio::select! {
            biased;
            () = close_requested(&mut close_rx) => break 'frames,
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break 'frames,
            },
        };
        let messages = match frame {
            Frame::Text(text) => text_messages(&text),
            Frame::Shared(text) => text_messages(&text),
            Frame::Ping => vec![Message::Ping(Bytes::new())],
        };
        for message in messages {
            // A client that stops reading blocks this send once TCP buffers
            // are full; a close request must still get through, so race them.
            let sent = tokio::select! {
                biased;
                () = close_requested(&mut close_rx) => break 'frames,
                sent = sink.send(message) => sent,
            };
            if sent.is_err() {
                return;
            }
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

/// One text message, or for long text the fragments of one message (RFC 6455
/// section 5.4): a text frame, continuation frames, the last one final.
/// Fragments may split a UTF-8 sequence; clients validate the whole message.
fn text_messages(text: &str) -> Vec<Message> {
    if text.len() <= FRAGMENT {
        return vec![Message::Text(text.into())];
    }
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(FRAGMENT).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            Message::Frame(WireFrame::message(
                Bytes::copy_from_slice(chunk),
                OpCode::Data(opcode),
                i == last,
            ))
        })
        .collect()
}

impl DeviceSink for Outbox {
    fn push(&self, frame: Arc<str>) -> bool {
        Outbox::push(self, Frame::Shared(frame))
    }

    fn reply(&self, reply: Reply) -> bool {
        Outbox::reply(self, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_fragmented_into_one_message() {
        assert_eq!(text_messages("short").len(), 1);
        // Two bytes per character, so fragment borders split characters.
        let long = "\u{e9}".repeat(FRAGMENT);
        let parts = text_messages(&long);
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
    }
}
