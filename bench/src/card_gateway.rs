//! A stand-in card gateway for the `billing` benchmark: Stripe's
//! `POST /v1/payment_intents`, answered `succeeded` after a fixed latency,
//! so that the benchmark measures how card payments overlap while each
//! waits on the gateway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

/// A running stand-in gateway.
pub struct CardGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    charges: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CardGateway {
    /// Starts one on a free port that answers every charge after `latency`.
    ///
    /// # Errors
    /// When it cannot listen.
    pub async fn start(latency: Duration) -> anyhow::Result<CardGateway> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the stand-in card gateway")?;
        let addr = listener.local_addr()?;
        let charges = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/v1/payment_intents", post(charge))
            .with_state((charges.clone(), latency));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CardGateway {
            addr,
            charges,
            task,
        })
    }

    /// The charges it has answered.
    pub fn charges(&self) -> u64 {
        self.charges.load(Ordering::Relaxed)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CardGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn charge(State((charges, latency)): State<(Arc<AtomicU64>, Duration)>) -> axum::Json<Value> {
    tokio::time::sleep(latency).await;
    let n = charges.fetch_add(1, Ordering::Relaxed);
    axum::Json(
        json!({"id": format!("pi_{n}"), "object": "payment_intent", "status": "succeeded",
        "latest_charge": {"id": format!("ch_{n}"), "payment_method_details": {"card": {"last4": "4242"}}}}),
    )
}
