//! Notification operations: sending now by e-mail, SMS or push (seed
//! section 5), a user's notification preferences, and their push devices.
//! The REST routes in `http/notifications/` call these.

use jiff::Timestamp;
use medrelay_actors::accounts::UserRecord;
use medrelay_actors::notify::{DeviceRecord, Platform, PreferencesRecord, device_key};
use medrelay_actors::store::{Table, WriteBatch};
use medrelay_protocol::notification::{
    Accepted, DeviceRequest, DeviceView, EmailRequest, NotificationChannel,
    NotificationPreferences, PushRequest, SmsRequest,
};
use medrelay_protocol::profile::Phone;
use medrelay_protocol::{Email, Role};

use crate::auth::Principal;
use crate::delivery::Draft;
use crate::error::AppError;
use crate::state::AppState;

/// How a device is shown to its owner.
fn device_view(d: DeviceRecord) -> DeviceView {
    DeviceView {
        token: d.token,
        platform: d.platform,
        registered_at: d.registered_at,
    }
}

/// Queues an e-mail (admins and doctors).
///
/// # Errors
/// 403 for other roles; 422 naming the field for a bad address or text.
pub async fn send_email(
    state: &AppState,
    principal: &Principal,
    body: EmailRequest,
) -> Result<Accepted, AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let limits = state.notifier.settings();
    let to = Email::parse(&body.to).map_err(|e| AppError::invalid("to", e))?;
    let subject = bounded("subject", &body.subject, limits.max_subject_chars)?;
    let text = bounded("body", &body.body, limits.max_body_chars)?;
    let draft = direct(
        NotificationChannel::Email,
        to.as_str().to_owned(),
        Some(subject),
        text,
        principal,
    );
    accept(state, draft).await
}

/// Queues a text message to an E.164 number (admins and doctors).
///
/// # Errors
/// 403 for other roles; 422 naming the field for a bad number or text.
pub async fn send_sms(
    state: &AppState,
    principal: &Principal,
    body: SmsRequest,
) -> Result<Accepted, AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let to = Phone::parse(&body.to).map_err(|e| AppError::invalid("to", e))?;
    let text = bounded(
        "message",
        &body.message,
        state.notifier.settings().max_sms_chars,
    )?;
    let draft = direct(
        NotificationChannel::Sms,
        to.as_str().to_owned(),
        None,
        text,
        principal,
    );
    accept(state, draft).await
}

/// Queues a push notification to a device token (admins and doctors).
///
/// # Errors
/// 403 for other roles; 422 naming the field for a bad token or text.
pub async fn send_push(
    state: &AppState,
    principal: &Principal,
    body: PushRequest,
) -> Result<Accepted, AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let limits = state.notifier.settings();
    let to = device_token("to", &body.to)?;
    let title = bounded("title", &body.title, limits.max_subject_chars)?;
    let text = bounded("message", &body.message, limits.max_body_chars)?;
    let draft = direct(NotificationChannel::Push, to, Some(title), text, principal);
    accept(state, draft).await
}

/// A message a staff member sends directly (not a reminder).
pub(crate) fn direct(
    channel: NotificationChannel,
    recipient: String,
    subject: Option<String>,
    body: String,
    by: &Principal,
) -> Draft {
    Draft {
        channel,
        recipient,
        subject,
        body,
        category: None,
        user_id: None,
        patient_id: None,
        appointment_id: None,
        due_at: None,
        created_by: Some(by.user_id.clone()),
        fallback: Vec::new(),
        fallback_of: None,
        invitation: None,
    }
}

async fn accept(state: &AppState, draft: Draft) -> Result<Accepted, AppError> {
    let record = state.notifier.submit(draft).await?;
    tracing::info!(notification = %record.notification_id, channel = %record.channel, "notification queued");
    Ok(Accepted {
        status: "Queued",
        notification_id: record.notification_id,
    })
}

/// The caller's notification preferences (defaults until they set them).
///
/// # Errors
/// 500 when the store cannot be read.
pub fn preferences(
    state: &AppState,
    principal: &Principal,
) -> Result<NotificationPreferences, AppError> {
    Ok(medrelay_actors::notify::preferences(
        &state.store,
        &principal.user_id,
    )?)
}

