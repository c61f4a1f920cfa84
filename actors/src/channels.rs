//! Who may subscribe to which channel, and what a channel's snapshot holds.

use medrelay_protocol::{Channel, Role, UserId};
use serde_json::{Value, json};

use crate::accounts::UserRecord;
use crate::store::{Store, StoreError};

/// The most users a `users` snapshot lists.
const USERS_SNAPSHOT_LIMIT: usize = 500;

/// Whether `user` with `role` may subscribe to `channel`.
pub fn may_subscribe(user: &UserId, role: Role, channel: &Channel) -> bool {
    match channel {
        Channel::Users => role == Role::Admin,
        Channel::User(owner) => role == Role::Admin || owner == user,
    }
}

/// The channel's current state, sent on a fresh subscription or a resync.
///
/// # Errors
/// [`StoreError`] on a read failure.
pub fn snapshot(store: &Store, channel: &Channel) -> Result<Value, StoreError> {
    match channel {
        Channel::Users => {
            let users = store.scan::<UserRecord>(None, USERS_SNAPSHOT_LIMIT + 1)?;
            let truncated = users.len() > USERS_SNAPSHOT_LIMIT;
            let users: Vec<Value> = users
                .iter()
                .take(USERS_SNAPSHOT_LIMIT)
                .map(|(_, u)| summary(u))
                .collect();
            Ok(json!({ "users": users, "truncated": truncated }))
        }
        Channel::User(id) => Ok(store
            .get::<UserRecord>(id.as_str())?
            .map(|u| json!({ "user": summary(&u) }))
            .unwrap_or_else(|| json!({ "user": null }))),
    }
}

fn summary(user: &UserRecord) -> Value {
    json!({
        "userId": user.user_id,
        "username": user.username,
        "role": user.role,
        "patientId": user.patient_id,
        "providerId": user.provider_id,
    })
}
