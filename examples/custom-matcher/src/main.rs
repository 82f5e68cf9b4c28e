//! A matcher written outside cafe-lab's plugins crate: registering it takes this one file, and
//! `cafe_cli::run()` gives it the whole `cafe-lab` command line.
//!
//! `moments` matches the per-class mean AND the per-class variance of a fresh random
//! network's embeddings: DM's first moment plus the second, weighted by `variance_weight`.
//!
//! ```sh
//! cargo run --release -p custom-matcher -- list
//! cargo run --release -p custom-matcher -- --matcher moments --ipc 10 --iterations 100
//! ```

use cafe_framework::traits::matcher::{Init, MatchContext, MatchOutput, Matcher, MatcherDefaults};
use cafe_framework::{register_matcher, Error, Mode, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The matcher's settings; `--set matcher.variance_weight=0.5` changes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MomentsConfig {
    pub variance_weight: f64,
}

impl Default for MomentsConfig {
    fn default() -> Self {
        Self { variance_weight: 1.0 }
    }
}

pub struct Moments {
    config: MomentsConfig,
}

impl Matcher for Moments {
    fn compute(&self, ctx: &MatchContext) -> Result<MatchOutput> {
        let mut loss = Tensor::zeros((), candle_core::DType::F32, ctx.synthetic.device())?;
        let (mut mean_term, mut var_term) = (0.0, 0.0);
        for c in 0..ctx.classes() {
            // Real embeddings are values only; synthetic ones keep the graph to the pixels.
            let real = ctx.network.forward(&ctx.real[c], Mode::Train)?.embedding.detach();
            let syn = ctx.network.forward(&ctx.synthetic_class(c)?, Mode::Train)?.embedding;
            let mean_gap = (real.mean(0)? - syn.mean(0)?)?.sqr()?.sum_all()?;
            // Variance with ipc 1 is zero on the synthetic side: the mean term still works.
            let var = |t: &Tensor| -> Result<Tensor> { Ok(t.broadcast_sub(&t.mean_keepdim(0)?)?.sqr()?.mean(0)?) };
            let var_gap = (var(&real)? - var(&syn)?)?.sqr()?.sum_all()?;
            mean_term += mean_gap.to_scalar::<f32>()? as f64;
            var_term += var_gap.to_scalar::<f32>()? as f64;
            loss = ((loss + mean_gap)? + (var_gap * self.config.variance_weight)?)?;
        }
        let terms = vec![("mean".to_string(), mean_term), ("variance".to_string(), var_term)];
        MatchOutput::from_loss(&loss, ctx.synthetic, terms)
    }

    fn defaults(&self) -> MatcherDefaults {
        MatcherDefaults {
            lr_img: 1.0,
            init: Init::Real,
            iterations: 20_000,
            needs_second_order: false,
        }
    }
}

register_matcher!(
    "moments",
    "example plugin: match per-class mean and variance of random-network embeddings",
    MomentsConfig,
    |config: MomentsConfig| -> Result<Box<dyn Matcher>> {
        if !(config.variance_weight.is_finite() && config.variance_weight >= 0.0) {
            return Err(Error::invalid(
                "matcher.variance_weight",
                config.variance_weight,
                "must be >= 0",
            ));
        }
        Ok(Box::new(Moments { config }))
    }
);

fn main() -> std::process::ExitCode {
    cafe_cli::run()
}
