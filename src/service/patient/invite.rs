//! `POST /api/patients/{id}/invite`: a one-time link for a patient
//! registered at the desk to claim a login (sign-up with `inviteToken`).

use jiff::{SignedDuration, Timestamp};
use medrelay_actors::audit::{self, Action};
use medrelay_actors::patients::{StoredPatient, invites};
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::Role;
use medrelay_protocol::notification::NotificationChannel;
use medrelay_protocol::patient::{InviteRequest, InviteSent};

use crate::auth::Principal;
use crate::error::AppError;
use crate::service::audit::{Origin, entity, entry, refused};
use crate::service::notification::direct;
use crate::service::schedule::viewer;
use crate::state::AppState;

/// How long an invitation works.
const VALID_FOR: SignedDuration = SignedDuration::from_hours(72);

/// Sends the patient an invitation by e-mail or SMS (admins, and doctors
/// for the patients in their care).
///
/// # Errors
/// 403 for others; 404; 409 when the patient has a login already; 422 for
/// a channel the patient has no address for.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    patient_id: &str,
    body: InviteRequest,
) -> Result<InviteSent, AppError> {
    let patient_id = crate::service::parse_patient_id(patient_id)?;
    let mut about = entity(
        "Patient",
        Some(patient_id.as_str()),
        vec![patient_id.clone()],
    );
    about.detail = Some("invite".into());
    let this = entry(principal, origin, Action::E, about);
    let viewer = viewer(state, principal)?;
    let allowed = match viewer.role {
        Role::Admin => true,
        Role::Doctor => viewer.may_see_patient(&state.store, &patient_id)?,
        Role::Patient => false,
    };
    if !allowed {
        let e =
            AppError::Forbidden("admins, and doctors for patients in their care, invite".into());
        return Err(refused(state, this, e).await);
    }
    let stored = state.store.get::<StoredPatient>(patient_id.as_str())?;
    let stored = match stored {
        Some(s) if s.deleted_at.is_some() => {
            let e = AppError::Gone(format!("patient {patient_id} was deleted"));
            return Err(refused(state, this, e).await);
        }
        Some(s) => s,
        None => {
            let e = AppError::NotFound(format!("no patient {patient_id}"));
            return Err(refused(state, this, e).await);
        }
    };
    let patient =
        medrelay_actors::patients::open(&state.vault, stored).map_err(AppError::internal)?;
    if patient.user_id.is_some() {
        let e = AppError::Conflict {
            message: format!("patient {patient_id} has a login already"),
            field: None,
        };
        return Err(refused(state, this, e).await);
    }
    let contact = &patient.contact_info;
    let (channel, recipient) = match body.channel {
        None | Some(NotificationChannel::Email) if contact.email.is_some() => (
            NotificationChannel::Email,
            contact.email.as_ref().map(|e| e.as_str().to_owned()),
        ),
        None | Some(NotificationChannel::Sms) => (
            NotificationChannel::Sms,
            contact.phone.as_ref().map(|p| p.as_str().to_owned()),
        ),
        Some(other) => {
            return Err(AppError::invalid(
                "channel",
                format!("invitations go by email or sms, not {other}"),
            ));
        }
    };
    let recipient = recipient.ok_or_else(|| {
        AppError::invalid(
            "channel",
            format!("the patient has no address for {channel}"),
        )
    })?;
    let expires_at = Timestamp::now()
        .checked_add(VALID_FOR)
        .map_err(AppError::internal)?;
    let mut batch = WriteBatch::new();
    let token = invites::issue(&mut batch, &patient_id, &principal.user_id, expires_at);
    audit::record(&mut batch, &this);
    state.store.write(batch).await.map_err(AppError::internal)?;

    // The message names no one: it may be read on a shared phone or inbox.
    let base = state
        .settings
        .notifications
        .public_url
        .trim_end_matches('/');
    let text = format!(
        "You are invited to sign up for your clinic's patient portal. Your one-time code \
         (valid for 72 hours): {token}\nSign up at {base}/signup?invite={token}"
    );
    let mut draft = direct(
        channel,
        recipient,
        Some("Your patient portal sign-up".into()),
        text,
        principal,
    );
    draft.patient_id = Some(patient_id.clone());
    let record = state.notifier.submit(draft).await?;
    tracing::info!(patient = %patient_id, notification = %record.notification_id, "invitation sent");
    Ok(InviteSent {
        patient_id,
        channel,
        expires_at,
        notification_id: record.notification_id,
    })
}
