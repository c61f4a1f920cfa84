//! Generated ids: a prefix, then 20 base32 characters (48 bits of
//! milliseconds, so ids sort by creation time, and 52 random bits).

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new id such as `usr_01j9z3kq8m2d5x7c4b6a`.
pub fn new_id(prefix: &str) -> String {
    let millis = jiff::Timestamp::now().as_millisecond().max(0) as u128;
    let mut random = [0u8; 8];
    // getrandom fails only when the OS has no entropy source at all.
    getrandom::fill(&mut random).expect("the OS provides randomness");
    let random = u64::from_be_bytes(random) as u128 & ((1 << 52) - 1);
    let mut value = ((millis & ((1 << 48) - 1)) << 52) | random;
    let mut out = [0u8; 20];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    id.push_str(std::str::from_utf8(&out).expect("alphabet is ASCII"));
    id
}

/// The smallest id `prefix` could have been given at `at`: every id made
/// at or after `at` sorts at or after it.
pub fn lowest_id_at(prefix: &str, at: jiff::Timestamp) -> String {
    let millis = at.as_millisecond().max(0) as u128;
    let mut value = (millis & ((1 << 48) - 1)) << 52;
    let mut out = [0u8; 20];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    format!(
        "{prefix}_{}",
        std::str::from_utf8(&out).expect("alphabet is ASCII")
    )
}

/// A new bearer secret for a URL or a message: 32 random bytes, base64url,
/// after `prefix`.
pub fn new_secret(prefix: &str) -> String {
    use base64::Engine;
    let bytes = random_bytes(32);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The store key of a bearer secret: its SHA-256, hex. The secret itself is
/// never stored, so a copy of the store grants nothing.
pub fn secret_key(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random secret of `len` bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    getrandom::fill(&mut out).expect("the OS provides randomness");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = super::new_id("usr");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_id("usr");
        assert_ne!(a, b);
        assert!(a < b, "{a} !< {b}");
        assert_eq!(a.len(), 24);
        assert!(medrelay_protocol::UserId::parse(&a).is_ok());
    }
}
