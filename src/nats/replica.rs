//! A board replica: a node that owns no data and serves live boards from the
//! owner's events.
//!
//! It follows the event stream with an ordered consumer and writes each
//! board event into its own store at the `seq` the owner gave it
//! ([`WriteBatch::replicated_event`]), together with the stream position it
//! reached, so a restart resumes where it stopped. Its gateway then serves
//! `subscribe`, `since` and gap-filling exactly as the owner's does. What it
//! cannot know itself (may this viewer see this board, and its patients? what
//! is on the board right now?) it asks the owner with the viewer's own token,
//! through the `board` command.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures_util::StreamExt;
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::nats::{AUTHORIZATION_HEADER, EVENT_SCHEMA_VERSION, EventEnvelope};
use medrelay_protocol::ws::{ClientFrame, Command, Reply};
use medrelay_protocol::{ErrorBody, ErrorCode, ProviderId};
use secrecy::{ExposeSecret, SecretString};

use super::{back_off, stream_config};
use crate::error::AppError;
use crate::state::AppState;
use crate::state::NatsLink;

/// The counter holding the last stream sequence applied.
const CURSOR: &str = "nats_replica_stream_seq";
/// Most stream messages written in one store batch.
const MAX_BATCH: usize = 512;

/// Follows the stream until the task is aborted at shutdown.
pub async fn run(state: Arc<AppState>, link: NatsLink) {
    let mut delay = Duration::from_millis(100);
    loop {
        if let Err(e) = follow(&state, &link).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "board replica: lost the event stream; resuming"
            );
        }
        back_off(&mut delay, Duration::from_secs(5)).await;
    }
}

async fn follow(state: &AppState, link: &NatsLink) -> anyhow::Result<()> {
    let config = stream_config(&state.settings.nats, &link.subjects);
    let stream = link
        .jetstream
        .get_or_create_stream(config)
        .await
        .context("could not open the event stream")?;
    let cursor = state.store.counter(CURSOR)?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: link.client.new_inbox(),
            filter_subject: link.subjects.all_events(),
            deliver_policy: if cursor == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: cursor + 1,
                }
            },
            ..Default::default()
        })
        .await
        .context("could not create the replica's consumer")?;
    let mut messages = consumer.messages().await?;
    tracing::info!(
        from = cursor + 1,
        "board replica: following the owner's events"
    );
    loop {
        let first = messages.next().await.context("the event stream ended")??;
        let mut batch = WriteBatch::new();
        let mut count = 1;
        add(&mut batch, &first)?;
        // Take what has already arrived into the same store write.
        while count < MAX_BATCH {
            match tokio::time::timeout(Duration::from_millis(1), messages.next()).await {
                Ok(Some(message)) => {
                    add(&mut batch, &message?)?;
                    count += 1;
                }
                Ok(None) | Err(_) => break,
            }
        }
        state.store.write(batch).await?;
        metrics::counter!("replica_events_applied_total").increment(count as u64);
    }
}

fn add(batch: &mut WriteBatch, message: &async_nats::jetstream::Message) -> anyhow::Result<()> {
    let position = message
        .info()
        .map_err(|e| anyhow::anyhow!("stream message without metadata: {e}"))?
        .stream_sequence;
    match serde_json::from_slice::<EventEnvelope>(&message.payload) {
        Ok(envelope) if envelope.v == EVENT_SCHEMA_VERSION => {
            batch.replicated_event(envelope.channel, envelope.seq, envelope.event);
        }
        Ok(envelope) => {
            tracing::warn!(
                v = envelope.v,
                "board replica: skipped an event of another schema version"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, subject = %message.subject, "board replica: skipped an unreadable event");
        }
    }
    batch.set_counter(CURSOR, position);
    Ok(())
}

/// What the owner says about one board for one viewer.
pub struct OwnerBoard {
    /// The snapshot.
    pub snapshot: serde_json::Value,
    /// The seq it reflects.
    pub seq: u64,
    /// Whether this viewer sees patients on the board.
    pub patients_shown: bool,
}

/// Asks the owner for `provider`'s board as the holder of `token` sees it.
///
/// # Errors
/// The owner's own error (forbidden, unknown doctor, ...), or `unavailable`
/// when the owner cannot be reached.
pub async fn owner_board(
    state: &AppState,
    link: &NatsLink,
    token: &SecretString,
    provider: &ProviderId,
    from: Option<jiff::civil::Date>,
    to: Option<jiff::civil::Date>,
) -> Result<OwnerBoard, AppError> {
    let frame = ClientFrame {
        id: None,
        command: Command::Board {
            provider_id: provider.clone(),
            from,
            to,
        },
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        AUTHORIZATION_HEADER,
        format!("Bearer {}", token.expose_secret()).as_str(),
    );
    let payload = serde_json::to_vec(&frame).expect("frames serialise to JSON");
    let unavailable = |why: String| {
        AppError::Unavailable(format!("the owner node did not answer ({why}); try again"))
    };
    let request = link.client.request_with_headers(
        link.subjects.schedule_command(provider),
        headers,
        payload.into(),
    );
    let timeout = Duration::from_millis(state.settings.nats.request_timeout_ms);
    let response = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| unavailable("timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let reply: Reply = serde_json::from_slice(&response.payload)
        .map_err(|e| unavailable(format!("unreadable reply: {e}")))?;
    match (reply.ok, reply.data, reply.error) {
        (true, Some(data), _) => Ok(OwnerBoard {
            seq: data["seq"].as_u64().unwrap_or(0),
            patients_shown: data["patientsShown"].as_bool().unwrap_or(false),
            snapshot: data["snapshot"].clone(),
        }),
        (_, _, Some(error)) => Err(AppError::Remote(error)),
        _ => Err(AppError::Remote(ErrorBody::new(
            ErrorCode::Internal,
            "the owner node gave an empty reply",
        ))),
    }
}
