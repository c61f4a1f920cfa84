//! Billing account commands over NATS request/reply: the seed's
//! `GetBillingAccount` and `CreateBillingAccount`.
//!
//! `<prefix>.cmd.billing.<patientId>` takes `{"type":"get"}`,
//! `{"type":"create"}` or an insurer's `{"type":"decide","claimId","decision"}`
//! (with an optional `id`, echoed as `re`), with the
//! caller's token in `Authorization: Bearer <jwt>` checked as for the
//! schedule commands, and answers in the WebSocket reply's shape with the
//! account as `data`. The reply is written straight from the account, never
//! through a JSON value, so its amounts keep their exact decimals.

use medrelay_actors::billing::claims::StoredClaim;
use medrelay_protocol::ErrorCode;
use medrelay_protocol::claim::ClaimWritten;
use medrelay_protocol::nats::{BillingCommand, BillingCommandKind};
use medrelay_protocol::ws::Reply;
use serde::Serialize;

use super::authenticate;
use crate::error::AppError;
use crate::service::audit::Origin;
use crate::service::billing;
use crate::state::{AppState, NatsLink};

/// A successful reply: `{"re","ok":true,"data"}`.
#[derive(Serialize)]
struct Answered<'a, T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    re: Option<&'a str>,
    ok: bool,
    data: T,
}

/// Whether the command succeeded, and the reply's bytes.
pub(super) async fn handle(
    state: &AppState,
    link: &NatsLink,
    message: &async_nats::Message,
) -> (bool, Vec<u8>) {
    let failed = |re: Option<String>, e: AppError| {
        let reply = Reply::err(re, e.body());
        (
            false,
            serde_json::to_vec(&reply).expect("replies serialise to JSON"),
        )
    };
    let max = state.settings.nats.max_command_bytes;
    if message.payload.len() > max {
        let reply = Reply::error(
            None,
            ErrorCode::PayloadTooLarge,
            format!("request larger than {max} bytes"),
        );
        return (
            false,
            serde_json::to_vec(&reply).expect("replies serialise to JSON"),
        );
    }
    let command: BillingCommand = match serde_json::from_slice(&message.payload) {
        Ok(command) => command,
        Err(e) => {
            let e = AppError::BadRequest {
                message: format!("a billing command is {{\"type\":\"get\"|\"create\"}}: {e}"),
                field: None,
            };
            return failed(None, e);
        }
    };
    let re = command.id.clone();
    let Some(patient) = link.subjects.patient_of(message.subject.as_str()) else {
        let e = AppError::BadRequest {
            message: format!(
                "billing commands go to {}.cmd.billing.<patientId>",
                link.subjects.prefix()
            ),
            field: None,
        };
        return failed(re, e);
    };
    let principal = match authenticate(state, message) {
        Ok(principal) => principal,
        Err(e) => return failed(re, e),
    };
    if let Err(e) = state.limits.check_user(&principal.user_id) {
        return failed(re, AppError::RateLimited(e));
    }
    let origin = Origin {
        channel: "nats",
        client_ip: None,
        user_agent: None,
        reason: None,
    };
    let patient = patient.as_str();
    let re_text = re.as_deref();
    let outcome = match command.kind {
        BillingCommandKind::Get => billing::account(state, &principal, &origin, patient)
            .await
            .map(|account| answered(re_text, account)),
        BillingCommandKind::Create => billing::open(state, &principal, &origin, patient)
            .await
            .map(|account| answered(re_text, account)),
        BillingCommandKind::Decide => decide(state, &principal, &origin, patient, command)
            .await
            .map(|written| answered(re_text, written)),
    };
    match outcome {
        Ok(reply) => (true, reply),
        Err(e) => {
            if let AppError::Internal(cause) = &e {
                tracing::error!(error = format!("{cause:#}"), subject = %message.subject, "NATS billing command failed");
            }
            failed(re, e)
        }
    }
}

/// A successful reply's bytes.
fn answered<T: Serialize>(re: Option<&str>, data: T) -> Vec<u8> {
    let reply = Answered { re, ok: true, data };
    serde_json::to_vec(&reply).expect("replies serialise to JSON")
}

/// An insurer's decision on one of the subject's patient's claims.
async fn decide(
    state: &AppState,
    principal: &crate::auth::Principal,
    origin: &Origin,
    patient: &str,
    command: BillingCommand,
) -> Result<ClaimWritten, AppError> {
    let (Some(claim), Some(decision)) = (command.claim_id, command.decision) else {
        return Err(AppError::BadRequest {
            message: "decide takes claimId and decision".into(),
            field: Some("claimId".into()),
        });
    };
    let theirs = state
        .store
        .get::<StoredClaim>(claim.as_str())?
        .is_some_and(|c| c.patient_id.as_str() == patient);
    if !theirs {
        return Err(AppError::NotFound(format!(
            "no claim {claim} of patient {patient}"
        )));
    }
    billing::claims::decide(state, principal, origin, claim.as_str(), decision).await
}
