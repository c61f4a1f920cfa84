//! `/api/notifications` (seed section 5), notification preferences and push
//! devices, and Twilio's delivery callbacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use medrelay_actors::notify::{DeviceRecord, NotificationRecord, PreferencesRecord, device_key};
use medrelay_actors::store::WriteBatch;
use medrelay_protocol::notification::{
    DeliveryStatus, NotificationChannel, NotificationPreferences,
};
use medrelay_protocol::profile::Phone;
use medrelay_protocol::{Email, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorEnvelope;
use super::json::Json;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::notify::providers::{status_callback_url, verify_twilio_signature};
use crate::notify::{Draft, NotifyError};

/// The notification routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(send_email))
        .routes(routes!(send_sms))
        .routes(routes!(send_push))
        .routes(routes!(report))
        .routes(routes!(statistics))
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(register_device, list_devices))
        .routes(routes!(remove_device))
        .routes(routes!(twilio_status))
}

impl From<NotifyError> for AppError {
    fn from(e: NotifyError) -> Self {
        AppError::internal(e)
    }
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EmailRequest {
    #[schema(example = "johndoe@example.com")]
    to: String,
    #[schema(example = "Appointment Reminder")]
    subject: String,
    body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SmsRequest {
    #[schema(example = "+1234567890")]
    to: String,
    message: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    /// A device token.
    to: String,
    title: String,
    message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    /// `Queued` (a channel worker sends it), or `Sent` once it is out.
    status: &'static str,
    notification_id: String,
}

fn direct(
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
    }
}

async fn accept(
    state: &AppState,
    draft: Draft,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    let record = state.notifier.submit(draft).await?;
    tracing::info!(notification = %record.notification_id, channel = %record.channel, "notification queued");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "Queued",
            notification_id: record.notification_id,
        }),
    ))
}

/// Sends an e-mail (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/email", tag = "notifications", request_body = EmailRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_email(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<EmailRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
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
        &principal,
    );
    accept(&state, draft).await
}

/// Sends a text message to an E.164 number (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/sms", tag = "notifications", request_body = SmsRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_sms(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<SmsRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
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
        &principal,
    );
    accept(&state, draft).await
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

