//! WebSocket protocol v1: JSON text frames over subprotocol `medrelay.v1`.
//!
//! - client → server: [`ClientFrame`], `{"id":"c1","type":"<command>",...}`;
//! - server → client: [`Reply`] (`{"re":"c1","ok":true,"data":{...}}`) or
//!   [`EventFrame`] (`{"type":"event","channel":"...","seq":N,"event":{...}}`).
//!
//! Close codes the server uses are in [`close`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Channel;
use crate::error::{ErrorBody, ErrorCode};
use crate::event::Event;
use crate::schedule::{AppointmentId, BookAppointment};

/// The longest command id the server echoes back.
pub const MAX_COMMAND_ID_LEN: usize = 64;

/// A command from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientFrame {
    /// Chosen by the client and echoed as `re` in the reply (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The command, tagged by `type`.
    #[serde(flatten)]
    pub command: Command,
}

/// Every command of protocol v1, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Authenticates the socket, or refreshes its token before it expires.
    Auth {
        /// An access token from `POST /api/auth/login`.
        token: String,
    },
    /// Liveness check; replies with the server time.
    Ping,
    /// Who the socket is authenticated as.
    Whoami,
    /// Starts receiving a channel's events. With `since`, first replays the
    /// events after that `seq`; when they are no longer kept, the reply has
    /// `resync: true` and a fresh snapshot instead.
    Subscribe {
        /// The channel.
        channel: Channel,
        /// The last `seq` the client has seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// Boards: first date of the snapshot (default: today in the doctor's zone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        from: Option<jiff::civil::Date>,
        /// Boards: last date of the snapshot (default: `from` + 6 days).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        to: Option<jiff::civil::Date>,
    },
    /// Books a slot: the body of `POST /api/appointments`.
    Book(BookAppointment),
    /// Moves an appointment or changes its status: the body of
    /// `PUT /api/appointments/{appointmentId}` plus the id.
    #[serde(rename_all = "camelCase")]
    Reschedule {
        /// The appointment.
        appointment_id: AppointmentId,
        /// New date.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        appointment_date: Option<jiff::civil::Date>,
        /// New start time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_slot: Option<crate::schedule::ClockTime>,
        /// New status, or `Rescheduled` to move.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<crate::schedule::RequestedStatus>,
    },
    /// Holds a slot for a few minutes: the body of
    /// `POST /api/providers/{providerId}/holds` plus the doctor.
    #[serde(rename_all = "camelCase")]
    Hold {
        /// The doctor.
        provider_id: crate::ids::ProviderId,
        /// The patient (a patient's own when left out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_id: Option<crate::ids::PatientId>,
        /// The date in the doctor's time zone.
        #[schemars(with = "String")]
        appointment_date: jiff::civil::Date,
        /// The slot's start, `HH:MM`.
        time_slot: crate::schedule::ClockTime,
    },
    /// Cancels an appointment (`DELETE /api/appointments/{appointmentId}`).
    #[serde(rename_all = "camelCase")]
    Cancel {
        /// The appointment.
        appointment_id: AppointmentId,
    },
    /// Reads one appointment (the body `GET /api/appointments/{id}` returns).
    #[serde(rename_all = "camelCase")]
    Get {
        /// The appointment.
        appointment_id: AppointmentId,
    },
    /// A doctor's board at one instant, with the `seq` it reflects, without
    /// subscribing (the snapshot `subscribe` sends).
    #[serde(rename_all = "camelCase")]
    Board {
        /// The doctor.
        provider_id: crate::ids::ProviderId,
        /// First day (default: today in the doctor's time zone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        from: Option<jiff::civil::Date>,
        /// Last day (default: a week from `from`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<String>")]
        to: Option<jiff::civil::Date>,
    },
    /// Stops receiving a channel's events.
    Unsubscribe {
        /// The channel.
        channel: Channel,
    },
    /// A patient's device acknowledges the in-app notifications of its own
    /// channel up to `seq`: they are delivered, and no device is sent them
    /// again as unacknowledged.
    Ack {
        /// The patient's channel (`patient:<patientId>`).
        channel: Channel,
        /// The last `seq` seen.
        seq: u64,
    },
}

/// Reads one client frame (a WebSocket text frame or a NATS request body),
/// or gives the error reply that says why it cannot be read. The reply
/// carries the frame's `id` whenever that much could be read.
///
/// # Errors
/// A `bad_request` [`Reply`] for malformed JSON, a bad `id`, or an unknown
/// or malformed command.
pub fn parse_client_frame(bytes: &[u8]) -> Result<ClientFrame, Box<Reply>> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Reply::error(None, ErrorCode::BadRequest, format!("malformed JSON: {e}")))
        .map_err(Box::new)?;
    let id = match value.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_COMMAND_ID_LEN => Some(s.clone()),
        Some(_) => {
            return Err(Box::new(Reply::err(
                None,
                ErrorBody::new(
                    ErrorCode::BadRequest,
                    "id must be a string of at most 64 characters",
                )
                .with_field("id"),
            )));
        }
    };
    serde_json::from_value(value)
        .map_err(|e| Box::new(Reply::error(id, ErrorCode::BadRequest, e.to_string())))
}

