//! Randomness for the demo: passwords and the folder name straight from the
//! OS (`ids::random_bytes`, which panics if the OS has none, as every id
//! does), and a small seeded generator for picking patients,
//! slots and pauses (nothing secret depends on it).

use std::time::Duration;

use medrelay_actors::ids::random_bytes;

/// Letters and digits that are hard to mix up (no `l`, `o`, `0`, `1`): 32 of
/// them, so the low five bits of a random byte pick one without bias.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A fresh password for one demo account: 16 characters from `ALPHABET`
/// (80 bits) in four groups, e.g. `k7dm-x2qa-9fre-hw3z`.
pub(crate) fn password() -> String {
    let bytes = random_bytes(16);
    let mut out = String::with_capacity(19);
    for (i, group) in bytes.chunks(4).enumerate() {
        if i > 0 {
            out.push('-');
        }
        for byte in group {
            out.push(char::from(ALPHABET[usize::from(*byte & 31)]));
        }
    }
    out
}

/// Eight hex digits, for the name of a fresh data folder.
pub(crate) fn suffix() -> String {
    random_bytes(4).iter().map(|b| format!("{b:02x}")).collect()
}

/// SplitMix64, seeded from the OS: the demo's choices of who books which
/// slot, and when.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator with a seed from the OS.
    pub(crate) fn new() -> Rng {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&random_bytes(8));
        Rng(u64::from_le_bytes(seed))
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
