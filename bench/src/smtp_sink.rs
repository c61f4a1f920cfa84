//! A small real SMTP server that keeps what it receives: the test suite's
//! mail server and the e-mail benchmark's sink. It speaks enough of RFC 5321
//! for a client such as lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
//! without TLS or authentication.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message: headers, a blank line, the body (dot-unstuffed).
    pub data: String,
}

impl Mail {
    /// A header's value (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = found.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_owned());
            }
        }
        found
    }

    /// The body after the headers, as sent.
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The body's text: quoted-printable or base64 decoded when it was
    /// sent so; of a multipart message, its first `text/plain` part.
    pub fn text(&self) -> String {
        match self.parts().into_iter().find(|p| {
            p.header("Content-Type")
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/plain"))
        }) {
            Some(part) => part.text(),
            None => Part {
                data: self.data.clone(),
            }
            .text(),
        }
    }

    /// The parts of a multipart message (one level), in order; none for a
    /// single-part one.
    pub fn parts(&self) -> Vec<Part> {
        let Some(boundary) = self.header("Content-Type").and_then(|t| {
            t.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_owned())
        }) else {
            return Vec::new();
        };
        let delimiter = format!("--{boundary}");
        self.body()
            .split(delimiter.as_str())
            .skip(1)
            .filter(|chunk| !chunk.starts_with("--"))
            .map(|chunk| Part {
                data: chunk.trim_start_matches("\r\n").to_owned(),
            })
            .collect()
    }
}

/// One part of a multipart message: its headers, a blank line, its body.
#[derive(Debug, Clone)]
pub struct Part {
    data: String,
}

impl Part {
    /// A header's value (first occurrence, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        Mail {
            from: String::new(),
            to: Vec::new(),
            data: self.data.clone(),
        }
        .header(name)
    }

    /// The body, decoded from its transfer encoding.
    pub fn text(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .trim_end_matches("\r\n");
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                use base64::Engine;
                let compact: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => body.to_owned(),
        }
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let raw = body.replace("=\r\n", "");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
    tasks: Option<JoinSet<()>>,
}

impl SmtpSink {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> SmtpSink {
        Self::start_on("127.0.0.1:0".parse().expect("an address")).await
    }

    /// Starts on `addr` (to come back on the port of a stopped sink, which
    /// may take a moment to be released).
    pub async fn start_on(addr: SocketAddr) -> SmtpSink {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 && addr.port() != 0 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("SMTP sink cannot bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        let (r, a) = (received.clone(), arrived.clone());
        tasks.spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (r, a) = (r.clone(), a.clone());
                sessions.spawn(async move {
                    let _ = session(stream, r, a).await;
                });
            }
        });
        SmtpSink {
            addr,
            received,
            arrived,
            tasks: Some(tasks),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Mail> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// Waits until at least `n` messages arrived (or `limit` passed) and
    /// returns all of them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.arrived.notified();
            let now = self.received();
            if now.len() >= n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }

    /// Stops accepting and drops every open connection: the server is gone.
    pub fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn session(
    stream: TcpStream,
    received: Arc<Mutex<Vec<Mail>>>,
    arrived: Arc<Notify>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command["MAIL FROM:".len()..]);
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command["RCPT TO:".len()..]));
            b"250 ok\r\n"
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 ok\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            received.lock().expect("not poisoned").push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            });
            arrived.notify_waiters();
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// `<a@b> SIZE=…` → `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg, |(a, _)| a);
    inner.to_owned()
}
