//! `none`: the identity augmenter.

use cafe_framework::{register_augmenter, Augmenter, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoAugmentConfig {}

pub struct NoAugment;

impl Augmenter for NoAugment {
    fn augment(&self, x: &Tensor, _seed: u64, _siamese: bool) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn is_differentiable(&self) -> bool {
        true
    }
    fn is_identity(&self) -> bool {
        true
    }
}

register_augmenter!(
    "none",
    "no augmentation (identity)",
    NoAugmentConfig,
    |_c: NoAugmentConfig| -> Result<Box<dyn Augmenter>> { Ok(Box::new(NoAugment)) }
);
