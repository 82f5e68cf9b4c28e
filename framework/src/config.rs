//! The run configuration: every setting of a run, with defaults, merged from (lowest first)
//! the built-in defaults, a TOML file, command-line flags and `--set path=value` overrides,
//! then validated once, before any work starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config_layers::{self, Layer};
use crate::registry::merge_json;
use crate::traits::matcher::Init;
use crate::{Error, Result};

/// A plugin chosen by name, with its config keys beside the name:
/// `{"name": "gradient", "dis_metric": "cos"}`, or in TOML `[matcher] name = "gradient"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginChoice {
    pub name: String,
    #[serde(flatten)]
    pub config: Map<String, Value>,
}

impl PluginChoice {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            config: Map::new(),
        }
    }

    /// The config keys as a JSON object (without the name).
    pub fn config_value(&self) -> Value {
        Value::Object(self.config.clone())
    }
}

/// The evaluation protocol's settings (DESIGN.md "Evaluation protocol").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Number of freshly initialised networks trained on the set (`--eval-nets`).
    pub nets: usize,
    /// Training epochs of each (`--eval-epochs`): the reference's `epoch_eval_train` E, which
    /// trains E + 1 epochs and drops the learning rate 10x, with a fresh optimiser, after epoch
    /// E/2 + 1 (DatasetCondensation `utils.py:341-355`). None: `epochs_augmented` when the
    /// networks train with augmentation, else `epochs_plain` (DC `main.py:120-123`).
    pub epochs: Option<usize>,
    /// Epochs without augmentation when `epochs` is unset (300 DC/DSA, 600 CAFE).
    pub epochs_plain: usize,
    /// Epochs with augmentation (DSA or DC's) when `epochs` is unset (1000).
    pub epochs_augmented: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch: usize,
    /// Augmentation while training evaluation networks (`--eval-augment`), for every
    /// evaluation architecture. None: the reference's rule (see
    /// `run::evaluation::reference_eval_augment`): DSA when matching used DSA; else DC's
    /// `crop_noise` for ConvNetBN; else DC's `crop_scale_rotate` for MNIST; else none.
    pub augment: Option<PluginChoice>,
    /// Architectures to evaluate on; empty means the condensation architecture (or `mode`'s).
    pub archs: Vec<String>,
    /// An evaluation mode of the papers (`--eval-mode`): S (the condensation architecture, a
    /// BatchNorm one replaced by its instance-norm twin as DC's `get_eval_pool` does), SS (the
    /// condensation architecture as it is: DM's default), M (MLP, ConvNet, LeNet, AlexNet, VGG11, ResNet18), W (ConvNet widths), D (depths),
    /// A (activations), P (poolings), N (norms). Ignored when `archs` is given.
    pub mode: Option<String>,
    /// Test on at most this many test images (None: the whole test set, as the papers do).
    pub test_limit: Option<usize>,
    /// Also evaluate a random real subset of the same size (the `random` baseline).
    pub baseline: bool,
    /// How many of the `nets` networks train at the same time, each on its share of the
    /// threads (None: one; each network's layers already spread over the threads). Results do
    /// not depend on it; memory grows with it. Measured on 2 cores (ConvNet, 100 images, 2
    /// networks): one at a time used 1.74 cores; two side by side took 1.2x longer (allocator
    /// contention: 8x the system time) and 2.2x the peak memory.
    pub parallel: Option<usize>,
    /// DD-Ranking's fair metrics (`--metrics`, see `metrics::ddranking`): also evaluates the
    /// whole training set, and both sets with and without augmentation.
    pub metrics: bool,
    /// w of the label-robust score (DD-Ranking's `lrs_lambda`, 0.5).
    pub lrs_weight: f64,
    /// g of the augmentation-robust score (DD-Ranking's `ars_lambda`, 0.5).
    pub ars_weight: f64,
    /// Networks trained on the whole training set for the metrics (None: `nets`); with fewer
    /// than `nets`, their mean stands for every run.
    pub whole_nets: Option<usize>,
    /// Epochs of the whole-set networks (None: the recipe's, as DD-Ranking's "same recipe").
    pub whole_epochs: Option<usize>,
    /// A known whole-set accuracy (a fraction) instead of training on the whole set, as
    /// DD-Ranking's `REAL_DATA_ACC_CACHE` (`hard_label.py:363-367`).
    pub whole_accuracy: Option<f64>,
    /// Evaluate the set on the validation split every this many iterations and at the last
    /// (`--eval-every`; 0: never).
    pub every: usize,
    /// Which set is kept (`--select`): `final`, or `best-val` (best validation accuracy).
    pub select: String,
    /// Images per class held out of the training set as the validation split when `every` > 0
    /// (`--val-per-class`).
    pub val_per_class: usize,
    /// Networks trained at each evaluation during condensation.
    pub during_nets: usize,
    /// Their epochs (None: the recipe's).
    pub during_epochs: Option<usize>,
    /// Soft-label evaluation (`--kd`): students trained on the set with a teacher's
    /// temperature-softened outputs (`evaluate_kd`).
    pub kd: bool,
    /// The temperature T (`--kd-temperature`; DD-Ranking's demo configuration: 1).
    pub kd_temperature: f64,
    /// A teacher file (`teacher.safetensors` of an earlier run) instead of training one.
    pub kd_teacher: Option<PathBuf>,
    /// Epochs of the teacher trained on the real training set (None: the recipe's).
    pub kd_teacher_epochs: Option<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            nets: 20,
            epochs: None,
            epochs_plain: 300,
            epochs_augmented: 1000,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch: 256,
            augment: None,
            archs: Vec::new(),
            mode: None,
            test_limit: None,
            baseline: true,
            parallel: None,
            metrics: false,
            lrs_weight: 0.5,
            ars_weight: 0.5,
            whole_nets: None,
            whole_epochs: None,
            whole_accuracy: None,
            every: 0,
            select: "final".into(),
            val_per_class: 50,
            during_nets: 2,
            during_epochs: None,
            kd: false,
            kd_temperature: 1.0,
            kd_teacher: None,
            kd_teacher_epochs: None,
        }
    }
}

