//! Randomness for the demo: passwords and the folder name straight from the
//! OS (`getrandom`), and a small seeded generator for picking patients,
//! slots and pauses (nothing secret depends on it).

use std::time::Duration;

/// Letters and digits that are hard to mix up (no `l`, `o`, `0`, `1`): 32 of
/// them, so the low five bits of a random byte pick one without bias.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// `N` bytes from the OS's random source.
fn os_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    // getrandom's error implements std's Error only with its `std` feature,
    // so it is turned into text here rather than given `.context()`.
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    Ok(bytes)
}

/// A fresh password for one demo account: 16 characters from `ALPHABET`
/// (80 bits) in four groups, e.g. `k7dm-x2qa-9fre-hw3z`.
///
/// # Errors
/// When the OS random source fails.
pub(crate) fn password() -> anyhow::Result<String> {
    let bytes: [u8; 16] = os_bytes()?;
    let mut out = String::with_capacity(19);
    for (i, group) in bytes.chunks(4).enumerate() {
        if i > 0 {
            out.push('-');
        }
        for byte in group {
            out.push(char::from(ALPHABET[usize::from(*byte & 31)]));
        }
    }
    Ok(out)
}

/// Eight hex digits, for the name of a fresh data folder.
///
/// # Errors
/// When the OS random source fails.
pub(crate) fn suffix() -> anyhow::Result<String> {
    let bytes: [u8; 4] = os_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// SplitMix64, seeded from the OS: the demo's choices of who books which
/// slot, and when.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator with a seed from the OS.
    ///
    /// # Errors
    /// When the OS random source fails.
    pub(crate) fn new() -> anyhow::Result<Rng> {
        Ok(Rng(u64::from_le_bytes(os_bytes()?)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0, so `slice.get(rng.below(len))`
    /// is `None` for an empty slice).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A pause of `lo` to `hi` milliseconds.
    pub(crate) fn pause(&mut self, lo: u64, hi: u64) -> Duration {
        let spread = hi.saturating_sub(lo).saturating_add(1);
        Duration::from_millis(lo.saturating_add(self.next_u64() % spread))
    }
}
