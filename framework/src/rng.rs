//! The one random generator type of cafe-lab.
//!
//! candle's CPU RNG cannot be seeded (CANDLE_NOTES 3), so every random draw (weights, noise,
//! sampling, augmentation parameters) comes from this seeded generator and is turned into a
//! tensor with `Tensor::from_vec`. Sub-streams are derived with [`derive_seed`] so that adding a
//! draw in one place does not shift every other draw of the run.

use rand::SeedableRng;

/// The generator used everywhere: ChaCha8 is fast, portable and bit-reproducible.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator for `seed`.
pub fn rng_from_seed(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A seed for a named sub-stream of `seed` (SplitMix64 finaliser over the seed and the parts).
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut z = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        z = z
            .wrapping_add(p.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// A generator for a named sub-stream of `seed`.
pub fn sub_rng(seed: u64, parts: &[u64]) -> Rng {
    rng_from_seed(derive_seed(seed, parts))
}