/// The server's answer to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reply {
    /// The `id` of the command answered (absent when the command had none
    /// or could not be read at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<String>,
    /// Whether the command succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The error, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(re: Option<String>, data: Value) -> Self {
        Self {
            re,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failed reply.
    pub fn err(re: Option<String>, error: ErrorBody) -> Self {
        Self {
            re,
            ok: false,
            data: None,
            error: Some(error),
        }
    }

    /// A failed reply with a code and a message.
    pub fn error(re: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::err(re, ErrorBody::new(code, message))
    }
}

/// Marks a frame as a pushed event (`"type":"event"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventTag {
    /// The only value.
    Event,
}

/// An event pushed on a subscribed channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventFrame {
    /// Always `"event"`.
    #[serde(rename = "type")]
    pub tag: EventTag,
    /// The channel it belongs to.
    pub channel: Channel,
    /// Its position in the channel: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// Anything the server sends: a reply or a pushed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServerFrame {
    /// A pushed event.
    Event(EventFrame),
    /// The answer to a command.
    Reply(Reply),
}

/// The `data` of a successful `subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    /// The channel.
    pub channel: Channel,
    /// The channel's `seq` at the moment of subscribing; the next event has `seq + 1`
    /// (replayed events, when `since` was given, are sent right after this reply).
    pub seq: u64,
    /// How many missed events follow this reply.
    pub replayed: u64,
    /// True when `since` was too old (or ahead of the server): the client must
    /// drop what it holds and use `snapshot`.
    pub resync: bool,
    /// The channel's current state, when the client asked for none (no `since`)
    /// or must resynchronise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Value>,
    /// A patient's own channel: how many in-app notifications no device has
    /// acknowledged yet. Subscribing without `since` sends them right after
    /// this reply (the newest ones, at most a hundred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacknowledged: Option<u64>,
}

/// Close codes the server sends, beyond the standard ones.
pub mod close {
    /// Standard: the server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Standard: a frame was larger than the server accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Standard: a frame that is not text (binary) or a protocol violation.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// No valid authentication in time, or the token expired without refresh.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The client read too slowly; its outbound queue filled up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The peer stopped answering pings.
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
}

/// The JSON Schema of both directions of the protocol.
pub fn json_schema() -> Value {
    let client = schemars::schema_for!(ClientFrame);
    let server = schemars::schema_for!(ServerFrame);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "medrelay WebSocket protocol v1",
        "description": format!("Subprotocol {}; JSON text frames.", crate::WS_SUBPROTOCOL),
        "clientToServer": client,
        "serverToClient": server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_parse_with_flattened_type() {
        let frame: ClientFrame = serde_json::from_value(
            json!({"id":"c1","type":"subscribe","channel":"users","since":4}),
        )
        .unwrap();
        assert_eq!(frame.id.as_deref(), Some("c1"));
        assert_eq!(
            frame.command,
            Command::Subscribe {
                channel: Channel::Users,
                since: Some(4),
                from: None,
                to: None,
            }
        );
        let auth: ClientFrame = serde_json::from_value(json!({"type":"auth","token":"t"})).unwrap();
        assert_eq!(auth.id, None);
        let back = serde_json::to_value(&auth).unwrap();
        assert_eq!(back, json!({"type":"auth","token":"t"}));
    }

    #[test]
    fn unknown_commands_and_bad_channels_fail() {
        assert!(serde_json::from_value::<ClientFrame>(json!({"id":"1","type":"fly"})).is_err());
        assert!(
            serde_json::from_value::<ClientFrame>(
                json!({"id":"1","type":"subscribe","channel":"x:y"})
            )
            .is_err()
        );
    }

    #[test]
    fn replies_round_trip() {
        let ok = Reply::ok(Some("c1".into()), json!({"pong":true}));
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"re":"c1","ok":true,"data":{"pong":true}})
        );
        let err = Reply::error(Some("c2".into()), ErrorCode::Forbidden, "no");
        let text = serde_json::to_string(&ServerFrame::Reply(err.clone())).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&text).unwrap(),
            ServerFrame::Reply(err)
        );
    }

    #[test]
    fn event_frames_round_trip() {
        let frame = ServerFrame::Event(EventFrame {
            tag: EventTag::Event,
            channel: Channel::Users,
            seq: 7,
            event: Event::SignedOut {
                user_id: crate::UserId::parse("u1").unwrap(),
                at: jiff::Timestamp::UNIX_EPOCH,
            },
        });
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["seq"], 7);
        assert_eq!(serde_json::from_value::<ServerFrame>(json).unwrap(), frame);
    }

    #[test]
    fn schema_names_every_command() {
        let schema = json_schema().to_string();
        for name in [
            "auth",
            "ping",
            "whoami",
            "subscribe",
            "unsubscribe",
            "book",
            "reschedule",
            "cancel",
            "get",
            "board",
        ] {
            assert!(schema.contains(&format!("\"{name}\"")), "{name} missing");
        }
    }
}