/// Every setting of a condensation run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The published protocol whose settings lie under the user's (`--protocol`; see
    /// [`crate::protocol`]). None: the chosen matcher's default protocol; `none`: no protocol.
    pub protocol: Option<String>,
    /// Dataset name: `shapes` (embedded, no files), `mnist`, `fashion-mnist`, `cifar10`, `cifar100`, `svhn`.
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub download: bool,
    /// ZCA-whiten the dataset with this `eps` instead of normalising it per channel: MTT's
    /// `--zca` (mtt-distillation `utils.py:137-165`, eps 0.1), which its CIFAR commands use.
    /// The experts a trajectory-matching run reads must have been trained the same way.
    /// `true` means eps 0.1, `false` none (see [`crate::data::deserialize_zca`]).
    #[serde(deserialize_with = "crate::data::deserialize_zca")]
    pub zca: Option<f64>,
    pub matcher: PluginChoice,
    pub scheduler: PluginChoice,
    pub arch: PluginChoice,
    /// Augmenter applied (siamese) in matching and, without the shared seed, in inner training.
    pub augment: PluginChoice,
    /// Synthetic images per class.
    pub ipc: usize,
    /// Outer iterations; None takes the matcher's published default.
    pub iterations: Option<usize>,
    /// Real images per class in each matching step.
    pub batch_real: usize,
    /// Batch size when training the network on the synthetic set (inner loop).
    pub batch_train: usize,
    /// Image learning rate; None takes the matcher's default (DM 1.0, DC/CAFE 0.1).
    pub lr_img: Option<f64>,
    pub momentum_img: f64,
    /// Iterations at which the image learning rate is halved (CAFE uses 1200, 1600, 1800 of 2000).
    pub lr_img_halve_at: Vec<usize>,
    /// Learning rate of the network in the inner loop (plain SGD).
    pub lr_net: f64,
    /// None takes the matcher's default (DM: real, others: noise).
    pub init: Option<Init>,
    pub seed: u64,
    /// Output directory; None derives `runs/<dataset>-<matcher>-<scheduler>-ipc<N>-seed<S>`.
    pub out: Option<PathBuf>,
    /// `cpu` (default) or `cuda[:N]` (needs the `cuda` build feature).
    pub device: String,
    pub eval: EvalConfig,
    /// Log a line every this many iterations (0: only at the end).
    pub log_every: usize,
    /// Write a checkpoint every this many iterations (0: only on Ctrl-C).
    pub checkpoint_every: usize,
    /// Log the synthetic grid to TensorBoard every this many iterations (0: only at the end).
    pub log_images_every: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            protocol: None,
            dataset: "shapes".into(),
            data_dir: None,
            download: false,
            zca: None,
            matcher: PluginChoice::named("distribution"),
            scheduler: PluginChoice::named("none"),
            arch: PluginChoice::named("convnet"),
            augment: PluginChoice::named("none"),
            ipc: 10,
            iterations: None,
            batch_real: 256,
            batch_train: 256,
            lr_img: None,
            momentum_img: 0.5,
            lr_img_halve_at: Vec::new(),
            lr_net: 0.01,
            init: None,
            seed: 0,
            out: None,
            device: "cpu".into(),
            eval: EvalConfig::default(),
            log_every: 10,
            checkpoint_every: 50,
            log_images_every: 100,
        }
    }
}

