//! The schedule commands of the WebSocket and NATS (`book`, `reschedule`,
//! `cancel`, `hold`, `get`, `board`): each runs through the same service
//! call as its REST route, so it gives the same answers and error codes.

use medrelay_actors::channels;
use medrelay_actors::schedule::messages::GetBoard;
use medrelay_protocol::hold::HoldSlot;
use medrelay_protocol::schedule::{AppointmentId, BookAppointment, UpdateAppointment};
use medrelay_protocol::ws::Command;
use medrelay_protocol::{Channel, ProviderId};
use serde_json::{Value, json};

use super::holds;
use super::schedule::{ask, board_json, book, cancel, find, render, update, viewer};
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// A schedule command, as the WebSocket and NATS carry it.
#[derive(Debug, Clone)]
pub enum ScheduleCommand {
    /// `book`
    Book(BookAppointment),
    /// `reschedule` (a move or a status change)
    Update(AppointmentId, UpdateAppointment),
    /// `cancel`
    Cancel(AppointmentId),
    /// `hold`
    Hold(ProviderId, HoldSlot),
    /// `get`
    Get(AppointmentId),
    /// `board`
    Board {
        /// The doctor.
        provider: ProviderId,
        /// First day.
        from: Option<jiff::civil::Date>,
        /// Last day.
        to: Option<jiff::civil::Date>,
    },
}

impl ScheduleCommand {
    /// The schedule command a protocol command is, or `None` for the
    /// session commands (`auth`, `subscribe`, ...).
    pub fn from_protocol(command: Command) -> Option<ScheduleCommand> {
        Some(match command {
            Command::Book(request) => ScheduleCommand::Book(request),
            Command::Reschedule {
                appointment_id,
                appointment_date,
                time_slot,
                status,
            } => ScheduleCommand::Update(
                appointment_id,
                UpdateAppointment {
                    appointment_date,
                    time_slot,
                    status,
                },
            ),
            Command::Cancel { appointment_id } => ScheduleCommand::Cancel(appointment_id),
            Command::Hold {
                provider_id,
                patient_id,
                appointment_date,
                time_slot,
            } => ScheduleCommand::Hold(
                provider_id,
                HoldSlot {
                    patient_id,
                    appointment_date,
                    time_slot,
                },
            ),
            Command::Get { appointment_id } => ScheduleCommand::Get(appointment_id),
            Command::Board {
                provider_id,
                from,
                to,
            } => ScheduleCommand::Board {
                provider: provider_id,
                from,
                to,
            },
            Command::Auth { .. }
            | Command::Ping
            | Command::Whoami
            | Command::Subscribe { .. }
            | Command::Ack { .. }
            | Command::Unsubscribe { .. } => return None,
        })
    }
}

/// Runs a schedule command for `principal` and renders its answer.
///
/// # Errors
/// The same errors as the REST routes for the same action.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    command: ScheduleCommand,
) -> Result<Value, AppError> {
    if let Some(board) = principal.display_board() {
        let own_board =
            matches!(&command, ScheduleCommand::Board { provider, .. } if provider == board);
        if !own_board {
            return Err(AppError::Forbidden(format!(
                "a display may only read board {board}"
            )));
        }
    }
    let viewer = viewer(state, principal)?;
    Ok(match command {
        ScheduleCommand::Book(request) => {
            let record = book(state, &viewer, request).await?;
            json!({ "appointmentId": record.appointment_id, "status": "Created" })
        }
        ScheduleCommand::Update(id, change) => {
            let record = update(state, &viewer, &id, change).await?;
            json!({ "appointmentId": record.appointment_id, "status": "Updated" })
        }
        ScheduleCommand::Cancel(id) => {
            let record = cancel(state, &viewer, &id).await?;
            json!({ "status": "Cancelled", "appointmentId": record.appointment_id })
        }
        ScheduleCommand::Hold(provider, request) => {
            let held = holds::hold(state, &viewer, &provider, request).await?;
            serde_json::to_value(held).map_err(AppError::internal)?
        }
        ScheduleCommand::Get(id) => {
            let record = find(state, &viewer, &id)?;
            serde_json::to_value(render(state, record)).map_err(AppError::internal)?
        }
        ScheduleCommand::Board { provider, from, to } => {
            let channel = Channel::Board(provider.clone());
            if !channels::may_subscribe(&state.store, &viewer, &channel)? {
                return Err(AppError::Forbidden(format!("you may not read {channel}")));
            }
            let reveal = channels::reveals_patients(&viewer, &channel);
            let board = ask(state, &provider, GetBoard { from, to }).await??;
            json!({
                "channel": channel,
                "seq": board.seq,
                "patientsShown": reveal,
                "snapshot": board_json(&board, reveal, state.settings.schedule.min_notice_minutes),
            })
        }
    })
}
