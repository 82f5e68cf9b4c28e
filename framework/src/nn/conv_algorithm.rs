//! Which algorithm the CPU convolution uses for its 3x3 stride-1 correlations: Winograd
//! F(2x2, 3x3) (`conv_winograd.rs`) or im2col + one matrix product (`conv_cpu.rs`).
//!
//! Both compute the same sums and differ only in rounding. The default, [`ConvAlgorithm::Auto`],
//! takes Winograd where it is faster; the environment variable `CAFE_CONV` (`auto`, `winograd`,
//! `im2col`) sets the process default, e.g. `CAFE_CONV=im2col` repeats bit for bit a run made
//! before Winograd existed (cafe-lab up to commit 16a942f), and [`with_conv_algorithm`] overrides
//! it for one closure on the calling thread (the tests compare the two paths this way).

use std::cell::Cell;
use std::str::FromStr;
use std::sync::OnceLock;

use super::scoped_override::with_override;
use crate::{Error, Result};

/// The name of the environment variable that sets the default algorithm.
pub const ENV_VAR: &str = "CAFE_CONV";

/// Input channels (of the correlation) from which [`ConvAlgorithm::Auto`] takes Winograd: its
/// 16 matrix products have the input channels as their inner dimension, 9x shorter than
/// im2col's one product, and `gemm` loses efficiency on short inner dimensions. Measured with
/// `cargo bench -p cafe-benches --bench conv_algorithms` (one 3x3 layer to 128 channels,
/// forward + both gradients, 64 images, 1 thread, session 7): Winograd / im2col time 1.34 at 1
/// input channel, 1.41 at 3, 1.05 at 8, 0.98 at 16, 0.99 at 32, 0.97 at 64, 0.82 at 128 (the
/// input gradient, whose correlation reads the 128 output channels, runs by Winograd in every
/// forced-Winograd case). Below 64 the gain is within noise, so those stay on im2col.
pub(crate) const WINOGRAD_MIN_CHANNELS: usize = 64;

/// The algorithm of the 3x3 stride-1 convolutions on the CPU; other shapes always use im2col.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvAlgorithm {
    /// Winograd F(2x2, 3x3) where the correlation reads at least 64 channels, im2col elsewhere.
    #[default]
    Auto,
    /// Winograd F(2x2, 3x3) for every 3x3 stride-1 convolution.
    Winograd,
    /// im2col and one matrix product everywhere (cafe-lab's only path up to commit 16a942f).
    Im2col,
}

impl ConvAlgorithm {
    /// The accepted names, as `CAFE_CONV` takes them.
    pub const NAMES: [&'static str; 3] = ["auto", "winograd", "im2col"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Winograd => "winograd",
            Self::Im2col => "im2col",
        }
    }
}

impl FromStr for ConvAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "winograd" => Ok(Self::Winograd),
            "im2col" => Ok(Self::Im2col),
            _ => Err(Error::invalid(
                ENV_VAR,
                s,
                format!("must be one of {}", Self::NAMES.join(", ")),
            )),
        }
    }
}

/// The algorithm `CAFE_CONV` asks for (`Auto` when unset), or an error naming the valid
/// values. Programs call this at start-up so that a typo stops them before any work.
pub fn from_env() -> Result<ConvAlgorithm> {
    match std::env::var(ENV_VAR) {
        Ok(v) => v.parse(),
        Err(std::env::VarError::NotPresent) => Ok(ConvAlgorithm::Auto),
        Err(e) => Err(Error::invalid(ENV_VAR, format!("{e}"), "must be valid unicode")),
    }
}

/// The process default, read from `CAFE_CONV` once. An invalid value here (a program that did
/// not check [`from_env`] at start-up) falls back to `Auto` with a warning, since a kernel
/// cannot return an error about its environment.
fn process_default() -> ConvAlgorithm {
    static DEFAULT: OnceLock<ConvAlgorithm> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        from_env().unwrap_or_else(|e| {
            eprintln!("warning: {e}; using auto");
            ConvAlgorithm::Auto
        })
    })
}

thread_local! {
    static OVERRIDE: Cell<Option<ConvAlgorithm>> = const { Cell::new(None) };
}

/// The algorithm in force on this thread.
pub(crate) fn current() -> ConvAlgorithm {
    OVERRIDE.with(Cell::get).unwrap_or_else(process_default)
}

/// The name of the algorithm in force on this thread, for results.json.
pub(crate) fn current_name() -> &'static str {
    current().name()
}

/// Runs `f` with `algorithm` for the convolutions it starts on this thread (the kernels
/// decide on the calling thread, so their worker threads follow), then restores the previous
/// choice, also when `f` panics.
pub fn with_conv_algorithm<R>(algorithm: ConvAlgorithm, f: impl FnOnce() -> R) -> R {
    with_override(&OVERRIDE, algorithm, f)
}
