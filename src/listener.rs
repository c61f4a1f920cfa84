//! The server's listening socket: plain TCP, or TLS on top of it.
//!
//! With TLS, handshakes run on tasks of their own (at most
//! [`HANDSHAKES`] at once, [`HANDSHAKES_PER_PEER`] from one address, each
//! within [`HANDSHAKE_TIMEOUT`]), so a client that stalls mid-handshake, or
//! opens many connections and says nothing, delays nobody else;
//! `axum::serve` only ever sees connections that finished theirs.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// TLS handshakes in progress at most (a few KiB each); further
/// connections wait in the kernel's accept queue.
pub const HANDSHAKES: usize = 1024;
/// Handshakes in progress from one IP address at most; more are closed at
/// once, so one silent client cannot take the others' turns.
pub const HANDSHAKES_PER_PEER: usize = 16;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One accepted connection: plain HTTP (`Left`) or HTTPS (`Right`, boxed:
/// the TLS state is some hundreds of bytes). `Either` passes vectored writes
/// through, so hyper keeps writing head and body in one call.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The listening socket `axum::serve` accepts from.
pub struct Incoming {
    local: SocketAddr,
    kind: Kind,
}

enum Kind {
    Plain(TcpListener),
    Tls {
        handshaken: mpsc::Receiver<(Stream, SocketAddr)>,
        acceptor: JoinHandle<()>,
    },
}

impl Incoming {
    /// Plain HTTP on `listener`.
    ///
    /// # Errors
    /// When the OS cannot report the bound address.
    pub fn plain(listener: TcpListener) -> io::Result<Self> {
        Ok(Self {
            local: listener.local_addr()?,
            kind: Kind::Plain(listener),
        })
    }

    /// HTTPS on `listener`; must be called within the runtime.
    ///
    /// # Errors
    /// When the OS cannot report the bound address.
    pub fn tls(mut listener: TcpListener, tls: TlsAcceptor) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, handshaken) = mpsc::channel(16);
        let acceptor = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(HANDSHAKES));
            let peers = Arc::new(Mutex::new(HashMap::new()));
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = axum::serve::Listener::accept(&mut listener).await;
                let Some(turn) = PeerTurn::take(&peers, peer.ip()) else {
                    tracing::debug!(%peer, "too many TLS handshakes from this address; closed");
                    continue;
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let _turn = turn;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((Either::Right(Box::new(stream)), peer)).await;
                        }
                        // Scanners and plain-HTTP clients end here: not
                        // worth more than a debug line each.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            kind: Kind::Tls {
                handshaken,
                acceptor,
            },
        })
    }
}

/// One handshake in progress from an address; counted down when dropped.
struct PeerTurn {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerTurn {
    fn take(peers: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<PeerTurn> {
        let mut counts = peers.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= HANDSHAKES_PER_PEER {
            return None;
        }
        *count += 1;
        Some(PeerTurn {
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for PeerTurn {
    fn drop(&mut self) {
        let mut counts = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Shutdown drops the listener: stop accepting at once.
        if let Kind::Tls { acceptor, .. } = &self.kind {
            acceptor.abort();
        }
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        match &mut self.kind {
            Kind::Plain(listener) => {
                let (tcp, peer) = axum::serve::Listener::accept(listener).await;
                (Either::Left(tcp), peer)
            }
            Kind::Tls { handshaken, .. } => match handshaken.recv().await {
                Some(accepted) => accepted,
                // The acceptor task only ends when this listener is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
