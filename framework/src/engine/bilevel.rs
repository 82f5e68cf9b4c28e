//! One iteration of the bi-level loop: the outer (matching) step, the inner (network training)
//! epoch and the probe accuracy that a [`Scheduler`](crate::traits::scheduler::Scheduler)
//! composes.

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;

use crate::data::Dataset;
use crate::engine::CondenseSettings;
use crate::logging::MetricLogger;
use crate::rng::derive_seed;
use crate::synthetic::SyntheticSet;
use crate::train::{accuracy, train_epoch, Sgd};
use crate::traits::architecture::{Mode, Network};
use crate::traits::augmenter::Augmenter;
use crate::traits::matcher::{MatchContext, Matcher};
use crate::traits::scheduler::BilevelLoop;
use crate::{Error, Result, Rng};

/// Seed-stream tags, so that each kind of random draw has its own sub-stream.
pub(crate) mod stream {
    pub const NETWORK: u64 = 1;
    pub const SAMPLING: u64 = 2;
    pub const AUGMENT: u64 = 3;
    pub const INIT: u64 = 4;
    pub const BASELINE: u64 = 5;
    pub const EVAL: u64 = 6;
}

/// The state of one iteration, implementing [`BilevelLoop`] for the scheduler.
pub struct IterationLoop<'a> {
    pub(crate) dataset: &'a Dataset,
    pub(crate) by_class: &'a [Vec<usize>],
    pub(crate) matcher: &'a dyn Matcher,
    pub(crate) augmenter: &'a dyn Augmenter,
    pub(crate) network: Box<dyn Network>,
    pub(crate) network_opt: Sgd,
    pub(crate) synthetic: &'a SyntheticSet,
    pub(crate) image_opt: &'a mut Sgd,
    pub(crate) settings: &'a CondenseSettings,
    pub(crate) device: &'a Device,
    pub(crate) rng: Rng,
    pub(crate) iteration: usize,
    pub(crate) outer_steps: usize,
    /// The probe of this iteration: (images per class asked for, images, labels).
    pub(crate) probe: Option<(usize, Tensor, Tensor)>,
    pub(crate) logger: &'a mut dyn MetricLogger,
    /// Global counter of outer steps, the x axis of per-step logs.
    pub(crate) global_step: &'a mut usize,
}

impl IterationLoop<'_> {
    /// `n` random distinct images of class `c` (all of them, shuffled, if the class is smaller).
    fn sample_class(&mut self, c: usize, n: usize) -> Result<Tensor> {
        let mut members = self.by_class[c].clone();
        members.shuffle(&mut self.rng);
        members.truncate(n);
        Ok(self.dataset.train.to_tensor(&members, self.device)?.0)
    }
}

impl BilevelLoop for IterationLoop<'_> {
    fn outer_step(&mut self) -> Result<f64> {
        let classes = self.dataset.classes;
        let seeds: Vec<u64> = (0..classes)
            .map(|c| {
                derive_seed(
                    self.settings.seed,
                    &[
                        stream::AUGMENT,
                        self.iteration as u64,
                        self.outer_steps as u64,
                        c as u64,
                    ],
                )
            })
            .collect();
        let mut real = Vec::with_capacity(classes);
        for (c, &seed) in seeds.iter().enumerate() {
            let batch = self.sample_class(c, self.settings.batch_real)?;
            let batch = if self.augmenter.is_identity() {
                batch
            } else {
                self.augmenter.augment(&batch, seed, true)?.detach()
            };
            real.push(batch);
        }
        let ctx = MatchContext {
            network: self.network.as_ref(),
            real: &real,
            synthetic: &self.synthetic.images,
            ipc: self.synthetic.ipc,
            augmenter: self.augmenter,
            seeds: &seeds,
        };
        let out = self.matcher.compute(&ctx)?;
        if !out.loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "matching loss is {} at iteration {}; lower --lr-img or check the data",
                out.loss, self.iteration
            )));
        }
        self.image_opt.step_with(&[Some(out.gradient)])?;
        let check = self
            .synthetic
            .images
            .as_tensor()
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        if !check.is_finite() {
            return Err(Error::NonFinite(format!(
                "the synthetic set holds non-finite pixels after iteration {}; lower --lr-img",
                self.iteration
            )));
        }
        let step = *self.global_step;
        self.logger.scalar("loss/total", step, out.loss);
        for (name, value) in &out.terms {
            self.logger.scalar(&format!("loss/{name}"), step, *value);
        }
        *self.global_step += 1;
        self.outer_steps += 1;
        Ok(out.loss)
    }

    fn inner_epoch(&mut self) -> Result<()> {
        let images = self.synthetic.images_detached();
        let aug = if self.augmenter.is_identity() {
            None
        } else {
            Some(self.augmenter)
        };
        train_epoch(
            self.network.as_ref(),
            &mut self.network_opt,
            &images,
            &self.synthetic.labels,
            self.settings.batch_train,
            aug,
            &mut self.rng,
        )?;
        Ok(())
    }

    fn probe_accuracy(&mut self, per_class: usize) -> Result<f64> {
        if self.probe.as_ref().is_none_or(|(n, _, _)| *n != per_class) {
            let mut xs = Vec::new();
            let mut ys: Vec<u32> = Vec::new();
            for c in 0..self.dataset.classes {
                let x = self.sample_class(c, per_class)?;
                ys.extend(std::iter::repeat_n(c as u32, x.dim(0)?));
                xs.push(x);
            }
            let n = ys.len();
            self.probe = Some((per_class, Tensor::cat(&xs, 0)?, Tensor::from_vec(ys, n, self.device)?));
        }
        let (_, x, y) = self.probe.as_ref().expect("probe built above");
        accuracy(self.network.as_ref(), x, y, 512, Mode::Eval)
    }

    fn ipc(&self) -> usize {
        self.synthetic.ipc
    }
}
