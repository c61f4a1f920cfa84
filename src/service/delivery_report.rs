//! A notification's delivery report. The REST route in
//! `http/notifications/reports.rs` calls it.

use medrelay_actors::notify::NotificationRecord;
use medrelay_protocol::Role;
use medrelay_protocol::notification::NotificationChannel;
use medrelay_protocol::report::{Report, StatusView};

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
