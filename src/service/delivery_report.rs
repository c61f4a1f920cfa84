//! A notification's delivery report and the delivery statistics. The REST
//! routes in `http/notifications/reports.rs` call these.

use jiff::Timestamp;
use medrelay_actors::notify::NotificationRecord;
use medrelay_protocol::notification::{DeliveryStatus, NotificationChannel};
use medrelay_protocol::{Role, UserId};
use std::collections::BTreeMap;

use medrelay_protocol::report::{Report, Statistics, StatsQuery, StatusView};

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

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
///
/// # Errors
/// 404 for a notification that does not exist or is not the caller's.
pub fn report(state: &AppState, principal: &Principal, id: &str) -> Result<Report, AppError> {
    let not_found = || AppError::NotFound(format!("no notification {id}"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let record = state.notifier.record(id)?.ok_or_else(not_found)?;
    // Someone else's notification is "not found", not "forbidden": its
    // existence is not theirs to learn.
    if !may_read(principal, &record) {
        return Err(not_found());
    }
    // The report is about delivery; a text that no longer opens (sealed
    // under a retired key, or altered) costs only the address.
    let recipient = match record.text(&state.vault) {
        Ok(text) if principal.role == Role::Admin => text.recipient,
        Ok(text) => mask(record.channel, &text.recipient),
        Err(e) => {
            tracing::error!(notification = %record.notification_id, error = %e, "a notification's text does not open");
            "(unavailable)".to_owned()
        }
    };
    Ok(Report {
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
    })
}

/// Most records one statistics request reads.
const STATS_SCAN_LIMIT: usize = 200_000;

/// Delivery statistics by channel and status (admins).
///
/// # Errors
/// 403 for other roles, then 400 for a query the surface could not read,
/// 422 naming a malformed filter.
pub async fn statistics(
    state: &AppState,
    principal: &Principal,
    q: Result<StatsQuery, AppError>,
) -> Result<Statistics, AppError> {
    principal.require(&[Role::Admin])?;
    let q = q?;
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
    Ok(stats)
}
