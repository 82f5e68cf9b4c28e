//! The command-line flags (clap). Every flag maps onto a key of the run configuration, so
//! `--ipc 10` and `--set ipc=10` and `ipc = 10` in a `--config` file are the same setting.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

/// Dataset condensation: learn a tiny synthetic training set that trains a network almost as
/// well as the whole dataset.
#[derive(Debug, Parser)]
#[command(
    name = "cafe-lab",
    version,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `condense` is the default command: its flags work without naming it.
    #[command(flatten)]
    pub condense: CondenseArgs,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Learn a synthetic set, save it, and evaluate it beside the random baseline (default).
    #[command(args_override_self = true, allow_negative_numbers = true)]
    Condense(CondenseArgs),
    /// List every registered plugin with its description and default config.
    List,
    /// Evaluate a saved synthetic set (synthetic.safetensors) under the papers' protocol.
    #[command(args_override_self = true, allow_negative_numbers = true)]
    Evaluate(EvaluateArgs),
    /// Evaluate the random baseline: ipc random real images per class.
    #[command(args_override_self = true, allow_negative_numbers = true)]
    Baseline(BaselineArgs),
    /// Train expert trajectories for trajectory matching (MTT's buffer.py): networks trained
    /// on the real training set, their parameters saved after every epoch, one file each.
    #[command(args_override_self = true)]
    Experts(crate::experts::ExpertsArgs),
    /// Train the frozen teacher of the decoupled methods (SRe2L's squeeze, RDED's observer) on
    /// the real training set: teachers/<dataset>-<arch>.safetensors, where sre2l and rded look.
    #[command(args_override_self = true, allow_negative_numbers = true)]
    Teacher(crate::teacher::TeacherArgs),
    /// One table (markdown) and one standalone HTML page with plots across run folders.
    Report(crate::report::ReportArgs),
}

/// The flags that choose and load a dataset, shared by every command that reads one
/// (`condense`, `evaluate`, `baseline`, `experts`).
#[derive(Debug, Args, Default, Clone)]
pub struct DataArgs {
    /// Dataset: shapes (embedded, no files), mnist, fashion-mnist, cifar10, cifar100, svhn.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Download the canonical dataset files into --data-dir (verifying checksums).
    #[arg(long)]
    pub download: bool,
    /// ZCA-whiten the dataset (fitted on its train set) instead of normalising each channel:
    /// MTT's --zca, with its eps 0.1 unless given (`--zca 0.05`).
    #[arg(long, value_name = "EPS", num_args = 0..=1, default_missing_value = "0.1")]
    pub zca: Option<f64>,
}

impl DataArgs {
    /// The data flags that were given, as settings keys (the same in a run's and in
    /// `experts`' settings).
    pub fn put_json(&self, m: &mut Map<String, Value>) {
        let pairs = [
            ("dataset", self.dataset.as_ref().map(|v| json!(v))),
            ("data_dir", self.data_dir.as_ref().map(|v| json!(v))),
            ("download", self.download.then_some(json!(true))),
            ("zca", self.zca.map(|v| json!(v))),
        ];
        m.extend(pairs.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))));
    }
}

