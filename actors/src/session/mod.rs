//! `PatientSession`: one actor per connected patient, holding all of that
//! patient's live sockets (devices).
//!
//! The session listens once to the hub for `patient:<id>` and fans every
//! event out to each device, so a patient with a phone, a tablet and a
//! browser tab costs one hub subscription. It also owns the patient's
//! *unacknowledged* in-app notifications: a device acknowledges with
//! `{"type":"ack","channel":"patient:<id>","seq":N}`, the acknowledgement is
//! stored (it survives restarts) and marks those notifications `delivered`,
//! and a device that subscribes afresh (a new phone, a reinstalled app) is
//! sent what no device has acknowledged yet. A device that reconnects with
//! `since` is replayed exactly what it missed, as on any channel.
//!
//! # Order and gaps
//! The session tracks `seen`, the last seq it has handed to every device.
//! Events arrive from the hub in seq order; a gap (an event the hub dropped
//! because the session lagged) is filled from the store's channel history
//! before the next event goes out, so every device sees a gap-free sequence.
//! When the history no longer holds the gap, each device is told to
//! subscribe again (`resync_required`), as the per-socket forwarder does.
//!
//! # Supervision
//! Handlers run inside [`guarded`](crate::system::guarded). After a panic the supervisor restarts the
//! session with the same devices; `started` subscribes to the hub again and
//! sends every device what was committed meanwhile. The session stops (and
//! leaves the registry) when its last device detaches. Each socket holds
//! its session's address and detaches from that very session, so a session
//! revived after retiring (a late message held its address) still loses its
//! devices as they leave, and then stops again.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use medrelay_protocol::PatientId;
use medrelay_protocol::ws::Reply;
use serde::{Deserialize, Serialize};

use crate::fault::Fault;
use crate::hub::{EventHub, FrameText};
use crate::store::{Record, Store, StoreError, Table};
use crate::system::{ActorSystem, Registry};

/// The most unacknowledged notifications a session keeps and sends to a new
/// device; older ones stay in their delivery reports.
pub const MAX_UNACKED: usize = 100;

/// Session uids.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How often a session with no device checks whether to stop.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// A live socket as the session sees it. The gateway implements it over the
/// socket's bounded outbound queue.
pub trait DeviceSink: Send + Sync + 'static {
    /// Queues an event frame; `false` when the socket is gone or closing
    /// (a full queue closes the socket).
    fn push(&self, frame: FrameText) -> bool;
    /// Queues a reply; `false` as for [`DeviceSink::push`].
    fn reply(&self, reply: Reply) -> bool;
}

/// How many devices each patient has connected right now, kept by the
/// sessions and read when an in-app notification is recorded. Counts are
/// kept per session, so a session that outlived its registry entry (see
/// [`PatientSession`]) never overwrites its successor's.
#[derive(Clone, Default)]
pub struct Presence(Arc<Mutex<HashMap<PatientId, HashMap<u64, usize>>>>);

impl Presence {
    /// The patient's connected devices.
    pub fn devices(&self, patient: &PatientId) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(patient)
            .map_or(0, |sessions| sessions.values().sum())
    }

    fn set(&self, patient: &PatientId, session: u64, devices: usize) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if devices > 0 {
            map.entry(patient.clone())
                .or_default()
                .insert(session, devices);
        } else if let Some(sessions) = map.get_mut(patient) {
            sessions.remove(&session);
            if sessions.is_empty() {
                map.remove(patient);
            }
        }
    }
}

/// How far a patient's devices acknowledged their in-app notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckRecord {
    /// The last acknowledged seq of `patient:<id>`.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
}

impl Record for AckRecord {
    const TABLE: Table = Table::SessionAcks;
    const VERSION: u16 = 1;
}

/// Why a session could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// The acknowledged seq is ahead of the channel.
    #[error("seq {seq} is ahead of the channel (its last seq is {head})")]
    AheadOfChannel {
        /// What was acknowledged.
        seq: u64,
        /// The channel's last seq.
        head: u64,
    },
    /// The store failed.
    #[error("storage error")]
    Storage(#[source] Fault),
    /// The session failed inside; it restarts.
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Storage(Fault::new(e))
    }
}

/// Adds a socket to the session: the subscribe reply, then what it is owed
/// (the events after `since`, or a snapshot and the unacknowledged
/// notifications), then live events.
#[derive(Clone, Message)]
#[rtype(result = "Result<Addr<PatientSession>, SessionError>")]
pub struct Attach {
    /// The socket's id, unique in this process.
    pub device: u64,
    /// Where its frames go.
    pub sink: Arc<dyn DeviceSink>,
    /// The subscribe command's id, for the reply.
    pub request_id: Option<String>,
    /// The last seq the device has seen.
    pub since: Option<u64>,
}

/// Removes a socket (closed, or unsubscribed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// The socket's id.
    pub device: u64,
}

/// Acknowledges the patient's in-app notifications up to `seq`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Acked, SessionError>")]
pub struct Ack {
    /// The last seq seen.
    pub seq: u64,
}

/// The outcome of an [`Ack`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acked {
    /// How far the patient has acknowledged now.
    pub seq: u64,
    /// Notifications this acknowledgement covered.
    pub acknowledged: usize,
    /// Notifications still unacknowledged.
    pub unacknowledged: usize,
}

/// Panics inside the handler: proves that the session survives it.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SessionError>")]
pub struct InjectPanic;

/// The patients' sessions, started on a patient's first socket.
#[derive(Clone)]
pub struct Sessions {
    registry: Registry<PatientSession>,
    presence: Presence,
}

impl Sessions {
    /// Sessions on `system`, reading `store` and listening to `hub`.
    pub fn new(system: Arc<ActorSystem>, store: Store, hub: EventHub) -> Self {
        let presence = Presence::default();
        let shared = presence.clone();
        let registry = Registry::new(system, move |key, retire| {
            PatientSession::new(&key, store.clone(), hub.clone(), shared.clone(), retire)
        });
        Self { registry, presence }
    }

    /// Who is connected.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Adds a socket to `patient`'s session, starting it if needed. Returns
    /// the session, which the socket tells when it leaves ([`Detach`]).
    ///
    /// # Errors
    /// [`SessionError`] when the store cannot be read or the session failed.
    pub async fn attach(
        &self,
        patient: &PatientId,
        attach: Attach,
    ) -> Result<Addr<PatientSession>, SessionError> {
        self.registry
            .send(patient.as_str(), attach)
            .await
            .map_err(|_| SessionError::Internal)?
    }

    /// Acknowledges `patient`'s in-app notifications up to `seq`.
    ///
    /// # Errors
    /// [`SessionError::AheadOfChannel`] for a seq not yet reached; a storage
    /// or internal error otherwise.
    pub async fn ack(&self, patient: &PatientId, seq: u64) -> Result<Acked, SessionError> {
        self.registry
            .send(patient.as_str(), Ack { seq })
            .await
            .map_err(|_| SessionError::Internal)?
    }

    /// Makes `patient`'s session panic (test builds only).
    ///
    /// # Errors
    /// Always [`SessionError::Internal`], once the session has restarted.
    #[cfg(any(test, feature = "fault-injection"))]
    pub async fn inject_panic(&self, patient: &PatientId) -> Result<(), SessionError> {
        self.registry
            .send(patient.as_str(), InjectPanic)
            .await
            .map_err(|_| SessionError::Internal)?
    }
}

mod actor;

pub use actor::PatientSession;
