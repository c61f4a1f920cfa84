//! Schedule commands over NATS request/reply.
//!
//! `<prefix>.cmd.schedule.<providerId>` takes the WebSocket's `book`,
//! `reschedule`, `cancel`, `get` and `board` frames and answers with the
//! WebSocket's reply, through the same [`commands::run`]: the same checks,
//! the same answers, the same error codes. The caller's token travels in an
//! `Authorization: Bearer <jwt>` header and is checked as on the gateway
//! (signature, expiry, revocation, per-user rate limit). Every request with a
//! reply subject gets an answer, errors included.

use std::sync::Arc;

use futures_util::StreamExt;
use medrelay_actors::schedule::AppointmentRecord;
use medrelay_protocol::ws::{Reply, parse_client_frame};
use medrelay_protocol::{ErrorCode, ProviderId};
use tokio::sync::Semaphore;

use super::{authenticate, back_off};
use crate::error::AppError;
use crate::service::commands::{self, ScheduleCommand};
use crate::state::AppState;
use crate::state::NatsLink;

/// The queue group every owner node joins, so each request is answered once.
const QUEUE_GROUP: &str = "medrelay";

/// The commands one subscription answers.
#[derive(Debug, Clone, Copy)]
pub enum Commands {
    /// `<prefix>.cmd.schedule.<providerId>`.
    Schedule,
    /// `<prefix>.cmd.billing.<patientId>`: a patient's billing account.
    Billing,
}

/// Serves `kind` of commands until the task is aborted at shutdown; each
/// kind has its own bound on requests in progress.
pub async fn run(state: Arc<AppState>, link: NatsLink, kind: Commands) {
    let limit = Arc::new(Semaphore::new(state.settings.nats.max_concurrent_commands));
    let subject = match kind {
        Commands::Schedule => link.subjects.all_schedule_commands(),
        Commands::Billing => link.subjects.all_billing_commands(),
    };
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        let mut requests = match link
            .client
            .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
            .await
        {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "could not subscribe to NATS commands; retrying");
                back_off(&mut delay, std::time::Duration::from_secs(5)).await;
                continue;
            }
        };
        tracing::info!(%subject, "answering schedule commands over NATS");
        while let Some(message) = requests.next().await {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let (state, link) = (state.clone(), link.clone());
            tokio::spawn(async move {
                answer(&state, &link, message, kind).await;
                drop(permit);
            });
        }
        // The subscription ends only when the client is closed.
        back_off(&mut delay, std::time::Duration::from_secs(5)).await;
    }
}

async fn answer(state: &AppState, link: &NatsLink, message: async_nats::Message, kind: Commands) {
    let Some(reply_to) = message.reply.clone() else {
        metrics::counter!("nats_commands_total", "result" => "no_reply_subject").increment(1);
        tracing::debug!(subject = %message.subject, "command without a reply subject ignored");
        return;
    };
    let (ok, payload) = match kind {
        Commands::Schedule => {
            let reply = handle(state, link, &message).await;
            let payload = serde_json::to_vec(&reply).expect("replies serialise to JSON");
            (reply.ok, payload)
        }
        Commands::Billing => super::billing::handle(state, link, &message).await,
    };
    metrics::counter!("nats_commands_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
    if let Err(e) = link.client.publish(reply_to, payload.into()).await {
        tracing::warn!(error = %e, "could not send a NATS command reply");
    }
}

/// The reply to one request.
pub(crate) async fn handle(
    state: &AppState,
    link: &NatsLink,
    message: &async_nats::Message,
) -> Reply {
    if message.payload.len() > state.settings.nats.max_command_bytes {
        return Reply::error(
            None,
            ErrorCode::PayloadTooLarge,
            format!(
                "request larger than {} bytes",
                state.settings.nats.max_command_bytes
            ),
        );
    }
    let frame = match parse_client_frame(&message.payload) {
        Ok(frame) => frame,
        Err(reply) => return *reply,
    };
    let id = frame.id.clone();
    let Some(provider) = link.subjects.provider_of(message.subject.as_str()) else {
        return Reply::error(
            id,
            ErrorCode::BadRequest,
            format!(
                "commands go to {}.cmd.schedule.<providerId>",
                link.subjects.prefix()
            ),
        );
    };
    let principal = match authenticate(state, message) {
        Ok(principal) => principal,
        Err(e) => return Reply::err(id, e.body()),
    };
    let Some(command) = ScheduleCommand::from_protocol(frame.command) else {
        return Reply::error(
            id,
            ErrorCode::BadRequest,
            "over NATS the commands are book, reschedule, cancel, get and board",
        );
    };
    if let Err(e) = state.limits.check_user(&principal.user_id) {
        return Reply::err(id, AppError::RateLimited(e).body());
    }
    if let Err(e) = same_provider(state, &provider, &command) {
        return Reply::err(id, e.body());
    }
    match commands::run(state, &principal, command).await {
        Ok(data) => Reply::ok(id, data),
        Err(e) => {
            if let AppError::Internal(cause) = &e {
                tracing::error!(error = format!("{cause:#}"), subject = %message.subject, "NATS command failed");
            }
            Reply::err(id, e.body())
        }
    }
}

/// The command must be about the doctor the subject names.
fn same_provider(
    state: &AppState,
    provider: &ProviderId,
    command: &ScheduleCommand,
) -> Result<(), AppError> {
    let named = match command {
        ScheduleCommand::Book(request) => Some(&request.provider_id),
        ScheduleCommand::Board { provider, .. } | ScheduleCommand::Hold(provider, _) => {
            Some(provider)
        }
        _ => None,
    };
    if named.is_some_and(|named| named != provider) {
        return Err(AppError::BadRequest {
            message: format!("providerId must be {provider}, the doctor in the subject"),
            field: Some("providerId".into()),
        });
    }
    match command {
        ScheduleCommand::Update(id, _) | ScheduleCommand::Cancel(id) | ScheduleCommand::Get(id) => {
            match state.store.get::<AppointmentRecord>(id.as_str())? {
                Some(record) if record.provider_id != *provider => Err(AppError::NotFound(
                    format!("no appointment {id} on the schedule of {provider}"),
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}
