//! WebSocket clients for the `schedule` benchmarks: connecting (to medrelay
//! with its subprotocol and a bearer token, or to a plain server), reading
//! frames under deadlines, and holding many sockets in a few tasks.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures_util::stream::SelectAll;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The subprotocol medrelay requires.
const SUBPROTOCOL: &str = "medrelay.v1";
/// Longest wait for one connection (TCP and upgrade).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one close frame to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for all the sockets of one holder to be closed.
const CLOSE_ALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every benchmark client: a 4 KiB read buffer instead of tungstenite's
/// 128 KiB (which it zero-fills on each read), so thousands of clients stay
/// cheap for the benchmark process. Servers keep their own settings.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Connects to medrelay's `/ws` offering `medrelay.v1`, authenticated with
/// `Authorization: Bearer TOKEN` on the upgrade. `TCP_NODELAY` is set, so
/// pipelined commands are not held back by Nagle's algorithm.
///
/// # Errors
/// When the connection or the upgrade fails or takes over 10 s.
pub async fn connect_medrelay(addr: SocketAddr, token: &str) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).context("token header")?,
    );
    let (socket, _) = timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(client_config()), true),
    )
    .await
    .context("WebSocket connection took over 10 s")?
    .context("WebSocket connection to medrelay")?;
    Ok(socket)
}

/// Connects to a plain WebSocket server at `ws://ADDR/`.
///
/// # Errors
/// When the connection or the upgrade fails or takes over 10 s.
pub async fn connect_plain(addr: SocketAddr) -> anyhow::Result<Socket> {
    let (socket, _) = timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}/"),
            Some(client_config()),
            true,
        ),
    )
    .await
    .context("WebSocket connection took over 10 s")?
    .context("WebSocket connection to the raw server")?;
    Ok(socket)
}

/// Sends one text frame, giving up at `deadline`.
///
/// # Errors
/// When the socket fails or the deadline passes.
pub async fn send_text(socket: &mut Socket, text: String, deadline: Instant) -> anyhow::Result<()> {
    timeout_at(deadline, socket.send(Message::text(text)))
        .await
        .context("sending a frame: deadline passed")?
        .context("sending a frame")
}

/// The next text frame (pings and pongs are skipped), giving up at `deadline`.
///
/// # Errors
/// When the socket closes or fails, or the deadline passes.
pub async fn next_text(
    socket: &mut Socket,
    deadline: Instant,
) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        let message = timeout_at(deadline, socket.next())
            .await
            .context("waiting for a frame: deadline passed")?;
        match message {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(Message::Close(frame))) => bail!(
                "the server closed the socket ({})",
                frame.map_or_else(
                    || "no code".to_owned(),
                    |f| format!("{} {}", f.code, f.reason)
                )
            ),
            Some(Err(e)) => return Err(e).context("reading a frame"),
            None => bail!("the socket ended"),
        }
    }
}

/// Subscribes to `channel` (snapshot of `date` only, for boards) and waits
/// for the `ok` reply; returns the reply's size in bytes.
///
/// # Errors
/// When the reply is not `ok`, or the socket fails, or `deadline` passes.
pub async fn subscribe(
    socket: &mut Socket,
    channel: &str,
    date: jiff::civil::Date,
    deadline: Instant,
) -> anyhow::Result<usize> {
    let command = serde_json::json!({
        "id": "s", "type": "subscribe", "channel": channel,
        "from": date.to_string(), "to": date.to_string(),
    });
    send_text(socket, command.to_string(), deadline).await?;
    loop {
        let text = next_text(socket, deadline).await?;
        let frame: Incoming<'_> =
            serde_json::from_str(text.as_str()).context("a frame that is not JSON")?;
        if frame.re.as_deref() != Some("s") {
            continue;
        }
        if frame.ok != Some(true) {
            bail!(
                "subscribe {channel} refused: {}",
                frame.error.map_or_else(String::new, |e| e.to_string())
            );
        }
        ensure!(
            frame.data.is_some_and(|d| d.seq.is_some()),
            "subscribe {channel}: no seq in the reply"
        );
        return Ok(text.len());
    }
}

/// The parts of a server frame the benchmarks look at; the rest (snapshots
/// in particular) is skipped without being stored.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    /// `"event"` on pushed events.
    #[serde(rename = "type", default, borrow)]
    pub tag: Option<Cow<'a, str>>,
    /// The command id a reply answers.
    #[serde(default, borrow)]
    pub re: Option<Cow<'a, str>>,
    /// Whether a command succeeded.
    #[serde(default)]
    pub ok: Option<bool>,
    /// A reply's data.
    #[serde(default, borrow)]
    pub data: Option<ReplyData<'a>>,
    /// A failed reply's error.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// A pushed event.
    #[serde(default, borrow)]
    pub event: Option<EventBody<'a>>,
    /// The raw baseline's sequence number.
    #[serde(default)]
    pub seq: Option<u64>,
}

