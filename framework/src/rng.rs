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

/// Every seed-stream tag of cafe-lab, in one place so that no two uses share one by accident.
/// A tag names what a sub-stream draws; changing one changes every seeded output that uses it.
pub mod stream {
    /// The engine, per iteration: the condensation network's initialisation.
    pub const NETWORK: u64 = 1;
    /// The engine, per iteration: real batches drawn for matching.
    pub const SAMPLING: u64 = 2;
    /// The engine: augmentation seeds of the inner loop.
    pub const AUGMENT: u64 = 3;
    /// The synthetic set's initialisation.
    pub const INIT: u64 = 4;
    /// The random-subset baseline's images.
    pub const BASELINE: u64 = 5;
    /// The final evaluation (and the baseline's, the metrics' and KD's networks).
    pub const EVAL: u64 = 6;
    /// Seeds handed to matchers (`MatchContext.seeds`).
    pub const MATCH: u64 = 7;
    /// Network `k` of an evaluation, under the evaluation's seed: the same initialisations for
    /// every set, so the synthetic set and the baseline meet the same networks.
    pub const EVAL_NETWORK: u64 = 0xE7A1;
    /// The KD teacher trained on the real training set.
    pub const TEACHER: u64 = 0x7EAC_4E12;
    /// Expert `k` of an `experts` run.
    pub const EXPERT: u64 = 0xE4_9E27;
    /// The validation split held out for `--eval-every`.
    pub const SPLIT: u64 = 0x7A1_5917;
    /// The networks of the evaluations during condensation.
    pub const DURING: u64 = 0x7A1_E7A1;
    /// RDED's draws of real images and crops, per class.
    pub const RDED: u64 = 0x8DED;
    /// The embedded `shapes` dataset's images.
    pub const SHAPES: u64 = 0x05A4_E5E5;
    /// A matcher's own initial images (`Matcher::initial_images`; DATM's
    /// `samples_predicted_correctly`: the order in which each class's images are tried).
    pub const MATCHER_INIT: u64 = 0x1417_DA7A;
}
