//! Registered augmenters, one per file.

pub mod dc;
pub mod dsa;
pub mod none;
