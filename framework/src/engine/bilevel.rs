//! One iteration of the bi-level loop: the outer (matching) step, the inner (network training)
//! epoch and the probe accuracy that a [`Scheduler`](crate::traits::scheduler::Scheduler)
//! composes.

use std::cell::RefCell;

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
use crate::traits::matcher::{MatchContext, Matcher, RealSampler};
use crate::traits::scheduler::{BilevelLoop, ProbeDraw};
use crate::{Error, Result, Rng};

pub(crate) use crate::rng::stream;

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
    /// One optimiser per learned extra, in the order of `synthetic.learned`.
    pub(crate) learned_opts: &'a mut [Sgd],
    pub(crate) settings: &'a CondenseSettings,
    pub(crate) device: &'a Device,
    pub(crate) rng: Rng,
    pub(crate) iteration: usize,
    pub(crate) outer_steps: usize,
    /// The last probe's images: (images per class asked for, one batch per class).
    pub(crate) probe: Option<(usize, Vec<Tensor>)>,
    pub(crate) logger: &'a mut dyn MetricLogger,
    /// Global counter of outer steps, the x axis of per-step logs.
    pub(crate) global_step: &'a mut usize,
}

impl IterationLoop<'_> {
    /// `n` random distinct images of class `c` (all of them, shuffled, if the class is smaller).
    fn sample_class(&mut self, c: usize, n: usize) -> Result<Tensor> {
        sample_class(self.dataset, self.by_class, self.device, &mut self.rng, c, n)
    }
}

/// `n` random distinct images of class `c` (all of them, shuffled, if the class is smaller),
/// as the reference's `np.random.permutation(indices_class[c])[:n]`.
fn sample_class(
    dataset: &Dataset,
    by_class: &[Vec<usize>],
    device: &Device,
    rng: &mut Rng,
    c: usize,
    n: usize,
) -> Result<Tensor> {
    let mut members = by_class[c].clone();
    members.shuffle(rng);
    members.truncate(n);
    Ok(dataset.train.to_tensor(&members, device)?.0)
}

/// The engine's [`RealSampler`]: draws from the iteration's sampling stream.
struct ClassSampler<'a> {
    dataset: &'a Dataset,
    by_class: &'a [Vec<usize>],
    device: &'a Device,
    rng: RefCell<&'a mut Rng>,
}

impl RealSampler for ClassSampler<'_> {
    fn sample(&self, class: usize, n: usize) -> Result<Tensor> {
        if class >= self.by_class.len() {
            return Err(Error::Other(format!(
                "class {class} asked of a dataset of {} classes",
                self.by_class.len()
            )));
        }
        sample_class(
            self.dataset,
            self.by_class,
            self.device,
            &mut self.rng.borrow_mut(),
            class,
            n,
        )
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
        let wants_real = self.matcher.uses_real_batches();
        for (c, &seed) in seeds.iter().enumerate().filter(|_| wants_real) {
            let batch = self.sample_class(c, self.settings.batch_real)?;
            let batch = if self.augmenter.is_identity() {
                batch
            } else {
                self.augmenter.augment(&batch, seed, true)?.detach()
            };
            real.push(batch);
        }
        let sampler = ClassSampler {
            dataset: self.dataset,
            by_class: self.by_class,
            device: self.device,
            rng: RefCell::new(&mut self.rng),
        };
        let ctx = MatchContext {
            network: self.network.as_ref(),
            real: &real,
            synthetic: &self.synthetic.images,
            labels: &self.synthetic.labels,
            learned: &self.synthetic.learned,
            ipc: self.synthetic.ipc,
            classes,
            iteration: self.iteration,
            step_seed: derive_seed(
                self.settings.seed,
                &[stream::MATCH, self.iteration as u64, self.outer_steps as u64],
            ),
            augmenter: self.augmenter,
            seeds: &seeds,
            fresh_real: &sampler,
        };
        let out = self.matcher.compute(&ctx)?;
        if !out.loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "matching loss is {} at iteration {}; lower --lr-img or check the data",
                out.loss, self.iteration
            )));
        }
        self.image_opt.step_with(&[Some(out.gradient)])?;
        let finite =
            |t: &Tensor| -> Result<bool> { Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite()) };
        if !finite(self.synthetic.images.as_tensor())? {
            return Err(Error::NonFinite(format!(
                "the synthetic set holds non-finite pixels after iteration {}; lower --lr-img",
                self.iteration
            )));
        }
        for (name, gradient) in out.learned {
            let Some(k) = self.synthetic.learned.iter().position(|l| l.name == name) else {
                return Err(Error::Other(format!(
                    "the matcher returned a gradient for '{name}', which it did not declare in prepare()"
                )));
            };
            self.learned_opts[k].step_with(&[Some(gradient)])?;
            if !finite(self.synthetic.learned[k].var.as_tensor())? {
                return Err(Error::NonFinite(format!(
                    "the learned '{name}' became non-finite after iteration {}; lower its learning rate",
                    self.iteration
                )));
            }
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
        let targets = self.synthetic.training_targets();
        let aug = if self.augmenter.is_identity() {
            None
        } else {
            Some(self.augmenter)
        };
        train_epoch(
            self.network.as_ref(),
            &mut self.network_opt,
            &images,
            &targets,
            self.settings.batch_train,
            aug,
            &mut self.rng,
        )?;
        Ok(())
    }

    fn probe_accuracy(&mut self, per_class: usize, draw: ProbeDraw) -> Result<f64> {
        let reuse = draw == ProbeDraw::Fixed && self.probe.as_ref().is_some_and(|(n, _)| *n == per_class);
        if !reuse {
            let batches = (0..self.dataset.classes)
                .map(|c| self.sample_class(c, per_class))
                .collect::<Result<Vec<_>>>()?;
            self.probe = Some((per_class, batches));
        }
        let (_, batches) = self.probe.as_ref().expect("probe drawn above");
        // CAFE's distill.py:300-305: per class, `net(img_real_test)` on the class's images with
        // the network in train mode, the class's mean accuracy summed, divided by the classes.
        let mut sum = 0.0;
        for (c, x) in batches.iter().enumerate() {
            let n = x.dim(0)?;
            let y = Tensor::full(c as u32, n, self.device)?;
            sum += accuracy(self.network.as_ref(), x, &y, n, Mode::Train)?;
        }
        Ok(sum / batches.len() as f64)
    }

    fn ipc(&self) -> usize {
        self.synthetic.ipc
    }

    fn classes(&self) -> usize {
        self.dataset.classes
    }
}
