//! The flags of `cafe-lab experts`, which trains expert trajectories for trajectory matching.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::args::DataArgs;

/// `cafe-lab experts`: the settings of `ExpertsConfig`, defaults from MTT's `buffer.py`.
#[derive(Debug, Args, Clone)]
pub struct ExpertsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Expert architecture (default convnet; `cafe-lab list`).
    #[arg(long)]
    pub arch: Option<String>,
    /// Augmentation of every training batch (default dsa; none to train unaugmented).
    #[arg(long)]
    pub augment: Option<String>,
    /// Number of experts (default 100); a store with fewer is extended.
    #[arg(long)]
    pub num_experts: Option<usize>,
    /// Training epochs of each expert (default 50).
    #[arg(long)]
    pub train_epochs: Option<usize>,
    /// SGD learning rate (default 0.01).
    #[arg(long)]
    pub lr_teacher: Option<f64>,
    /// SGD momentum (default 0).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay (default 0).
    #[arg(long)]
    pub l2: Option<f64>,
    /// Batch size (default 256).
    #[arg(long)]
    pub batch_train: Option<usize>,
    /// Divide the learning rate by 10 after epoch train_epochs/2 + 1.
    #[arg(long)]
    pub decay: bool,
    /// Test on at most this many test images after each epoch (default: all).
    #[arg(long)]
    pub test_limit: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu (default) or cuda[:N].
    #[arg(long)]
    pub device: Option<String>,
    /// How f32 convolutions round on a GPU: fp32 (default) or tf32.
    #[arg(long, value_name = "fp32|tf32")]
    pub precision: Option<String>,
    /// Store folder (default experts/<dataset>-<arch>); finished experts there are skipped.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override any setting: --set arch.width=64 --set augment.strategy=crop_flip
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ExpertsArgs {
    /// The flags that were given, as a JSON patch over `ExpertsConfig`.
    pub fn flags_as_json(&self) -> Value {
        let pairs = [
            ("arch", self.arch.as_ref().map(|v| json!(v))),
            ("augment", self.augment.as_ref().map(|v| json!(v))),
            ("num_experts", self.num_experts.map(|v| json!(v))),
            ("train_epochs", self.train_epochs.map(|v| json!(v))),
            ("lr_teacher", self.lr_teacher.map(|v| json!(v))),
            ("momentum", self.momentum.map(|v| json!(v))),
            ("l2", self.l2.map(|v| json!(v))),
            ("batch_train", self.batch_train.map(|v| json!(v))),
            ("decay", self.decay.then_some(json!(true))),
            ("test_limit", self.test_limit.map(|v| json!(v))),
            ("seed", self.seed.map(|v| json!(v))),
            ("device", self.device.as_ref().map(|v| json!(v))),
            (
                "precision",
                self.precision.as_ref().map(|v| json!(v.to_ascii_lowercase())),
            ),
            ("out", self.out.as_ref().map(|v| json!(v))),
        ];
        let mut m: Map<String, Value> = pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
        self.data.put_json(&mut m);
        Value::Object(m)
    }
}
