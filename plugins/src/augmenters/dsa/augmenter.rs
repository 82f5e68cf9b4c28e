//! `dsa`: Differentiable Siamese Augmentation (Zhao & Bilen, "Dataset Condensation with
//! Differentiable Siamese Augmentation", ICML 2021, <https://arxiv.org/abs/2102.08259>).
//!
//! Mirrors the reference's `DiffAugment(x, strategy, seed, param)` (DC/DSA/DM `utils.py`):
//! in single mode one group of the strategy is picked per call, in multiple mode all run in
//! order. The reference's `seed != -1` (siamese) gives every image the first image's
//! parameters; here `siamese` does, and the seed always fixes the draws (candle's RNG cannot
//! be seeded, CANDLE_NOTES 3).

use candle_core::Tensor;
use rand::Rng as _;

use cafe_framework::rng::sub_rng;
use cafe_framework::{register_augmenter, Augmenter, Error, Result};

use super::config::{DsaConfig, Mode};
use super::strategy::{parse_strategy, Group, Op};

/// Sub-stream of the call's seed that picks the group in single mode.
const GROUP_STREAM: u64 = 1;
/// Sub-streams of the ops: `[OP_STREAM, position of the op in the call]`, so each op draws
/// independently of how many numbers the others used.
const OP_STREAM: u64 = 2;

/// The DSA augmenter: a validated strategy and its parameters.
#[derive(Debug, Clone)]
pub struct Dsa {
    config: DsaConfig,
    groups: Vec<Group>,
}

impl Dsa {
    /// Checks `config` (unknown groups, out-of-range ratios) and builds the augmenter.
    pub fn new(config: DsaConfig) -> Result<Self> {
        config.validate()?;
        let groups = parse_strategy(&config.strategy)?;
        Ok(Self { config, groups })
    }

    /// The ops a call with `seed` runs, in order: one group's in single mode (the reference
    /// draws `randint(0, len(groups))` once per call, for the whole batch), all in multiple.
    pub fn ops_for(&self, seed: u64) -> Vec<Op> {
        match self.config.mode {
            Mode::Multiple => self.groups.iter().flat_map(|g| g.ops().iter().copied()).collect(),
            Mode::Single if self.groups.is_empty() => Vec::new(),
            Mode::Single => {
                let pick = sub_rng(seed, &[GROUP_STREAM]).random_range(0..self.groups.len());
                self.groups[pick].ops().to_vec()
            }
        }
    }
}

impl Augmenter for Dsa {
    fn augment(&self, x: &Tensor, seed: u64, siamese: bool) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(Error::Other(format!(
                "dsa augments image batches [n, c, h, w], got shape {:?}",
                x.dims()
            )));
        }
        if self.groups.is_empty() || x.dim(0)? == 0 {
            return Ok(x.clone());
        }
        let mut out = x.clone();
        for (position, op) in self.ops_for(seed).into_iter().enumerate() {
            let mut rng = sub_rng(seed, &[OP_STREAM, position as u64]);
            out = op.apply(&out, &self.config, &mut rng, siamese)?;
        }
        Ok(out)
    }

    fn is_differentiable(&self) -> bool {
        true
    }

    fn is_identity(&self) -> bool {
        self.groups.is_empty()
    }
}

register_augmenter!(
    "dsa",
    "differentiable siamese augmentation (DSA, Zhao & Bilen 2021): color, crop, cutout, flip, scale, rotate",
    DsaConfig,
    |config: DsaConfig| -> Result<Box<dyn Augmenter>> { Ok(Box::new(Dsa::new(config)?)) }
);
