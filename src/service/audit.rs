//! The audit trail of patient data: making entries, writing them before a
//! read is answered, and reading them back (`GET /api/audit`, a patient's
//! access log). The entry types and the chain live in
//! [`medrelay_actors::audit`] and the store.

use jiff::Timestamp;
use medrelay_actors::audit::{self, Action, Agent, AuditEntry, Entity, Outcome, Purpose, Source};
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::audit::{AccessLog, AccessLogEntry, AuditPage, AuditRecord};
use medrelay_protocol::{PatientId, Role, UserId};

use crate::auth::Principal;
use crate::error::{AppError, current_request_id};
use crate::state::AppState;

/// Where a request came from, for its audit entries.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// `rest`, `websocket` or `nats`.
    pub channel: &'static str,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The reason the caller gave (`X-Access-Reason`), sealed for the
    /// request's audit entries (see [`medrelay_actors::audit::reason_place`]).
    pub reason: Option<medrelay_actors::phi::Sealed>,
}

/// The longest `User-Agent` or reason kept in an entry.
pub const MAX_ORIGIN_TEXT: usize = 300;

/// An entry about `entity`, by `principal`, from `origin`, for an attempt
/// that succeeds unless [`refused`] says otherwise.
pub fn entry(principal: &Principal, origin: &Origin, action: Action, entity: Entity) -> AuditEntry {
    let agent = Agent {
        user_id: Some(principal.user_id.clone()),
        role: Some(principal.role),
        token_id: Some(principal.claims.jti.clone()),
        ..Agent::default()
    };
    entry_by(agent, origin, action, entity)
}

/// As [`entry`], for a caller known only by `agent` (a sign-up, which has no
/// token yet); the client's address and user agent come from `origin`.
pub fn entry_by(agent: Agent, origin: &Origin, action: Action, entity: Entity) -> AuditEntry {
    AuditEntry {
        action,
        recorded: Timestamp::now(),
        outcome: Outcome::Success,
        agent: Agent {
            client_ip: origin.client_ip.clone(),
            user_agent: origin.user_agent.clone(),
            ..agent
        },
        entity,
        source: Source {
            channel: origin.channel.to_owned(),
            request_id: current_request_id(),
        },
        purpose: origin.reason.as_ref().map(|reason| Purpose {
            reason: reason.clone(),
            emergency: false,
        }),
    }
}

/// What an entry is about: a resource and the patients it belongs to.
pub fn entity(resource_type: &str, resource_id: Option<&str>, patients: Vec<PatientId>) -> Entity {
    Entity {
        resource_type: resource_type.to_owned(),
        resource_id: resource_id.map(str::to_owned),
        patients,
        detail: None,
    }
}

/// Writes `entry` and waits until it is durable. Reads call this before
/// they answer, so no patient data leaves the server unrecorded.
///
/// # Errors
/// 500 when the entry cannot be written (and then the read is not answered).
pub async fn durably(state: &AppState, entry: &AuditEntry) -> Result<(), AppError> {
    let mut batch = WriteBatch::new();
    audit::record(&mut batch, entry);
    state
        .store
        .write(batch)
        .await
        .map(|_| ())
        .map_err(AppError::internal)
}

/// Records that `error` refused (or failed) `entry`'s attempt, then
/// returns `error`. A refusal that cannot be recorded is still a refusal.
pub async fn refused(state: &AppState, mut entry: AuditEntry, error: AppError) -> AppError {
    entry.outcome = match error {
        AppError::Forbidden(_) | AppError::Unauthorized(_) => Outcome::Denied,
        _ => Outcome::Failed,
    };
    entry
        .entity
        .detail
        .get_or_insert_with(|| error.code().as_str().to_owned());
    if let Err(e) = durably(state, &entry).await {
        tracing::error!(error = %e, "could not record a refused access in the audit log");
    }
    error
}

