//! Patient text in kept events: an in-app notification's title and body
//! name the patient and their appointment, so the store seals them wherever
//! it keeps the event at rest (the channel history and the redo log) and
//! opens them when it reads the event back. Live subscribers get the event
//! as committed, from memory. Which fields these are is the event's own
//! knowledge ([`Event::phi_text_mut`]).

use std::borrow::Cow;

use medrelay_protocol::Event;
use redb::{ReadableTable, WriteTransaction};

use super::tables;
use crate::phi::{PhiError, Place, Sealed, Vault};

/// The table named in the sealed values' associated data.
const TABLE: &str = "channel_events";

/// `event` as kept at rest: its patient text sealed under the vault's
/// current key (unchanged without a vault or without such text).
pub(super) fn seal<'e>(vault: Option<&Vault>, event: &'e Event) -> Cow<'e, Event> {
    let Some(vault) = vault.filter(|_| event.carries_phi_text()) else {
        return Cow::Borrowed(event);
    };
    let mut kept = event.clone();
    let Some((id, fields)) = kept.phi_text_mut() else {
        return Cow::Borrowed(event);
    };
    for (field, text) in fields {
        let sealed = vault.seal(
            Place {
                table: TABLE,
                id,
                field,
            },
            text.as_bytes(),
        );
        *text = sealed.into_text();
    }
    Cow::Owned(kept)
}

/// `event` as read back: its patient text opened. A value that does not
/// open (its key was retired by a rotation, or it was altered) is replaced
/// by a note saying so, and logged, rather than failing the whole replay;
/// text not in the sealed form (kept before this release) is left as it is.
pub(super) fn open(vault: Option<&Vault>, event: &mut Event) {
    let Some(vault) = vault else {
        return;
    };
    if let Some((id, fields)) = event.phi_text_mut() {
        for (field, text) in fields {
            let place = Place {
                table: TABLE,
                id,
                field,
            };
            let sealed = Sealed::from_text(std::mem::take(text));
            *text = match vault.open_value(place, &sealed) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                // Kept before events were sealed: the channel history only
                // holds its last events, so these age out.
                Err(PhiError::Malformed(_)) => sealed.into_text(),
                Err(e) => {
                    tracing::warn!(notification = id, field, error = %e, "a kept event's text does not open");
                    UNREADABLE.to_owned()
                }
            };
        }
    }
}

/// What replaces text that no longer opens.
const UNREADABLE: &str = "(this message can no longer be shown)";

/// The counter [`seal_kept`] sets once it has run.
const EVENTS_SEALED: &str = "events_sealed";

/// Seals, once, the patient text of the events kept before the store sealed
/// them, inside the opening transaction `txn`. Returns `None` if it ran
/// before, else how many events it sealed (the caller then scrubs the redo
/// log, which may hold the same text from before).
pub(super) fn seal_kept(
    txn: &WriteTransaction,
    vault: &Vault,
) -> Result<Option<usize>, redb::Error> {
    let mut counters = txn.open_table(tables::COUNTERS)?;
    if counters.get(EVENTS_SEALED)?.is_some() {
        return Ok(None);
    }
    let mut history = txn.open_table(tables::CHANNEL_EVENTS)?;
    let mut sealed = Vec::new();
    for item in history.iter()? {
        let (key, value) = item?;
        let Ok(event) = serde_json::from_slice::<Event>(value.value()) else {
            continue;
        };
        if !event.carries_phi_text() {
            continue;
        }
        // Nothing was sealed before this ran: every such event is in the clear.
        let kept = seal(Some(vault), &event);
        let (name, seq) = key.value();
        sealed.push((
            name.to_owned(),
            seq,
            serde_json::to_vec(&*kept).expect("events serialise to JSON"),
        ));
    }
    for (name, seq, bytes) in &sealed {
        history.insert((name.as_str(), *seq), bytes.as_slice())?;
    }
    counters.insert(EVENTS_SEALED, 1)?;
    Ok(Some(sealed.len()))
}
