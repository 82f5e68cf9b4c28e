//! Registered augmenters, one per file.

pub mod crop_flip;
pub mod dc;
pub mod dsa;
pub mod mix;
pub mod none;
