//! cafe-lab's registered plugins: matchers, schedulers, architectures and augmenters, and the
//! published protocols of the built-in methods.
//!
//! Each plugin registers itself with a `cafe_framework::register_*!` macro in its own file.
//! `inventory` entries only survive linking when something references this crate, so every
//! binary and test that needs them says `use cafe_plugins as _;` (CANDLE_NOTES 7).

pub mod architectures;
pub mod augmenters;
pub mod matchers;
pub mod protocols;
pub mod schedulers;

/// Referencing this function keeps the crate, and so its registrations, linked.
pub fn link() {}