/// The filters of `GET /api/audit`.
#[derive(Debug, Default)]
pub struct AuditQuery {
    /// Entries about this patient.
    pub patient_id: Option<PatientId>,
    /// Entries by this user.
    pub user_id: Option<UserId>,
    /// Entries with this action.
    pub action: Option<Action>,
    /// Recorded at or after.
    pub from: Option<Timestamp>,
    /// Recorded before.
    pub to: Option<Timestamp>,
    /// Entries after this number.
    pub after: Option<u64>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// The most entries one page holds, and the most a filtered page examines.
const PAGE: usize = 500;
const EXAMINE: usize = 10_000;

/// Audit entries for admins, oldest first, filtered; the query itself is
/// audited.
///
/// # Errors
/// 403 for anyone but admins; 422 for a bad limit.
pub async fn query(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    q: AuditQuery,
) -> Result<AuditPage, AppError> {
    let this = entry(
        principal,
        origin,
        Action::E,
        entity("AuditEvent", None, Vec::new()),
    );
    if let Err(e) = principal.require(&[Role::Admin]) {
        return Err(refused(state, this, e).await);
    }
    let limit = crate::service::page_size(q.limit, 100, PAGE)?;
    let after = q.after.unwrap_or(0);
    // Candidates: a patient's entries through their index, or the log itself.
    let candidates: Vec<(u64, Vec<u8>)> = match &q.patient_id {
        Some(patient) => {
            let mut out = Vec::new();
            for seq in state
                .store
                .audit_of_patient(patient.as_str(), after, EXAMINE)?
            {
                if let Some(json) = state.store.audit_entry(seq)? {
                    out.push((seq, json));
                }
            }
            out
        }
        None => state.store.audit_log(after, EXAMINE)?,
    };
    let examined_all = candidates.len() < EXAMINE;
    let mut entries = Vec::new();
    let mut last_seen = after;
    for (seq, json) in candidates {
        last_seen = seq;
        let entry: AuditEntry = serde_json::from_slice(&json).map_err(AppError::internal)?;
        let keep = q
            .user_id
            .as_ref()
            .is_none_or(|u| entry.agent.user_id.as_ref() == Some(u))
            && q.action.is_none_or(|a| entry.action == a)
            && q.from.is_none_or(|from| entry.recorded >= from)
            && q.to.is_none_or(|to| entry.recorded < to);
        if keep {
            let mut value = serde_json::to_value(&entry).map_err(AppError::internal)?;
            if let Some(purpose) = &entry.purpose {
                value["purpose"]["reason"] = opened_reason(state, &entry.source, purpose).into();
            }
            entries.push(AuditRecord { seq, entry: value });
            if entries.len() == limit {
                break;
            }
        }
    }
    let more = entries.len() == limit || !examined_all;
    durably(state, &this).await?;
    Ok(AuditPage {
        entries,
        next: more.then_some(last_seen),
    })
}

/// Who opened a patient's data, when and why: for that patient (and admins).
///
/// # Errors
/// 403 for anyone else; 422 for a malformed id.
pub async fn access_log(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
    after: Option<u64>,
) -> Result<AccessLog, AppError> {
    let patient_id = super::parse_patient_id(patient_id)?;
    let this = entry(
        principal,
        origin,
        Action::R,
        entity("AuditEvent", None, Vec::new()),
    );
    let viewer = crate::service::schedule::viewer(state, principal)?;
    let own = viewer.patient_id.as_ref() == Some(&patient_id);
    if !own && viewer.role != Role::Admin {
        let e =
            AppError::Forbidden("only the patient and admins read a patient's access log".into());
        return Err(refused(state, this, e).await);
    }
    let seqs = state
        .store
        .audit_of_patient(patient_id.as_str(), after.unwrap_or(0), PAGE + 1)?;
    let more = seqs.len() > PAGE;
    let mut entries = Vec::new();
    for seq in seqs.into_iter().take(PAGE) {
        let Some(json) = state.store.audit_entry(seq)? else {
            continue;
        };
        let e: AuditEntry = serde_json::from_slice(&json).map_err(AppError::internal)?;
        entries.push(AccessLogEntry {
            seq,
            recorded: e.recorded,
            action: e.action.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            user_id: e.agent.user_id,
            role: e.agent.role,
            resource_type: e.entity.resource_type,
            resource_id: e.entity.resource_id,
            reason: e
                .purpose
                .as_ref()
                .map(|p| opened_reason(state, &e.source, p)),
            emergency: e.purpose.is_some_and(|p| p.emergency),
        });
    }
    durably(state, &this).await?;
    Ok(AccessLog {
        next: more.then(|| entries.last().map(|e| e.seq)).flatten(),
        entries,
    })
}

/// An entry's reason in the clear, for those who may read the entry.
fn opened_reason(state: &AppState, source: &Source, purpose: &Purpose) -> String {
    let place = audit::reason_place(source.request_id.as_deref());
    match state.vault.open_json::<String>(place, &purpose.reason) {
        Ok(reason) => reason,
        Err(e) => {
            tracing::error!(error = %e, "an audit entry's reason does not open");
            "(unreadable)".into()
        }
    }
}
