//! FxHash (rustc's hash): a multiply-rotate hash over 64-bit words, far cheaper than SipHash
//! for the integer keys the distributor hashes per sample (stacks, label ids).
//!
//! It is not collision-resistant. [`FxHasher::seeded`] starts from a per-process random
//! state so an attacker cannot precompute colliding inputs offline, and every caller bounds
//! the work a collision can cause.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A `HashMap`/`HashSet` builder with FxHash (unseeded: for keys that are already hashes).
pub type FxBuild = BuildHasherDefault<FxHasher>;

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    /// Starts from this process's random seed.
    pub fn seeded() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        // std's RandomState is keyed from the OS's random source.
        Self(*SEED.get_or_init(|| RandomState::new().hash_one(0x5eed_u64) | 1))
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::Hasher;

    use super::FxHasher;

    #[test]
    fn seeded_differs_from_unseeded_and_is_stable() {
        let hash = |mut h: FxHasher| {
            h.write_u64(42);
            h.write(b"abc");
            h.finish()
        };
        assert_eq!(hash(FxHasher::seeded()), hash(FxHasher::seeded()));
        assert_ne!(hash(FxHasher::seeded()), hash(FxHasher::default()));
        assert_ne!(hash(FxHasher::default()), 0);
    }
}
