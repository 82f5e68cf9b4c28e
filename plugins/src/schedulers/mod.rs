//! Registered schedulers, one per file.

pub mod dynamic;
pub mod fixed;
pub mod none;
