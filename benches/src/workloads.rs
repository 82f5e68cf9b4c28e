//! The workloads that cafe-lab is timed on, beside PyTorch (`scripts/bench/side_by_side.py`
//! runs the same work in PyTorch), each built from the framework's own code as the CLI runs it:
//! plugins looked up in the registry, a condensation iteration through
//! [`cafe_framework::engine::condense`], an evaluation epoch through
//! [`cafe_framework::evaluate::evaluate_set`].
//!
//! Data are random Fashion-MNIST-shaped images from fixed seeds ([`crate::random_data`]), so
//! nothing needs downloading; every run of a workload does the same work on the same numbers.
//!
//! Each workload runs on a device (`--device cuda` on a GPU build) at one of two sizes
//! ([`Size`]): `cpu`, the sizes below, and `gpu`, larger batches where a GPU would otherwise
//! time mostly kernel launches (the table's last column; `scripts/bench/torch_workloads.py`
//! has the same). On a GPU a run starts and ends with a device synchronisation, so that its
//! time covers its kernels.
//!
//! | workload | what one run is | `gpu` size |
//! |---|---|---|
//! | `convnet_fwd_bwd` | default ConvNet (w128 d3, instance norm, ReLU, avg pool), forward + mean CE + backward to the weights, 256 images 1x28x28 | 2048 images |
//! | `gradient_ipc1` | one DC iteration: `gradient` (exact second order, `ours` distance) + `fixed` at ipc 1 = 1 outer step, 0 inner epochs; 256 real images per class | ipc 10, `outer_loop = 1` |
//! | `distribution_ipc10` | one DM iteration: `distribution` + `none` at ipc 10 = 1 outer step on a fresh net; 256 real per class | ipc 50 |
//! | `cafe_ipc10` | one CAFE iteration with `fixed` (not CAFE's `dynamic`, so the work is fixed): ipc 10 = 10 outer steps and 9 x 50 = 450 inner epochs; 256 real per class | the same |
//! | `cafe_step_ipc10` | one CAFE matching step alone (`fixed` with `outer_loop = 1`): the matcher without the inner training | ipc 50 |
//! | `eval_epoch` | one evaluation epoch: a fresh ConvNet, SGD (lr 0.01, momentum 0.9, wd 5e-4), 500 images (ipc 50) in batches of 256, no augmentation, then its accuracy on 10 test images | 5000 images (ipc 500) |
//! | `convnet_nonorm_fwd_bwd` | `convnet_fwd_bwd` without the instance norm (`norm = none`): its time subtracted from that of `convnet_fwd_bwd` is what the norm costs, on each side | 2048 images |
//! | `expert_epoch` | one epoch of an expert trajectory (`cafe-lab experts`, MTT's buffer.py): a fresh ConvNet, plain SGD (lr 0.01, no momentum or weight decay), 60 000 images in shuffled batches of 256, no augmentation, then a copy of the parameters (the trajectory's next point) | the same |

use std::fmt;
use std::sync::Arc;

use cafe_framework::config::{EvalConfig, PluginChoice, RunConfig};
use cafe_framework::data::{Dataset, DatasetKind};
use cafe_framework::engine::{condense, Components, CondenseSettings, RunControl};
use cafe_framework::eval::{
    evaluate_set, ArchPlan, Augmentation, EvalJob, OptimizerKind, Report, Schedule, TrainRecipe, TrainingSet,
};
use cafe_framework::logging::MetricLogger;
use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::run::resolve;
use cafe_framework::train::{cross_entropy, train_epoch, Sgd};
use cafe_framework::{Architecture, Error, Mode, Network, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::{json, Value};

use crate::random_data::{random_fashion_mnist, random_image_set};
use crate::{BATCH, CLASSES, INPUT};

/// Real images per class of a matching step (DESIGN.md's `batch_real`).
pub const BATCH_REAL: usize = 256;
/// Synthetic images per class of the evaluation epoch (500 images in all).
pub const EVAL_IPC: usize = 50;
/// Test images per class after the evaluation epoch (kept tiny: the epoch is what is timed).
pub const EVAL_TEST_PER_CLASS: usize = 1;
/// Training images per class of the expert epoch: Fashion-MNIST's 60 000 in all.
pub const EXPERT_TRAIN_PER_CLASS: usize = 6000;
/// The expert's SGD (mtt-distillation `buffer.py:117` `--lr_teacher 0.01`, `:129` `--mom 0`,
/// `:130` `--l2 0`) and batch (`:118` `--batch_train 256`).
pub const EXPERT_LR: f64 = 0.01;
pub const EXPERT_BATCH: usize = 256;

/// The sizes a workload runs at: the CPU's (the table's second column) or larger ones for a
/// GPU (its last column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Size {
    #[default]
    Cpu,
    Gpu,
}

