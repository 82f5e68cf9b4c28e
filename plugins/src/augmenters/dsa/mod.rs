//! The `dsa` augmenter: DSA's differentiable siamese augmentation, one concept per file.

pub mod affine;
pub mod augmenter;
pub mod color;
pub mod config;
pub mod draws;
pub mod geometry;
pub mod sampling;
pub mod strategy;

pub use augmenter::Dsa;
pub use config::{DsaConfig, Mode};
pub use strategy::{Group, Op, VALID_GROUPS};