/// Builds a [`RunConfig`] layer by layer: a base (the built-in defaults, or the configuration
/// saved in a synthetic set), the published protocol (see [`crate::protocol`]), then the
/// user's layers (`--config` file, flags, `--set`) in the order they are merged.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    base: Value,
    user: Value,
    /// Whether the protocol layer goes between base and user (not over a saved configuration,
    /// which already holds its protocol's settings).
    with_protocol: bool,
    /// The user's layers merged so far, to say where a bad setting came from.
    layers: Vec<Layer>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            base: serde_json::to_value(RunConfig::default()).expect("RunConfig serialises"),
            user: Value::Object(Map::new()),
            with_protocol: true,
            layers: Vec::new(),
        }
    }
}

/// The most keys a `--set` path may have.
const MAX_SET_PATH_KEYS: usize = 16;

impl ConfigBuilder {
    /// A builder whose base is a saved, fully resolved configuration (a run's config.json or a
    /// synthetic set's metadata): no protocol layer, the user's layers over it.
    pub fn from_saved(saved: &Value) -> Self {
        let mut base = serde_json::to_value(RunConfig::default()).expect("RunConfig serialises");
        let mut saved = saved.clone();
        if let Value::Object(m) = &mut saved {
            // Written for the record, not settings.
            m.remove("second_order_gradients");
        }
        merge_layer(&mut base, &saved);
        Self {
            base,
            user: Value::Object(Map::new()),
            with_protocol: false,
            layers: Vec::new(),
        }
    }