/// Sends a push notification to a device token (admins and doctors).
#[utoipa::path(post, path = "/api/notifications/push", tag = "notifications", request_body = PushRequest,
    responses((status = 202, body = Accepted), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn send_push(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<PushRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), AppError> {
    principal.require(&[Role::Admin, Role::Doctor])?;
    let limits = state.notifier.settings();
    let to = device_token("to", &body.to)?;
    let title = bounded("title", &body.title, limits.max_subject_chars)?;
    let text = bounded("message", &body.message, limits.max_body_chars)?;
    let draft = direct(NotificationChannel::Push, to, Some(title), text, &principal);
    accept(&state, draft).await
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    #[schema(value_type = String)]
    status: DeliveryStatus,
    #[schema(value_type = String)]
    at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Report {
    notification_id: String,
    #[schema(value_type = String)]
    channel: NotificationChannel,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    category: Option<medrelay_protocol::notification::NotificationCategory>,
    /// Masked (`j***@example.com`, `+******7890`) for all but admins.
    recipient: String,
    #[schema(value_type = String)]
    status: DeliveryStatus,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    appointment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    due_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_of: Option<String>,
    history: Vec<StatusView>,
}

/// Hides most of an address: the first character of an e-mail's local
/// part and its domain, the last four digits of a number, the last four
/// characters of anything else.
pub fn mask(channel: NotificationChannel, recipient: &str) -> String {
    match channel {
        NotificationChannel::Email => match recipient.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
        NotificationChannel::InApp => recipient.to_owned(),
        _ => {
            let chars: Vec<char> = recipient.chars().collect();
            let keep = chars.len().min(4);
            let hidden = chars.len() - keep;
            let prefix = if recipient.starts_with('+') { "+" } else { "" };
            let stars = "*".repeat(hidden.saturating_sub(prefix.len()));
            let tail: String = chars[hidden..].iter().collect();
            format!("{prefix}{stars}{tail}")
        }
    }
}

fn may_read(principal: &Principal, record: &NotificationRecord) -> bool {
    match principal.role {
        Role::Admin => true,
        _ => {
            record.user_id.as_ref() == Some(&principal.user_id)
                || record.created_by.as_ref() == Some(&principal.user_id)
        }
    }
}

/// A notification's delivery report: the people it is for, the sender, admins.
#[utoipa::path(get, path = "/api/notifications/{notificationId}", tag = "notifications",
    params(("notificationId" = String, Path)),
    responses((status = 200, body = Report), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<axum::Json<Report>, AppError> {
    let not_found = || AppError::NotFound(format!("no notification {id}"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let record = state.notifier.record(&id)?.ok_or_else(not_found)?;
    // Someone else's notification is "not found", not "forbidden": its
    // existence is not theirs to learn.
    if !may_read(&principal, &record) {
        return Err(not_found());
    }
    let recipient = if principal.role == Role::Admin {
        record.recipient.clone()
    } else {
        mask(record.channel, &record.recipient)
    };
    Ok(axum::Json(Report {
        provider_message_id: record.provider_message_id().map(str::to_owned),
        notification_id: record.notification_id,
        channel: record.channel,
        category: record.category,
        recipient,
        status: record.status,
        attempts: record.attempts,
        appointment_id: record.appointment_id.map(|a| a.to_string()),
        due_at: record.due_at,
        fallback_of: record.fallback_of,
        history: record
            .history
            .into_iter()
            .map(|e| StatusView {
                status: e.status,
                at: e.at,
                provider_message_id: e.provider_message_id,
                detail: e.detail,
            })
            .collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Only notifications for this account.
    #[param(value_type = Option<String>)]
    user_id: Option<String>,
    /// Only notifications now in this status.
    status: Option<String>,
    /// Created at or after (RFC 3339).
    from: Option<String>,
    /// Created before (RFC 3339).
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Statistics {
    total: u64,
    /// channel → status → count.
    by_channel: BTreeMap<String, BTreeMap<String, u64>>,
    /// Whether the scan stopped at its limit (narrow the range).
    truncated: bool,
}

/// Most records one statistics request reads.
const STATS_SCAN_LIMIT: usize = 200_000;

/// Delivery statistics by channel and status (admins).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(StatsQuery),
    responses((status = 200, body = Statistics), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn statistics(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Statistics>, AppError> {
    principal.require(&[Role::Admin])?;
    let Query(q) = query.map_err(|e| AppError::BadRequest {
        message: e.body_text(),
        field: None,
    })?;
    let user = q
        .user_id
        .as_deref()
        .map(|u| UserId::parse(u).map_err(|e| AppError::invalid("userId", e)))
        .transpose()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            serde_json::from_value::<DeliveryStatus>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| {
                    AppError::invalid(
                        "status",
                        "one of queued, sent, delivered, failed, undeliverable, expired",
                    )
                })
        })
        .transpose()?;
    let time = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                t.parse::<Timestamp>().map_err(|_| {
                    AppError::invalid(field, "an RFC 3339 time, e.g. 2026-08-01T00:00:00Z")
                })
            })
            .transpose()
    };
    let (from, to) = (time("from", &q.from)?, time("to", &q.to)?);
    let store = state.store.clone();
    let stats = tokio::task::spawn_blocking(move || -> Result<Statistics, AppError> {
        let mut stats = Statistics {
            total: 0,
            by_channel: BTreeMap::new(),
            truncated: false,
        };
        let mut after: Option<String> = None;
        let mut read = 0usize;
        loop {
            let page = store.scan::<NotificationRecord>(after.as_deref(), 2_000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, r) in page {
                read += 1;
                let created = r.history.first().map(|e| e.at);
                if user.as_ref().is_some_and(|u| r.user_id.as_ref() != Some(u))
                    || status.is_some_and(|s| r.status != s)
                    || from.is_some_and(|f| created.is_none_or(|c| c < f))
                    || to.is_some_and(|t| created.is_none_or(|c| c >= t))
                {
                    continue;
                }
                stats.total += 1;
                *stats
                    .by_channel
                    .entry(r.channel.as_str().to_owned())
                    .or_default()
                    .entry(r.status.as_str().to_owned())
                    .or_default() += 1;
            }
            if read >= STATS_SCAN_LIMIT {
                stats.truncated = true;
                break;
            }
        }
        Ok(stats)
    })
    .await
    .map_err(AppError::internal)??;
    Ok(axum::Json(stats))
}

/// Your notification preferences (defaults until you set them).
#[utoipa::path(get, path = "/api/users/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
    Ok(axum::Json(medrelay_actors::notify::preferences(
        &state.store,
        &principal.user_id,
    )?))
}

/// Replaces your notification preferences; in force at once, also for
/// reminders already scheduled.
#[utoipa::path(put, path = "/api/users/me/notification-preferences", tag = "notifications",
    request_body = Object,
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn put_preferences(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(prefs): Json<NotificationPreferences>,
) -> Result<axum::Json<NotificationPreferences>, AppError> {
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
    let mut batch = WriteBatch::new();
    batch.put(
        principal.user_id.as_str(),
        &PreferencesRecord(prefs.clone()),
    );
    state.store.write(batch).await.map_err(AppError::internal)?;
    tracing::info!(user = %principal.user_id, "notification preferences saved");
    Ok(axum::Json(prefs))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeviceRequest {
    token: String,
    /// `android`, `ios` or `web`.
    platform: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeviceView {
    token: String,
    platform: String,
    #[schema(value_type = String)]
    registered_at: Timestamp,
}

/// Registers a push device for your account.
#[utoipa::path(post, path = "/api/devices", tag = "notifications", request_body = DeviceRequest,
    responses((status = 201, body = DeviceView), (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn register_device(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(body): Json<DeviceRequest>,
) -> Result<(StatusCode, axum::Json<DeviceView>), AppError> {
    let token = device_token("token", &body.token)?;
    if !matches!(body.platform.as_str(), "android" | "ios" | "web") {
        return Err(AppError::invalid("platform", "must be android, ios or web"));
    }
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
        platform: body.platform,
        registered_at: Timestamp::now(),
    };
    let mut batch = WriteBatch::new();
    batch.put(device_key(&principal.user_id, &record.token), &record);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok((StatusCode::CREATED, axum::Json(DeviceView::from(record))))
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        DeviceView {
            token: d.token,
            platform: d.platform,
            registered_at: d.registered_at,
        }
    }
}

/// Your registered push devices.
#[utoipa::path(get, path = "/api/devices", tag = "notifications",
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_devices(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<axum::Json<Vec<DeviceView>>, AppError> {
    let devices = state.notifier.devices(&principal.user_id)?;
    Ok(axum::Json(
        devices.into_iter().map(DeviceView::from).collect(),
    ))
}

/// Removes one of your push devices.
#[utoipa::path(delete, path = "/api/devices/{token}", tag = "notifications",
    params(("token" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn remove_device(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(token): Path<String>,
) -> Result<StatusCode, AppError> {
    let token = device_token("token", &token)?;
    let key = device_key(&principal.user_id, &token);
    if state.store.get::<DeviceRecord>(&key)?.is_none() {
        return Err(AppError::NotFound("no such device".into()));
    }
    let mut batch = WriteBatch::new();
    batch.delete(medrelay_actors::store::Table::Devices, key);
    state.store.write(batch).await.map_err(AppError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    notification_id: String,
}

/// Twilio's delivery callback; answered only when `X-Twilio-Signature` is
/// right for the configured auth token and public URL.
#[utoipa::path(post, path = "/api/notifications/twilio/status", tag = "notifications",
    params(CallbackQuery),
    responses((status = 204), (status = 403, body = ErrorEnvelope)))]
async fn twilio_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    use secrecy::ExposeSecret;
    let forbidden = || AppError::Forbidden("missing or wrong X-Twilio-Signature".into());
    let settings = state.notifier.settings();
    let token = settings.sms.auth_token.expose_secret();
    if token.is_empty() || settings.public_url.trim().is_empty() {
        return Err(forbidden());
    }
    let Ok(Query(q)) = query else {
        return Err(forbidden());
    };
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        tracing::warn!("Twilio callback without a signature refused");
        return Err(forbidden());
    };
    let params: Vec<(String, String)> = serde_urlencoded_pairs(&body).ok_or_else(forbidden)?;
    let url = status_callback_url(&settings.public_url, &q.notification_id);
    if !verify_twilio_signature(token, &url, &params, signature) {
        tracing::warn!(notification = %q.notification_id, "Twilio callback with a wrong signature refused");
        return Err(forbidden());
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let sid = field("MessageSid");
    let (status, detail) = match field("MessageStatus").as_deref() {
        Some("delivered") => (DeliveryStatus::Delivered, None),
        Some("sent") => (DeliveryStatus::Sent, None),
        Some(s @ ("undelivered" | "failed")) => (
            DeliveryStatus::Undeliverable,
            Some(format!(
                "Twilio reports {s} (error {})",
                field("ErrorCode").unwrap_or_default()
            )),
        ),
        // queued, sending, accepted: nothing new to record.
        _ => return Ok(StatusCode::NO_CONTENT),
    };
    state
        .notifier
        .provider_report(&q.notification_id, status, sid, detail)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in order.
fn serde_urlencoded_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    if body.len() > 16 * 1024 {
        return None;
    }
    Some(
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}