/// Flags shared by every command that loads data and evaluates.
#[derive(Debug, Args, Default, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// A published protocol whose settings are the defaults (`cafe-lab list` shows them):
    /// dc, dsa, dm, cafe, cafe-dsa; `none` for cafe-lab's built-in defaults. Without it, the
    /// matcher's own protocol (gradient: dc, distribution: dm, cafe: cafe).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Architecture of the condensation (and, by default, evaluation) networks.
    #[arg(long)]
    pub arch: Option<String>,
    /// Number of fresh networks trained in each evaluation.
    #[arg(long)]
    pub eval_nets: Option<usize>,
    /// Training epochs of each evaluation network (lr drops 10x at half).
    #[arg(long)]
    pub eval_epochs: Option<usize>,
    /// Augmentation when training evaluation networks (none, ...).
    #[arg(long)]
    pub eval_augment: Option<String>,
    /// Evaluate on these architectures (comma separated) instead of --arch.
    #[arg(long, value_delimiter = ',')]
    pub eval_archs: Option<Vec<String>>,
    /// Evaluate on a mode's architectures: S (--arch, BatchNorm replaced by instance norm as
    /// DC does), SS (--arch as it is), M (MLP, ConvNet, LeNet, AlexNet, VGG11,
    /// ResNet18), W (ConvNet widths), D (depths), A (activations), P (poolings), N (norms).
    #[arg(long)]
    pub eval_mode: Option<String>,
    /// Test on at most this many test images (default: all, as the papers do).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Skip the random-subset baseline evaluation.
    #[arg(long)]
    pub no_baseline: bool,
    /// DD-Ranking's fair metrics: also evaluate the whole training set and both sets with and
    /// without augmentation; hard-label recovery, improvement over random, LRS and ARS.
    #[arg(long)]
    pub metrics: bool,
    /// Evaluate the set every N iterations (and at the last) with a few networks on a
    /// validation split held out of the training set: the curve goes to TensorBoard and
    /// results.json. The test set is used by the final evaluation only.
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Which set is kept: final (default) or best-val (best validation accuracy; needs
    /// --eval-every).
    #[arg(long, value_parser = ["final", "best-val"])]
    pub select: Option<String>,
    /// Images per class held out of the training set for validation (default 50).
    #[arg(long, value_name = "N")]
    pub val_per_class: Option<usize>,
    /// Soft-label evaluation: a teacher trained on the real training set (or --kd-teacher)
    /// labels each augmented batch; students learn its outputs at --kd-temperature.
    #[arg(long)]
    pub kd: bool,
    /// Temperature of the soft labels (default 1, DD-Ranking's).
    #[arg(long, value_name = "T")]
    pub kd_temperature: Option<f64>,
    /// A teacher.safetensors written by an earlier --kd run, instead of training one.
    #[arg(long, value_name = "FILE")]
    pub kd_teacher: Option<PathBuf>,
    /// The frozen teacher of sre2l and rded (`cafe-lab teacher`; default
    /// teachers/<dataset>-<arch>.safetensors), also the soft-label evaluation's teacher.
    #[arg(long, value_name = "FILE")]
    pub teacher: Option<PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (default runs/<dataset>-<matcher>-<scheduler>-ipc<N>-seed<S>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu (default) or cuda[:N] (needs a build with --features cuda).
    #[arg(long)]
    pub device: Option<String>,
    /// How f32 convolutions round on a GPU: fp32 (default) or tf32 (TF32 tensor cores, as
    /// PyTorch's cuDNN convolutions by default). Recorded in results.json.
    #[arg(long, value_name = "fp32|tf32")]
    pub precision: Option<String>,
    /// A TOML file of settings (same keys as config.json); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any setting: --set matcher.dis_metric=cos --set eval.lr=0.02
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Write into a non-empty output directory.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct CondenseArgs {
    /// Matcher: distribution, ... (`cafe-lab list`).
    #[arg(long)]
    pub matcher: Option<String>,
    /// Scheduler of the bi-level loop: none, ...
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Differentiable augmentation in matching (none, ...).
    #[arg(long)]
    pub augment: Option<String>,
    /// Synthetic images per class.
    #[arg(long)]
    pub ipc: Option<usize>,
    /// Outer iterations (default: the matcher's published count).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Real images per class in each matching step.
    #[arg(long)]
    pub batch_real: Option<usize>,
    /// Learning rate of the synthetic images (default: the matcher's).
    #[arg(long)]
    pub lr_img: Option<f64>,
    /// Learning rate of the network in the inner loop.
    #[arg(long)]
    pub lr_net: Option<f64>,
    /// Initialise the synthetic set from real images or from noise (default: the matcher's).
    #[arg(long, value_parser = ["real", "noise"])]
    pub init: Option<String>,
    /// Write a checkpoint every N iterations (0: only on Ctrl-C).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Log the synthetic grid to TensorBoard every N iterations (and at the end).
    #[arg(long)]
    pub log_images_every: Option<usize>,
    /// Continue the interrupted run in DIR (its config.json and checkpoint); other flags are
    /// ignored.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Repeat the whole condensation K times, with seeds S..S+K-1 (S from --seed), each in
    /// OUT/seed<S>/; OUT/results.json holds mean, std and 95 % CI over all networks of all runs.
    #[arg(long, value_name = "K", conflicts_with_all = ["seeds", "resume"])]
    pub runs: Option<usize>,
    /// Repeat the whole condensation once per seed of this list (see --runs).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args, Clone)]
pub struct EvaluateArgs {
    /// The synthetic set to evaluate: a synthetic.safetensors written by condense, or another
    /// tool's .pt file (mtt-distillation / DATM images_*.pt, NCFM [images, labels],
    /// DatasetCondensation res_*.pt; needs --dataset).
    #[arg(long)]
    pub synthetic: PathBuf,
    #[command(flatten)]
    pub import: ImportArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What a .pt file cannot say about its set (`evaluate --synthetic FILE.pt`).
#[derive(Debug, Args, Clone, Default)]
pub struct ImportArgs {
    /// The labels file of an images_*.pt set (default: labels_*.pt beside it).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Which experiment's set of a DatasetCondensation res_*.pt (default 0).
    #[arg(long, value_name = "K")]
    pub experiment: Option<usize>,
    /// The space of the file's pixels: normalised (or ZCA-whitened with --zca) as the dataset
    /// is, or raw in [0, 1]. Default: the layout's (raw for NCFM and images_zca_*.pt).
    #[arg(long, value_parser = ["normalised", "raw"])]
    pub pixels: Option<String>,
    /// Unpack FxF images from each stored one (NCFM's multi-formation `factor`).
    #[arg(long, value_name = "F")]
    pub factor: Option<usize>,
    /// The step size the set learned, when its files do not hold it (MTT does not save it):
    /// evaluation networks train at it.
    #[arg(long, value_name = "LR")]
    pub learned_lr: Option<f64>,
    /// Train on hard labels (the argmax of soft labels) instead of the file's soft labels.
    #[arg(long)]
    pub hard_labels: bool,
}

impl ImportArgs {
    /// The import options and the extra files to read.
    pub fn options(&self) -> (cafe_framework::run::ImportOptions, cafe_framework::pt::PtSources) {
        (
            cafe_framework::run::ImportOptions {
                raw_pixels: self.pixels.as_deref().map(|p| p == "raw"),
                factor: self.factor,
                lr: self.learned_lr,
                hard_labels: self.hard_labels,
            },
            cafe_framework::pt::PtSources {
                labels: self.labels.clone(),
                experiment: self.experiment,
            },
        )
    }

    /// True when any of these flags was given (they mean nothing for a safetensors set).
    pub fn any(&self) -> bool {
        self.labels.is_some()
            || self.experiment.is_some()
            || self.pixels.is_some()
            || self.factor.is_some()
            || self.learned_lr.is_some()
            || self.hard_labels
    }
}

#[derive(Debug, Args, Clone)]
pub struct BaselineArgs {
    /// Images per class of the random subset.
    #[arg(long)]
    pub ipc: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The flags that were given, as a JSON patch over the configuration.
pub fn flags_as_json(common: &CommonArgs, c: &CondenseArgs) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("protocol", common.protocol.as_ref().map(|v| json!(v)));
    put("arch", common.arch.as_ref().map(|v| json!(v)));
    put("seed", common.seed.map(|v| json!(v)));
    put("out", common.out.as_ref().map(|v| json!(v)));
    put("device", common.device.as_ref().map(|v| json!(v)));
    put(
        "precision",
        common.precision.as_ref().map(|v| json!(v.to_ascii_lowercase())),
    );
    put("teacher", common.teacher.as_ref().map(|v| json!(v)));
    put("matcher", c.matcher.as_ref().map(|v| json!(v)));
    put("scheduler", c.scheduler.as_ref().map(|v| json!(v)));
    put("augment", c.augment.as_ref().map(|v| json!(v)));
    put("ipc", c.ipc.map(|v| json!(v)));
    put("iterations", c.iterations.map(|v| json!(v)));
    put("batch_real", c.batch_real.map(|v| json!(v)));
    put("lr_img", c.lr_img.map(|v| json!(v)));
    put("lr_net", c.lr_net.map(|v| json!(v)));
    put("init", c.init.as_ref().map(|v| json!(v)));
    put("checkpoint_every", c.checkpoint_every.map(|v| json!(v)));
    put("log_images_every", c.log_images_every.map(|v| json!(v)));
    let mut eval = Map::new();
    let mut put_eval = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            eval.insert(k.to_string(), v);
        }
    };
    put_eval("nets", common.eval_nets.map(|v| json!(v)));
    put_eval("epochs", common.eval_epochs.map(|v| json!(v)));
    put_eval("augment", common.eval_augment.as_ref().map(|v| json!(v)));
    put_eval("archs", common.eval_archs.as_ref().map(|v| json!(v)));
    put_eval("mode", common.eval_mode.as_ref().map(|v| json!(v)));
    put_eval("test_limit", common.test_limit.map(|v| json!(v)));
    put_eval("baseline", common.no_baseline.then_some(json!(false)));
    put_eval("metrics", common.metrics.then_some(json!(true)));
    put_eval("every", common.eval_every.map(|v| json!(v)));
    put_eval("select", common.select.as_ref().map(|v| json!(v)));
    put_eval("val_per_class", common.val_per_class.map(|v| json!(v)));
    put_eval("kd", common.kd.then_some(json!(true)));
    put_eval("kd_temperature", common.kd_temperature.map(|v| json!(v)));
    put_eval("kd_teacher", common.kd_teacher.as_ref().map(|v| json!(v)));
    if !eval.is_empty() {
        m.insert("eval".into(), Value::Object(eval));
    }
    common.data.put_json(&mut m);
    Value::Object(m)
}
