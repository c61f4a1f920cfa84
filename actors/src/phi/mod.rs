//! Protected health information at rest: the [`Vault`] that seals and opens
//! field values, and the blind indexes that make them searchable.
//!
//! Each value is sealed on its own with XChaCha20-Poly1305 under a fresh
//! random 192-bit nonce (random nonces of that size never repeat in
//! practice, unlike AES-GCM's 96 bits). The associated data names the
//! table, the record id and the field, so a ciphertext copied onto another
//! record or field fails to open. The stored text carries the id of the key
//! that sealed it: `<key id>:<base64url(nonce ‖ ciphertext)>`.
//!
//! Exact-match search never touches plaintext: a blind index is
//! HMAC-SHA256 of the normalised value under a key of its own, so the index
//! reveals equality and nothing else.
//!
//! The keys live in one file (`data/phi.key` unless configured), written
//! with mode 0600 when the vault first opens it.

mod keyfile;

pub use keyfile::{add_key, retire_old_keys};

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const NONCE: usize = 24;
const KEY: usize = 32;

/// Why a value could not be opened, or the key file not read.
#[derive(Debug, thiserror::Error)]
pub enum PhiError {
    /// The value names a key the vault does not hold.
    #[error("sealed with key {0}, which the key file does not hold")]
    UnknownKey(u32),
    /// The value is not in the sealed form.
    #[error("not a sealed value: {0}")]
    Malformed(&'static str),
    /// Authentication failed: the value was changed, or belongs to another
    /// record or field.
    #[error("{0} does not open: it was altered or belongs to another record or field")]
    Tampered(String),
    /// The key file cannot be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where a sealed value belongs: its table, record id and field. Bound into
/// the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The table.
    pub table: &'a str,
    /// The record's id.
    pub id: &'a str,
    /// The field.
    pub field: &'a str,
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        [self.table, self.id, self.field].join("\0").into_bytes()
    }
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}.{}", self.table, self.id, self.field)
    }
}

/// A sealed value as stored: `<key id>:<base64url(nonce ‖ ciphertext)>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// A sealed value kept as text somewhere a typed field cannot be (an
    /// event's text field); [`Vault::open_value`] checks its form.
    pub fn from_text(text: String) -> Sealed {
        Sealed(text)
    }

    /// The stored text.
    pub fn into_text(self) -> String {
        self.0
    }

    /// The id of the key that sealed it.
    ///
    /// # Errors
    /// [`PhiError::Malformed`] when the text is not in the sealed form.
    pub fn key_id(&self) -> Result<u32, PhiError> {
        let (id, _) = self
            .0
            .split_once(':')
            .ok_or(PhiError::Malformed("no key id"))?;
        id.parse().map_err(|_| PhiError::Malformed("bad key id"))
    }
}