/// A reply's `data`: a booking's id or a subscription's seq.
#[derive(Debug, Deserialize)]
pub struct ReplyData<'a> {
    /// A booking's appointment.
    #[serde(rename = "appointmentId", default, borrow)]
    pub appointment_id: Option<Cow<'a, str>>,
    /// A subscription's seq.
    #[serde(default)]
    pub seq: Option<u64>,
}

/// A pushed event's `event`.
#[derive(Debug, Deserialize)]
pub struct EventBody<'a> {
    /// Its kind (`appointment_booked`, ...).
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// The appointment, for appointment events.
    #[serde(rename = "appointmentId", default, borrow)]
    pub appointment_id: Option<Cow<'a, str>>,
}

/// What one holder task saw while it held its sockets.
#[derive(Debug)]
pub struct Held<K> {
    /// Frames `extract` recognised, with the instant each was read.
    pub received: Vec<(K, Instant)>,
    /// One recognised frame's text (to size the raw baseline's frames).
    pub sample: Option<String>,
    /// Text frames `extract` did not recognise.
    pub other: u64,
    /// Sockets the server closed, or that failed, while held.
    pub lost: u64,
    /// Whether the holder stopped at its deadline instead of on request.
    pub timed_out: bool,
}

/// A task holding many sockets: it reads them all (answering pings, as any
/// client does), timestamps every frame `extract` recognises, and on
/// [`Holders::finish`] closes them.
pub struct Holders<K> {
    senders: Vec<mpsc::Sender<Socket>>,
    tasks: Vec<JoinHandle<Held<K>>>,
    stop: watch::Sender<bool>,
    next: usize,
}

impl<K: Send + 'static> Holders<K> {
    /// Starts `tasks` holder tasks that give up at `deadline`.
    pub fn start(tasks: usize, extract: fn(&str) -> Option<K>, deadline: Instant) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(tasks);
        let mut handles = Vec::with_capacity(tasks);
        for _ in 0..tasks.max(1) {
            let (tx, rx) = mpsc::channel(1024);
            senders.push(tx);
            handles.push(tokio::spawn(hold(rx, stop_rx.clone(), extract, deadline)));
        }
        Self {
            senders,
            tasks: handles,
            stop,
            next: 0,
        }
    }

    /// Hands a socket to the next holder (round robin).
    ///
    /// # Errors
    /// When that holder has already ended.
    pub async fn add(&mut self, socket: Socket) -> anyhow::Result<()> {
        let i = self.next % self.senders.len();
        self.next += 1;
        timeout(CONNECT_TIMEOUT, self.senders[i].send(socket))
            .await
            .context("a holder task is stuck")?
            .map_err(|_| anyhow::anyhow!("a holder task ended early"))
    }

    /// A sender that hands sockets to holder `i % tasks` (for concurrent openers).
    pub fn sender(&self, i: usize) -> mpsc::Sender<Socket> {
        self.senders[i % self.senders.len()].clone()
    }

    /// Stops the holders, closes their sockets, and returns what each saw.
    ///
    /// # Errors
    /// When a holder task panicked.
    pub async fn finish(self) -> anyhow::Result<Vec<Held<K>>> {
        let _ = self.stop.send(true);
        drop(self.senders);
        let mut out = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            out.push(task.await.context("a holder task failed")?);
        }
        Ok(out)
    }
}

async fn hold<K>(
    mut incoming: mpsc::Receiver<Socket>,
    mut stop: watch::Receiver<bool>,
    extract: fn(&str) -> Option<K>,
    deadline: Instant,
) -> Held<K> {
    let mut sockets: SelectAll<Socket> = SelectAll::new();
    let mut held = Held {
        received: Vec::new(),
        sample: None,
        other: 0,
        lost: 0,
        timed_out: false,
    };
    let mut accepting = true;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep_until(deadline) => {
                held.timed_out = true;
                break;
            }
            socket = incoming.recv(), if accepting => match socket {
                Some(socket) => sockets.push(socket),
                None => accepting = false,
            },
            message = sockets.next(), if !sockets.is_empty() => {
                let at = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => match extract(text.as_str()) {
                        Some(key) => {
                            if held.sample.is_none() {
                                held.sample = Some(text.as_str().to_owned());
                            }
                            held.received.push((key, at));
                        }
                        None => held.other += 1,
                    },
                    Some(Ok(Message::Close(_)) | Err(_)) => held.lost += 1,
                    Some(Ok(_)) | None => {}
                }
            }
        }
    }
    let _ = timeout(CLOSE_ALL_TIMEOUT, async {
        for mut socket in sockets {
            let _ = timeout(CLOSE_TIMEOUT, socket.close(None)).await;
        }
    })
    .await;
    held
}
