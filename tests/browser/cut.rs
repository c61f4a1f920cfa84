//! A TCP relay between the browser and the server that the test can cut:
//! every open connection closes at once and new ones are refused until it
//! is mended, as when a screen's Wi-Fi drops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

pub struct Relay {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    cut: bool,
    open: Vec<AbortHandle>,
}

impl Relay {
    /// Relays 127.0.0.1:<new port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut s = shared.lock().unwrap();
                if s.cut {
                    continue; // dropped: the browser sees the connection close
                }
                let handle = tasks.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                s.open.push(handle);
                while tasks.try_join_next().is_some() {}
            }
        });
        Relay {
            addr,
            state,
            _accept: accept,
        }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        for handle in s.open.drain(..) {
            handle.abort();
        }
    }

    /// Accepts connections again.
    pub fn mend(&self) {
        self.state.lock().unwrap().cut = false;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}