/// Seals and opens PHI field values; computes blind indexes.
pub struct Vault {
    current: u32,
    ciphers: BTreeMap<u32, XChaCha20Poly1305>,
    index: Hmac<Sha256>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Vault")
            .field("current", &self.current)
            .field("keys", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Vault {
    /// Opens the key file at `path`, creating it (mode 0600, one fresh key
    /// and a fresh index key) when it does not exist.
    ///
    /// # Errors
    /// [`PhiError::KeyFile`] when it cannot be read, parsed or created.
    pub fn open(path: &Path) -> Result<Vault, PhiError> {
        let fail = |reason: String| PhiError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            keyfile::create(path).map_err(|e| fail(e.to_string()))?;
            tracing::info!(path = %path.display(), "created a new PHI key file");
        }
        let file = keyfile::read(path)?;
        let decode = |b64: &str| -> Result<[u8; KEY], PhiError> {
            URL_SAFE_NO_PAD
                .decode(b64)
                .ok()
                .and_then(|k| <[u8; KEY]>::try_from(k).ok())
                .ok_or_else(|| fail("a key is not 32 bytes of base64url".into()))
        };
        let mut ciphers = BTreeMap::new();
        for (id, key) in &file.keys {
            ciphers.insert(*id, XChaCha20Poly1305::new(&decode(key)?.into()));
        }
        if !ciphers.contains_key(&file.current) {
            return Err(fail(format!(
                "the current key {} is not listed",
                file.current
            )));
        }
        let index = <Hmac<Sha256> as Mac>::new_from_slice(&decode(&file.index)?)
            .expect("HMAC takes keys of any length");
        Ok(Vault {
            current: file.current,
            ciphers,
            index,
        })
    }

    /// A vault with fresh random keys that exist only in memory (tests).
    pub fn ephemeral() -> Vault {
        Vault {
            current: 1,
            ciphers: BTreeMap::from([(1, XChaCha20Poly1305::new(&random::<KEY>().into()))]),
            index: <Hmac<Sha256> as Mac>::new_from_slice(&random::<KEY>())
                .expect("HMAC takes keys of any length"),
        }
    }

    /// The id of the key new values are sealed with.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// The ids of every key the vault holds.
    pub fn key_ids(&self) -> Vec<u32> {
        self.ciphers.keys().copied().collect()
    }

    /// Seals `plain` for `place` under the current key.
    pub fn seal(&self, place: Place<'_>, plain: &[u8]) -> Sealed {
        let nonce = random::<NONCE>();
        let cipher = &self.ciphers[&self.current];
        let aad = place.aad();
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length that fits in memory");
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Sealed(format!("{}:{}", self.current, URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a value sealed for `place`.
    ///
    /// # Errors
    /// [`PhiError::Tampered`] when it was altered or sealed for another
    /// place; [`PhiError::UnknownKey`] or [`PhiError::Malformed`] otherwise.
    pub fn open_value(&self, place: Place<'_>, sealed: &Sealed) -> Result<Vec<u8>, PhiError> {
        let id = sealed.key_id()?;
        let (_, body) = sealed.0.split_once(':').expect("key_id checked the form");
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| PhiError::Malformed("body is not base64url"))?;
        if bytes.len() < NONCE {
            return Err(PhiError::Malformed("shorter than its nonce"));
        }
        let cipher = self.ciphers.get(&id).ok_or(PhiError::UnknownKey(id))?;
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().expect("split at the nonce's length");
        let aad = place.aad();
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| PhiError::Tampered(place.to_string()))
    }

    /// Seals a value as JSON.
    pub fn seal_json<T: Serialize>(&self, place: Place<'_>, value: &T) -> Sealed {
        let json = serde_json::to_vec(value).expect("plain data serialises to JSON");
        self.seal(place, &json)
    }

    /// Opens a value sealed by [`Vault::seal_json`].
    ///
    /// # Errors
    /// As [`Vault::open_value`], and [`PhiError::Malformed`] for JSON that
    /// does not fit `T`.
    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        place: Place<'_>,
        sealed: &Sealed,
    ) -> Result<T, PhiError> {
        let json = self.open_value(place, sealed)?;
        serde_json::from_slice(&json).map_err(|_| PhiError::Malformed("sealed JSON does not fit"))
    }

    /// The blind index of `value` (already normalised) for the search
    /// `kind` ("name", "email", …): HMAC-SHA256, hex, 128 bits.
    pub fn blind(&self, kind: &str, value: &str) -> String {
        let mut mac = self.index.clone();
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: Place<'static> = Place {
        table: "patients",
        id: "pat_1",
        field: "name",
    };

    #[test]
    fn sealed_values_open_only_in_their_place() {
        let vault = Vault::ephemeral();
        let sealed = vault.seal(HERE, b"Ada Lovelace");
        assert!(!sealed.0.contains("Ada"));
        assert_eq!(vault.open_value(HERE, &sealed).unwrap(), b"Ada Lovelace");
        // The same value seals differently each time (fresh nonce).
        assert_ne!(vault.seal(HERE, b"Ada Lovelace"), sealed);
        for other in [
            Place {
                id: "pat_2",
                ..HERE
            },
            Place {
                field: "dob",
                ..HERE
            },
            Place {
                table: "records",
                ..HERE
            },
        ] {
            let err = vault.open_value(other, &sealed).unwrap_err();
            assert!(matches!(err, PhiError::Tampered(_)), "{err}");
        }
        let mut flipped = sealed.0.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = Sealed(String::from_utf8(flipped).unwrap());
        assert!(vault.open_value(HERE, &flipped).is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/phi.key");
        let first = Vault::open(&path).unwrap();
        let sealed = first.seal(HERE, b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Vault::open(&path).unwrap();
        assert_eq!(again.open_value(HERE, &sealed).unwrap(), b"x");
        assert_eq!(first.blind("name", "ada"), again.blind("name", "ada"));
        assert_ne!(again.blind("name", "ada"), again.blind("email", "ada"));
        // A key the vault lacks is named.
        let other = Vault::ephemeral();
        let foreign = Sealed(sealed.0.replacen("1:", "7:", 1));
        assert!(matches!(
            other.open_value(HERE, &foreign),
            Err(PhiError::UnknownKey(7))
        ));
    }
}
