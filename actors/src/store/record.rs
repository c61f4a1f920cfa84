//! Versioned values: every stored value starts with its schema version.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::tables::Table;

/// A value kept in one of the record [`Table`]s.
///
/// Encoded as a 2-byte big-endian schema version followed by JSON, so a later
/// release can tell old values apart and migrate them in [`Record::upgrade`].
pub trait Record: Serialize + DeserializeOwned {
    /// The table this record lives in.
    const TABLE: Table;
    /// The schema version written today.
    const VERSION: u16;

    /// Turns a value written under an older `version` into today's JSON.
    /// The default accepts only the current version.
    ///
    /// # Errors
    /// A message saying why the old value cannot be read.
    fn upgrade(version: u16, json: serde_json::Value) -> Result<serde_json::Value, String> {
        if version == Self::VERSION {
            Ok(json)
        } else {
            Err(format!("no upgrade from schema version {version}"))
        }
    }
}

pub(crate) fn encode<T: Record>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&T::VERSION.to_be_bytes());
    // Serialising plain data structs (no maps with non-string keys) cannot fail.
    serde_json::to_writer(&mut out, value).expect("records serialise to JSON");
    out
}

pub(crate) fn decode<T: Record>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    decode_view::<T, T>(key, bytes)
}

/// Reads a `T` record as `V`, a view of some of its fields (the others are
/// skipped, not built): for reads of many records that need little of each.
/// `V` is no [`Record`], so a view can never be written back in place of
/// the whole.
pub(crate) fn decode_view<T: Record, V: DeserializeOwned>(
    key: &str,
    bytes: &[u8],
) -> Result<V, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: T::TABLE.name(),
        key: key.to_owned(),
        reason,
    };
    let (version, body) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| corrupt("value shorter than its version header".into()))?;
    let version = u16::from_be_bytes(*version);
    if version == T::VERSION {
        return serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()));
    }
    if version > T::VERSION {
        return Err(corrupt(format!(
            "written by a newer release (schema version {version} > {})",
            T::VERSION
        )));
    }
    let json = serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
    let upgraded = T::upgrade(version, json).map_err(corrupt)?;
    serde_json::from_value(upgraded).map_err(|e| corrupt(e.to_string()))
}
