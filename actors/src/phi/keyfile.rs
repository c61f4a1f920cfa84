//! The key file: JSON holding every key still needed and the blind-index
//! key, written with mode 0600 by replacing the whole file (a temporary
//! file, synced, renamed), so a crash leaves the old file or the new one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{KEY, PhiError, random};

/// The key file's contents.
#[derive(Serialize, Deserialize)]
pub(super) struct KeyFile {
    /// The key new values are sealed with.
    pub(super) current: u32,
    /// Every key still needed to open stored values, by id.
    pub(super) keys: BTreeMap<u32, String>,
    /// The blind-index key.
    pub(super) index: String,
}

fn fail(path: &Path, reason: impl ToString) -> PhiError {
    PhiError::KeyFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads and parses the key file.
pub(super) fn read(path: &Path) -> Result<KeyFile, PhiError> {
    let text = std::fs::read_to_string(path).map_err(|e| fail(path, e))?;
    serde_json::from_str(&text).map_err(|e| fail(path, e))
}

/// A new key file: one fresh key and a fresh index key.
pub(super) fn create(path: &Path) -> std::io::Result<()> {
    let file = KeyFile {
        current: 1,
        keys: BTreeMap::from([(1, URL_SAFE_NO_PAD.encode(random::<KEY>()))]),
        index: URL_SAFE_NO_PAD.encode(random::<KEY>()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    replace(path, &file)
}

/// Adds a fresh key and makes it the one new values are sealed with; the
/// older keys stay until nothing uses them ([`retire_old_keys`]). Returns
/// the new key's id.
///
/// # Errors
/// [`PhiError::KeyFile`] when the file cannot be read or written.
pub fn add_key(path: &Path) -> Result<u32, PhiError> {
    let mut file = read(path)?;
    let id = file.keys.keys().max().copied().unwrap_or(0) + 1;
    file.keys
        .insert(id, URL_SAFE_NO_PAD.encode(random::<KEY>()));
    file.current = id;
    replace(path, &file).map_err(|e| fail(path, e))?;
    Ok(id)
}

/// Drops every key but `current` from the file, once nothing sealed with
/// them is left. Returns how many were dropped.
///
/// # Errors
/// [`PhiError::KeyFile`] when the file cannot be read or written, or its
/// current key is not `current` (rotated again meanwhile).
pub fn retire_old_keys(path: &Path, current: u32) -> Result<usize, PhiError> {
    let mut file = read(path)?;
    if file.current != current {
        return Err(fail(
            path,
            format!("its current key is {}, not {current}", file.current),
        ));
    }
    let before = file.keys.len();
    file.keys.retain(|id, _| *id == current);
    let dropped = before - file.keys.len();
    if dropped > 0 {
        replace(path, &file).map_err(|e| fail(path, e))?;
    }
    Ok(dropped)
}

/// Writes `file` to a temporary file with mode 0600, syncs it and renames
/// it over `path`.
fn replace(path: &Path, file: &KeyFile) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(file).expect("the key file serialises");
    let tmp = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&tmp)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        // The rename itself survives a crash only once the folder is synced.
        dir.sync_all()?;
    }
    Ok(())
}
