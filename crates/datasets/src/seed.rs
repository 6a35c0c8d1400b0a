//! Deterministic random streams derived from a seed, identical on every platform.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash of `seed` and the `keys` that name one use of it (a stream, an epoch, an example).
pub(crate) fn derive(seed: u64, keys: &[u64]) -> u64 {
    keys.iter().fold(mix(seed), |h, &k| mix(h ^ k))
}

/// A ChaCha8 generator for `seed` and `keys`.
pub(crate) fn rng(seed: u64, keys: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, keys))
}
