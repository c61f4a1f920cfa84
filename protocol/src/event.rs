//! Domain events: what subscribers of a channel are told, in `seq` order.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{Role, UserId, Username};

/// One event, tagged by `kind`. Stored as written, so new variants may be
/// added but existing ones keep their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// An account was created (channel `users`).
    UserRegistered {
        /// The new account.
        user_id: UserId,
        /// Its login name.
        username: Username,
        /// Its role.
        role: Role,
        /// When it was created.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// The account signed in and a new session (refresh-token family) began.
    SignedIn {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A session was ended by logout.
    SignedOut {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
    /// A session was revoked because its refresh token was presented twice
    /// (a sign that it was stolen).
    SessionRevoked {
        /// The account.
        user_id: UserId,
        /// When.
        #[schemars(with = "String")]
        at: Timestamp,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_kind_tag() {
        let event = Event::SignedIn {
            user_id: UserId::parse("usr_1").unwrap(),
            at: Timestamp::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "signed_in");
        assert_eq!(json["userId"], "usr_1");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }
}