impl Size {
    pub fn name(self) -> &'static str {
        match self {
            Size::Cpu => "cpu",
            Size::Gpu => "gpu",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(Size::Cpu),
            "gpu" => Ok(Size::Gpu),
            _ => Err(Error::invalid("--size", name, "cpu or gpu")),
        }
    }

    /// Images of `convnet_fwd_bwd`.
    fn convnet_batch(self) -> usize {
        match self {
            Size::Cpu => BATCH,
            Size::Gpu => 2048,
        }
    }

    /// Synthetic images per class of the evaluation epoch.
    fn eval_ipc(self) -> usize {
        match self {
            Size::Cpu => EVAL_IPC,
            Size::Gpu => 500,
        }
    }
}

/// One timed unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ConvnetFwdBwd,
    ConvnetNoNormFwdBwd,
    GradientIpc1,
    DistributionIpc10,
    CafeIpc10,
    CafeStepIpc10,
    EvalEpoch,
    ExpertEpoch,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::ConvnetFwdBwd,
        Workload::ConvnetNoNormFwdBwd,
        Workload::GradientIpc1,
        Workload::DistributionIpc10,
        Workload::CafeIpc10,
        Workload::CafeStepIpc10,
        Workload::EvalEpoch,
        Workload::ExpertEpoch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::ConvnetFwdBwd => "convnet_fwd_bwd",
            Workload::ConvnetNoNormFwdBwd => "convnet_nonorm_fwd_bwd",
            Workload::GradientIpc1 => "gradient_ipc1",
            Workload::DistributionIpc10 => "distribution_ipc10",
            Workload::CafeIpc10 => "cafe_ipc10",
            Workload::CafeStepIpc10 => "cafe_step_ipc10",
            Workload::EvalEpoch => "eval_epoch",
            Workload::ExpertEpoch => "expert_epoch",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|w| w.name()).collect();
            Error::invalid("workload", name, format!("valid names: {}", names.join(", ")))
        })
    }

    /// One line for `--help` and the tables.
    pub fn description(self) -> &'static str {
        match self {
            Workload::ConvnetFwdBwd => "ConvNet w128 d3 forward + CE + backward, 256 images 1x28x28",
            Workload::ConvnetNoNormFwdBwd => "convnet_fwd_bwd without the instance norm (what the norm costs)",
            Workload::GradientIpc1 => "one DC iteration: gradient (exact 2nd order) + fixed, ipc 1 (1 outer, 0 inner)",
            Workload::DistributionIpc10 => "one DM iteration: distribution + none, ipc 10 (1 outer step)",
            Workload::CafeIpc10 => "one CAFE iteration: cafe + fixed, ipc 10 (10 outer, 450 inner epochs)",
            Workload::CafeStepIpc10 => "one CAFE matching step: cafe + fixed(outer_loop=1), ipc 10",
            Workload::EvalEpoch => "one evaluation epoch of a fresh ConvNet on 500 images (ipc 50), no augmentation",
            Workload::ExpertEpoch => "one expert epoch: a fresh ConvNet, plain SGD, 60 000 images in batches of 256",
        }
    }

    /// The (matcher, scheduler, scheduler config, ipc) of a condensation workload.
    fn condensation(self, size: Size) -> Option<(&'static str, &'static str, Value, usize)> {
        let gpu = size == Size::Gpu;
        match self {
            Workload::GradientIpc1 if gpu => Some(("gradient", "fixed", json!({ "outer_loop": 1 }), 10)),
            Workload::GradientIpc1 => Some(("gradient", "fixed", json!({}), 1)),
            Workload::DistributionIpc10 => Some(("distribution", "none", json!({}), if gpu { 50 } else { 10 })),
            Workload::CafeIpc10 => Some(("cafe", "fixed", json!({}), 10)),
            Workload::CafeStepIpc10 => Some(("cafe", "fixed", json!({ "outer_loop": 1 }), if gpu { 50 } else { 10 })),
            Workload::ConvnetFwdBwd | Workload::ConvnetNoNormFwdBwd | Workload::EvalEpoch | Workload::ExpertEpoch => {
                None
            }
        }
    }

    /// What one run is at `size`, in a few words (for the tables).
    pub fn shape(self, size: Size) -> String {
        match self.condensation(size) {
            Some((m, _, config, ipc)) => format!(
                "{m}, ipc {ipc}{}",
                if config.get("outer_loop").is_some() {
                    ", 1 outer step"
                } else {
                    ""
                }
            ),
            None => match self {
                Workload::ConvnetFwdBwd | Workload::ConvnetNoNormFwdBwd => format!("{} images", size.convnet_batch()),
                Workload::EvalEpoch => format!("{} images", size.eval_ipc() * CLASSES),
                _ => format!("{} images", EXPERT_TRAIN_PER_CLASS * CLASSES),
            },
        }
    }

    /// Builds everything the workload needs, outside the timed part. For `gradient_ipc1` this
    /// switches candle's second-order gradients on for the process, as the CLI does: it must
    /// run before any backward pass of the thread (run that workload in its own process), and
    /// every later backward of the process keeps its graph.
    pub fn prepare(self) -> Result<Prepared> {
        self.prepare_on(&Device::Cpu, Size::Cpu)
    }

    /// [`Self::prepare`] on `device` at `size`.
    pub fn prepare_on(self, device: &Device, size: Size) -> Result<Prepared> {
        let kind = match self.condensation(size) {
            Some((matcher, scheduler, scheduler_config, ipc)) => {
                prepare_condensation(matcher, scheduler, scheduler_config, ipc)?
            }
            None if self == Workload::ConvnetFwdBwd => prepare_convnet(device, size, json!({}))?,
            None if self == Workload::ConvnetNoNormFwdBwd => prepare_convnet(device, size, json!({ "norm": "none" }))?,
            None if self == Workload::ExpertEpoch => prepare_expert(device)?,
            None => prepare_eval(device, size)?,
        };
        Ok(Prepared {
            workload: self,
            device: device.clone(),
            kind,
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one run did, so that both sides of a comparison can be checked to do the same work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Matching steps (condensation workloads).
    pub outer_steps: usize,
    /// Epochs of training a network (inner epochs, or the evaluation epoch).
    pub inner_epochs: usize,
    /// Loss of the last step (matching loss, or the CE of the forward pass); NaN where none.
    pub loss: f64,
}

/// A workload ready to run.
pub struct Prepared {
    workload: Workload,
    device: Device,
    kind: Kind,
}

enum Kind {
    Convnet {
        net: Box<dyn Network>,
        params: Vec<Var>,
        images: Tensor,
        labels: Tensor,
    },
    Condensation {
        dataset: Dataset,
        components: Components,
        settings: CondenseSettings,
    },
    Eval {
        dataset: Dataset,
        arch: ArchPlan,
        images: Tensor,
        labels: Tensor,
    },
    Expert {
        arch: Box<dyn Architecture>,
        images: Tensor,
        labels: Tensor,
    },
}

/// Drops every metric: the timed work should not include TensorBoard writes.
struct NullLogger;

impl MetricLogger for NullLogger {
    fn scalar(&mut self, _tag: &str, _step: usize, _value: f64) {}
}

fn prepare_convnet(device: &Device, size: Size, config: Value) -> Result<Kind> {
    let arch = find::<dyn Architecture>("convnet")?.instantiate(&config)?;
    let net = arch.build(INPUT, CLASSES, DType::F32, device, &mut rng_from_seed(0))?;
    let params = net.parameters();
    let batch = size.convnet_batch();
    let set = random_image_set(batch / CLASSES + 1, 1);
    let idx: Vec<usize> = (0..batch).collect();
    let (images, labels) = set.to_tensor(&idx, device)?;
    Ok(Kind::Convnet {
        net,
        params,
        images,
        labels,
    })
}

fn prepare_condensation(matcher: &str, scheduler: &str, scheduler_config: Value, ipc: usize) -> Result<Kind> {
    let mut scheduler = PluginChoice::named(scheduler);
    if let Value::Object(m) = scheduler_config {
        scheduler.config = m;
    }
    let config = RunConfig {
        dataset: DatasetKind::FashionMnist,
        matcher: PluginChoice::named(matcher),
        scheduler,
        ipc,
        iterations: Some(1),
        batch_real: BATCH_REAL,
        checkpoint_every: 0,
        log_images_every: 0,
        ..RunConfig::default()
    };
    let run = resolve(&config)?;
    if run.components.matcher.defaults().needs_second_order {
        cafe_framework::enable_second_order_gradients();
    }
    Ok(Kind::Condensation {
        dataset: random_fashion_mnist(BATCH_REAL, 1, 0),
        components: run.components,
        settings: run.settings,
    })
}

fn prepare_eval(device: &Device, size: Size) -> Result<Kind> {
    let dataset = random_fashion_mnist(size.eval_ipc(), EVAL_TEST_PER_CLASS, 2);
    let idx: Vec<usize> = (0..dataset.train.len()).collect();
    let (images, labels) = dataset.train.to_tensor(&idx, device)?;
    let defaults = EvalConfig::default();
    Ok(Kind::Eval {
        arch: ArchPlan {
            name: "convnet".into(),
            arch: Arc::from(find::<dyn Architecture>("convnet")?.instantiate(&json!({}))?),
            augmentation: Augmentation::build(&PluginChoice::named("none"))?,
            recipe: TrainRecipe {
                lr: defaults.lr,
                momentum: defaults.momentum,
                weight_decay: defaults.weight_decay,
                batch: defaults.batch,
                // The reference's E: evaluation trains E + 1 epochs (DC's `range(Epoch + 1)`),
                // so E = 0 is the one epoch the PyTorch twin times.
                epochs: 0,
                nets: 1,
                parallel: 1,
                schedule: Schedule::ReferenceStep,
                optimizer: OptimizerKind::Sgd,
                report: Report::Final,
            },
        },
        dataset,
        images,
        labels,
    })
}

fn prepare_expert(device: &Device) -> Result<Kind> {
    let set = random_image_set(EXPERT_TRAIN_PER_CLASS, 4);
    let idx: Vec<usize> = (0..set.len()).collect();
    let (images, labels) = set.to_tensor(&idx, device)?;
    Ok(Kind::Expert {
        arch: find::<dyn Architecture>("convnet")?.instantiate(&json!({}))?,
        images,
        labels,
    })
}

impl Prepared {
    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Runs the workload once; on a GPU, between two synchronisations.
    pub fn run(&mut self) -> Result<RunSummary> {
        self.device.synchronize()?;
        let summary = self.run_unsynchronised()?;
        self.device.synchronize()?;
        Ok(summary)
    }

    fn run_unsynchronised(&mut self) -> Result<RunSummary> {
        let device = self.device.clone();
        match &mut self.kind {
            Kind::Convnet {
                net,
                params,
                images,
                labels,
            } => {
                let loss = cross_entropy(&net.logits(images, Mode::Train)?, labels)?;
                let grads = loss.backward()?;
                // Every parameter must have been reached, or the timing would flatter us.
                if params.iter().any(|p| grads.get(p).is_none()) {
                    return Err(Error::Other("convnet_fwd_bwd: a parameter got no gradient".into()));
                }
                Ok(RunSummary {
                    outer_steps: 0,
                    inner_epochs: 0,
                    loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                })
            }
            Kind::Condensation {
                dataset,
                components,
                settings,
            } => {
                let outcome = condense(
                    dataset,
                    components,
                    settings,
                    &device,
                    &mut NullLogger,
                    &mut |_, _, _| {},
                    RunControl::default(),
                )?;
                let report = outcome
                    .reports
                    .last()
                    .ok_or_else(|| Error::Other("the condensation ran no iteration".into()))?;
                Ok(RunSummary {
                    outer_steps: report.outer_steps,
                    inner_epochs: report.inner_epochs,
                    loss: report.last_loss,
                })
            }
            Kind::Eval {
                dataset,
                arch,
                images,
                labels,
            } => {
                let job = EvalJob {
                    arch,
                    classes: dataset.classes,
                    shape: dataset.train.shape,
                    test: &dataset.test,
                    test_limit: None,
                    device: &device,
                    seed: 0,
                    on_network: None,
                    interrupt: None,
                    comm: &cafe_framework::dist::Solo,
                };
                evaluate_set(&job, &TrainingSet::labelled("synthetic", images, labels))?;
                Ok(RunSummary {
                    outer_steps: 0,
                    // Epochs trained: E + 1.
                    inner_epochs: arch.recipe.epochs_trained(),
                    loss: f64::NAN,
                })
            }
            Kind::Expert { arch, images, labels } => {
                // As `ExpertTrainer::train_expert` does for each epoch (trajectory/train.rs).
                let net = arch.build(INPUT, CLASSES, DType::F32, &device, &mut rng_from_seed(0))?;
                let mut opt = Sgd::new(net.parameters(), EXPERT_LR, 0.0, 0.0);
                let loss = train_epoch(
                    net.as_ref(),
                    &mut opt,
                    images,
                    labels,
                    EXPERT_BATCH,
                    None,
                    &mut rng_from_seed(1),
                )?;
                let snapshot: Vec<Tensor> = net
                    .parameters()
                    .iter()
                    .map(|p| p.as_tensor().copy())
                    .collect::<candle_core::Result<_>>()?;
                std::hint::black_box(snapshot);
                Ok(RunSummary {
                    outer_steps: 0,
                    inner_epochs: 1,
                    loss,
                })
            }
        }
    }
}

/// The default ConvNet's parameter count and its output shapes on one batch, for checking
/// that another implementation builds the same network.
pub fn convnet_signature() -> Result<Value> {
    let arch = find::<dyn Architecture>("convnet")?.instantiate(&json!({}))?;
    let net = arch.build(INPUT, CLASSES, DType::F32, &Device::Cpu, &mut rng_from_seed(0))?;
    let params: usize = net.parameters().iter().map(|p| p.as_tensor().elem_count()).sum();
    let x = Tensor::zeros(INPUT.batch_dims(2).to_vec(), DType::F32, &Device::Cpu)?;
    let out = net.forward(&x, Mode::Train)?;
    Ok(json!({
        "parameters": params,
        "parameter_shapes": net.parameters().iter().map(|p| p.as_tensor().dims().to_vec()).collect::<Vec<_>>(),
        "logits": out.logits.dims(),
        "embedding": out.embedding.dims(),
        "block_features": out.block_features.iter().map(|t| t.dims().to_vec()).collect::<Vec<_>>(),
    }))
}
