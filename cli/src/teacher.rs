//! The flags of `cafe-lab teacher`, which trains the frozen teacher of the decoupled methods
//! (SRe2L's squeeze; RDED's observer) and of their soft-label evaluation.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::args::DataArgs;

/// `cafe-lab teacher`: the settings of `TeacherConfig`, defaults from SRe2L's `squeeze_cifar.py`.
#[derive(Debug, Args, Clone)]
pub struct TeacherArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Teacher architecture (default convnetbn; a BatchNorm network for sre2l).
    #[arg(long)]
    pub arch: Option<String>,
    /// Augmentation of every training batch (default crop_flip; none to train unaugmented).
    #[arg(long)]
    pub augment: Option<String>,
    /// Training epochs (default 200).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Starting learning rate (default 0.1).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (default 128).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Test on at most this many test images (default: all).
    #[arg(long)]
    pub test_limit: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu (default) or cuda[:N].
    #[arg(long)]
    pub device: Option<String>,
    /// The teacher file (default teachers/<dataset>-<arch>.safetensors, where sre2l and rded look).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override any setting: --set arch.width=32 --set schedule=half_cosine
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TeacherArgs {
    /// The flags that were given, as a JSON patch over `TeacherConfig`.
    pub fn flags_as_json(&self) -> Value {
        let pairs = [
            ("arch", self.arch.as_ref().map(|v| json!(v))),
            ("augment", self.augment.as_ref().map(|v| json!(v))),
            ("epochs", self.epochs.map(|v| json!(v))),
            ("lr", self.lr.map(|v| json!(v))),
            ("batch", self.batch.map(|v| json!(v))),
            ("test_limit", self.test_limit.map(|v| json!(v))),
            ("seed", self.seed.map(|v| json!(v))),
            ("device", self.device.as_ref().map(|v| json!(v))),
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
