//! Batch normalisation over (N, H, W) per channel, as PyTorch's `nn.BatchNorm2d` (DC's
//! `batchnorm`), with running statistics for `Mode::Eval`.

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};

use super::group_norm::{channel_affine, NORM_EPS};
use super::init::constant_var;
use super::param_source::ParamSource;
use crate::{Error, Mode, Result};

/// PyTorch's default momentum of the running statistics.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// Running mean and (unbiased) variance, `[c]` each.
#[derive(Debug, Clone)]
pub struct RunningStats {
    pub mean: Tensor,
    pub var: Tensor,
}

/// `Mode::Train` normalises with the batch mean and biased variance and moves the running
/// statistics toward the batch's (mean, unbiased variance) by `momentum`; `Mode::Eval`
/// normalises with the running statistics. Affine weight 1 and bias 0 at start; running mean 0
/// and variance 1, as PyTorch.
#[derive(Debug)]
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    /// Behind a mutex so that `forward` takes `&self` (networks are shared, `Send + Sync`).
    running: Mutex<RunningStats>,
    momentum: f64,
}

impl BatchNorm2d {
    pub fn new(channels: usize, dtype: DType, device: &Device) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid("BatchNorm2d channels", channels, "must be positive"));
        }
        let running = RunningStats {
            mean: Tensor::zeros(channels, dtype, device)?,
            var: Tensor::ones(channels, dtype, device)?,
        };
        Ok(Self {
            weight: constant_var(&[channels], 1.0, dtype, device)?,
            bias: constant_var(&[channels], 0.0, dtype, device)?,
            running: Mutex::new(running),
            momentum: BATCH_NORM_MOMENTUM,
        })
    }

    /// # Shapes
    /// `[n, c, h, w] -> [n, c, h, w]`.
    ///
    /// # Errors
    /// In `Mode::Train`, when a channel has a single value (`n * h * w == 1`): its unbiased
    /// variance does not exist (PyTorch raises the same error).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_with(x, mode, &mut ParamSource::own())
    }

    /// [`BatchNorm2d::forward`] with the weight and bias taken from `params`. On given
    /// parameters (`!params.is_own()`) `Mode::Train` normalises with the batch statistics as
    /// always but leaves the running statistics alone: a functional pass (an unrolled MTT
    /// student) must not change the network it borrows its structure from, and the
    /// reference's student network, whose buffers its unroll does update, is discarded after
    /// each iteration (mtt-distillation `distill.py` line 294) so nothing reads them.
    /// `Mode::Eval` uses the network's running statistics either way: they are buffers, not
    /// parameters (`reparam_module.py` lines 66-74 reparametrise parameters only).
    pub fn forward_with(&self, x: &Tensor, mode: Mode, params: &mut ParamSource) -> Result<Tensor> {
        let (weight, bias) = (params.take(&self.weight)?, params.take(&self.bias)?);
        let c = self.weight.dim(0)?;
        let (n, xc, h, w) = x.dims4()?;
        if xc != c {
            return Err(Error::invalid(
                "BatchNorm2d input",
                format!("{:?}", x.dims()),
                format!("must be [n, {c}, h, w]"),
            ));
        }
        let recording = super::batch_norm_record::recording();
        let normalised = match mode {
            Mode::Train if super::class_synced_batch_norm::active() => {
                // A step shared among ranks by class: the whole batch's statistics.
                if recording {
                    return Err(Error::Other(
                        "BatchNorm statistics cannot be recorded inside a class-synchronised forward".into(),
                    ));
                }
                let synced = super::class_synced_batch_norm::normalise(x, NORM_EPS)?;
                if params.is_own() {
                    let unbiased = (&synced.var * (synced.count as f64 / (synced.count - 1) as f64))?;
                    self.update(&synced.mean, &unbiased)?;
                }
                synced.normalised
            }
            Mode::Train => {
                let count = n * h * w;
                if count < 2 {
                    return Err(Error::invalid(
                        "BatchNorm2d batch",
                        format!("{:?}", x.dims()),
                        "training needs more than one value per channel",
                    ));
                }
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
                if recording {
                    // Before the update: what the layer held when it saw this batch.
                    self.record(&mean, &var)?;
                }
                let unbiased = (var.detach().flatten_all()? * (count as f64 / (count - 1) as f64))?;
                if params.is_own() {
                    self.update(&mean.detach().flatten_all()?, &unbiased)?;
                }
                centered.broadcast_mul(&(var + NORM_EPS)?.sqrt()?.recip()?)?
            }
            Mode::Eval => {
                if recording {
                    let mean = x.mean_keepdim((0, 2, 3))?;
                    let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
                    self.record(&mean, &var)?;
                }
                let stats = self.running_stats()?;
                let mean = stats.mean.reshape((1, c, 1, 1))?;
                let inv_std = (stats.var + NORM_EPS)?.sqrt()?.recip()?.reshape((1, c, 1, 1))?;
                x.broadcast_sub(&mean)?.broadcast_mul(&inv_std)?
            }
        };
        channel_affine(&normalised, &weight, &bias)
    }

    /// Hands the batch statistics of the input (`[1, c, 1, 1]`, with their graph) and the
    /// running statistics to [`super::record_batch_norms`].
    fn record(&self, mean: &Tensor, var: &Tensor) -> Result<()> {
        let running = self.running_stats()?;
        super::batch_norm_record::push(super::BatchNormRecord {
            mean: mean.flatten_all()?,
            var: var.flatten_all()?,
            running_mean: running.mean,
            running_var: running.var,
        });
        Ok(())
    }

    /// `running = (1 - momentum) running + momentum batch`.
    fn update(&self, mean: &Tensor, var: &Tensor) -> Result<()> {
        let mut stats = self.lock()?;
        let m = self.momentum;
        stats.mean = ((&stats.mean * (1.0 - m))? + (mean * m)?)?;
        stats.var = ((&stats.var * (1.0 - m))? + (var * m)?)?;
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, RunningStats>> {
        self.running
            .lock()
            .map_err(|_| Error::Other("BatchNorm2d running statistics: a thread panicked while updating them".into()))
    }

    /// A copy of the running statistics.
    pub fn running_stats(&self) -> Result<RunningStats> {
        Ok(self.lock()?.clone())
    }

    /// Replaces the running statistics (e.g. restored from a checkpoint).
    pub fn set_running_stats(&self, stats: RunningStats) -> Result<()> {
        let c = self.weight.dim(0)?;
        if stats.mean.dims() != [c] || stats.var.dims() != [c] {
            return Err(Error::invalid(
                "BatchNorm2d running statistics",
                format!("{:?}, {:?}", stats.mean.dims(), stats.var.dims()),
                format!("must be [{c}] each"),
            ));
        }
        *self.lock()? = RunningStats {
            mean: stats.mean.detach(),
            var: stats.var.detach(),
        };
        Ok(())
    }

    /// Weight, then bias (PyTorch's order).
    pub fn parameters(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
