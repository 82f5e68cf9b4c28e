//! cafe-lab's framework: the plugin traits, the registry, data, the neural-network building
//! blocks, training, evaluation and the condensation engine. Plugins (matchers, schedulers,
//! architectures, augmenters) live in `cafe-plugins`; the CLI in `cafe-cli`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dist;
pub mod engine;
pub mod error;
pub mod eval;
pub mod fuzz;
pub mod json_merge;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod nn;
pub mod output;
pub mod progress;
pub mod protocol;
pub mod registry;
pub mod rng;
pub mod run;
pub mod shape;
pub mod synthetic;
pub mod teacher;
pub mod tensor_file;
pub mod train;
pub mod traits;
pub mod trajectory;

pub use error::{Error, Result};
pub use rng::Rng;
pub use shape::ImageShape;
pub use traits::{
    architecture::{Architecture, Mode, Network, NetworkOutput},
    augmenter::Augmenter,
    family::{BuildNetwork, NetworkFamily},
    matcher::{Init, MatchContext, MatchOutput, Matcher, MatcherDefaults},
    scheduler::{BilevelLoop, IterationReport, ProbeDraw, Scheduler},
};

/// Keeps gradients in the graph so that a loss written in gradients (DC) can be
/// differentiated again (CANDLE_NOTES 1). candle reads the switch once per thread, at that
/// thread's first backward, so call this before any backward runs.
pub fn enable_second_order_gradients() {
    // Safe in edition 2021; called at start-up, before worker threads run backward passes.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
}

/// Re-exported so that plugin crates depend on the framework alone (the registration
/// macros expand to `$crate::inventory::submit!`).
pub use inventory;
pub use serde_json;
