//! Registered matchers, one per file.

pub mod cafe;
pub mod distribution;
pub mod gradient;
pub mod gradient_distance;
pub mod rded;
mod rded_patches;
pub mod sre2l;
pub mod trajectory;