    /// Merges a TOML file over the current settings.
    pub fn merge_toml_file(&mut self, path: &Path) -> Result<&mut Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading config file {}", path.display()), e))?;
        let parsed: toml::Value = toml::from_str(&text)
            .map_err(|e| Error::invalid("--config", path.display(), format!("not valid TOML: {e}")))?;
        let json = serde_json::to_value(parsed).map_err(|e| Error::Other(e.to_string()))?;
        self.merge_from(format!("--config {}", path.display()), &json);
        Ok(self)
    }

    /// Merges a JSON object over the user's settings so far (see [`merge_layer`]).
    pub fn merge(&mut self, patch: &Value) -> &mut Self {
        self.merge_from("ConfigBuilder::merge", patch)
    }

    /// [`merge`](Self::merge), naming where the settings came from (e.g. "the command-line
    /// flags") for the error about a setting that does not fit.
    pub fn merge_from(&mut self, origin: impl Into<String>, patch: &Value) -> &mut Self {
        merge_layer(&mut self.user, patch);
        let mut patch = patch.clone();
        normalise_plugin_shorthand(&mut patch);
        self.layers.push(Layer {
            origin: origin.into(),
            patch,
        });
        self
    }

    /// Applies one `path=value` override, e.g. `matcher.dis_metric=cos` or `eval.epochs=50`.
    /// The value is read as JSON when it parses (numbers, booleans, arrays) and as a string
    /// otherwise.
    pub fn set(&mut self, assignment: &str) -> Result<&mut Self> {
        let (path, raw) = assignment
            .split_once('=')
            .ok_or_else(|| Error::invalid("--set", assignment, "expected PATH=VALUE, e.g. matcher.dis_metric=cos"))?;
        let value = serde_json::from_str::<Value>(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().to_string()));
        let keys: Vec<&str> = path.trim().split('.').collect();
        // Every setting lies a few keys deep; a path of thousands would nest the patch as
        // deep, and merging and dropping nested JSON recurse: past this, the stack would run out.
        if keys.len() > MAX_SET_PATH_KEYS {
            return Err(Error::invalid(
                "--set",
                assignment,
                format!(
                    "the path has {} keys; settings lie at most {MAX_SET_PATH_KEYS} deep (e.g. eval.augment.strategy)",
                    keys.len()
                ),
            ));
        }
        let mut patch = value;
        for key in keys.into_iter().rev() {
            if key.is_empty() {
                return Err(Error::invalid("--set", assignment, "empty key in path"));
            }
            let mut m = Map::new();
            m.insert(key.to_string(), patch);
            patch = Value::Object(m);
        }
        self.merge_from(format!("--set {assignment}"), &patch);
        Ok(self)
    }

    /// The merged settings as JSON: base, protocol, user layers.
    pub fn merged(&self) -> Result<Value> {
        let mut value = self.base.clone();
        // Over a saved configuration, only a protocol the user names again applies.
        if self.with_protocol || self.user.get("protocol").is_some_and(|p| !p.is_null()) {
            if let Some(layer) = crate::protocol::protocol_layer(&self.base, &self.user)? {
                merge_layer(&mut value, &layer);
            }
        }
        merge_layer(&mut value, &self.user);
        Ok(value)
    }

    /// The merged settings, checked against the schema (unknown keys are refused); an error
    /// names the key and the layer that set it.
    pub fn build(&self) -> Result<RunConfig> {
        config_layers::deserialize(&self.merged()?, &self.layers)
    }
}

/// Merges the layer `patch` over `base`. A plugin whose name changes loses the config keys of
/// the previous plugin, which would not fit the new one; `"matcher": "gradient"` is shorthand
/// for `"matcher": {"name": "gradient"}`.
pub fn merge_layer(base: &mut Value, patch: &Value) {
    let mut patch = patch.clone();
    normalise_plugin_shorthand(&mut patch);
    if let (Value::Object(base), Value::Object(p)) = (&mut *base, &patch) {
        for key in ["matcher", "scheduler", "arch", "augment"] {
            drop_config_of_renamed_plugin(base, p, key);
        }
        if let (Some(Value::Object(be)), Some(Value::Object(pe))) = (base.get_mut("eval"), p.get("eval")) {
            drop_config_of_renamed_plugin(be, pe, "augment");
        }
    }
    merge_json(base, &patch);
}

/// Before `patch` names another plugin under `key` than `base` does, forgets base's config keys.
fn drop_config_of_renamed_plugin(base: &mut Map<String, Value>, patch: &Map<String, Value>, key: &str) {
    let new_name = patch.get(key).and_then(|v| v.get("name")).and_then(Value::as_str);
    let old_name = base.get(key).and_then(|v| v.get("name")).and_then(Value::as_str);
    if let (Some(new), Some(old)) = (new_name, old_name) {
        if !new.eq_ignore_ascii_case(old) {
            base.insert(key.into(), serde_json::json!({ "name": new }));
        }
    }
}

/// `"matcher": "gradient"` is shorthand for `"matcher": {"name": "gradient"}`.
fn normalise_plugin_shorthand(patch: &mut Value) {
    if let Value::Object(m) = patch {
        for key in ["matcher", "scheduler", "arch", "augment"] {
            if let Some(Value::String(name)) = m.get(key) {
                let name = name.clone();
                m.insert(key.into(), serde_json::json!({ "name": name }));
            }
        }
        if let Some(Value::Object(e)) = m.get_mut("eval") {
            if let Some(Value::String(name)) = e.get("augment") {
                let name = name.clone();
                e.insert("augment".into(), serde_json::json!({ "name": name }));
            }
        }
    }
}