/// Replaces the caller's notification preferences; in force at once, also
/// for reminders already scheduled.
///
/// # Errors
/// 422 naming the field: a preferred channel other than e-mail or SMS, an
/// unknown time zone, quiet hours that start where they end.
pub async fn set_preferences(
    state: &AppState,
    principal: &Principal,
    prefs: NotificationPreferences,
) -> Result<NotificationPreferences, AppError> {
    if !matches!(
        prefs.preferred_channel,
        NotificationChannel::Email | NotificationChannel::Sms
    ) {
        return Err(AppError::invalid(
            "preferredChannel",
            "must be email or sms",
        ));
    }
    if let Some(tz) = &prefs.time_zone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(AppError::invalid(
            "timeZone",
            format!("unknown IANA time zone {tz:?}"),
        ));
    }
    if let Some(q) = &prefs.quiet_hours
        && q.start == q.end
    {
        return Err(AppError::invalid("quietHours", "start and end must differ"));
    }
    if prefs.agenda_at.is_some_and(|t| t.minutes() >= 24 * 60) {
        return Err(AppError::invalid("agendaAt", "must be 00:00 to 23:59"));
    }
    let mut batch = WriteBatch::new();
    batch.put(
        principal.user_id.as_str(),
        &PreferencesRecord(prefs.clone()),
    );
    state.store.write(batch).await.map_err(AppError::internal)?;
    tracing::info!(user = %principal.user_id, "notification preferences saved");
    // A doctor's agenda follows their chosen time and zone.
    if principal.role == Role::Doctor
        && let Some(user) = state.store.get::<UserRecord>(principal.user_id.as_str())?
        && let Some(provider) = user.provider_id
    {
        state.notifier.replan_agenda(&provider).await;
    }
    Ok(prefs)
}

/// Registers a push device for the caller (re-registering refreshes it).
///
/// # Errors
/// 422 naming the field; 409 when the account has its most devices.
pub async fn register_device(
    state: &AppState,
    principal: &Principal,
    body: DeviceRequest,
) -> Result<DeviceView, AppError> {
    let token = device_token("token", &body.token)?;
    let platform = Platform::parse(&body.platform)
        .ok_or_else(|| AppError::invalid("platform", "must be android, ios or web"))?;
    let known = state.notifier.devices(&principal.user_id)?;
    let max = state.notifier.settings().max_devices_per_user;
    if !known.iter().any(|d| d.token == token) && known.len() >= max {
        return Err(AppError::Conflict {
            message: format!("at most {max} devices per account; remove one first"),
            field: Some("token".into()),
        });
    }
    let record = DeviceRecord {
        token,
        platform,
        registered_at: Timestamp::now(),
    };
    let mut batch = WriteBatch::new();
    batch.put(device_key(&principal.user_id, &record.token), &record);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok(device_view(record))
}

/// The caller's push devices.
///
/// # Errors
/// 500 when the store cannot be read.
pub fn devices(state: &AppState, principal: &Principal) -> Result<Vec<DeviceView>, AppError> {
    let devices = state.notifier.devices(&principal.user_id)?;
    Ok(devices.into_iter().map(device_view).collect())
}

/// Removes one of the caller's push devices.
///
/// # Errors
/// 422 for a malformed token, 404 when the caller has no such device.
pub async fn remove_device(
    state: &AppState,
    principal: &Principal,
    token: &str,
) -> Result<(), AppError> {
    let token = device_token("token", token)?;
    let key = device_key(&principal.user_id, &token);
    if state.store.get::<DeviceRecord>(&key)?.is_none() {
        return Err(AppError::NotFound("no such device".into()));
    }
    let mut batch = WriteBatch::new();
    batch.delete(Table::Devices, key);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok(())
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(AppError::invalid(field, "must not hold control characters"));
    }
    Ok(value.to_owned())
}

fn device_token(field: &str, token: &str) -> Result<String, AppError> {
    if token.is_empty()
        || token.len() > 4096
        || !token.bytes().all(|b| b.is_ascii_graphic())
        || token.contains('/')
    {
        return Err(AppError::invalid(
            field,
            "must be a device token: 1 to 4096 printable characters without spaces or '/'",
        ));
    }
    Ok(token.to_owned())
}
