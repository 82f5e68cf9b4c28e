//! One iteration of the bi-level loop: the outer (matching) step, the inner (network training)
//! epoch and the probe accuracy that a [`Scheduler`](crate::traits::scheduler::Scheduler)
//! composes.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;

use crate::data::Dataset;
use crate::dist::{agree, f64_bytes, f64s, share, Communicator};
use crate::engine::CondenseSettings;
use crate::logging::MetricLogger;
use crate::rng::derive_seed;
use crate::synthetic::SyntheticSet;
use crate::train::{accuracy, train_epoch, Optimizer, Sgd};
use crate::traits::architecture::{Mode, Network};
use crate::traits::augmenter::Augmenter;
use crate::traits::image_update::PixelRange;
use crate::traits::matcher::{
    sum_parts, Decomposition, Exchange, MatchContext, MatchOutput, Matcher, NoExchange, RealSampler,
};
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
    /// The pixels' optimiser (SGD, or the matcher's own: [`crate::Matcher::image_update`]).
    pub(crate) image_opt: &'a mut dyn Optimizer,
    /// Where the pixels are clamped after every step (None: nowhere).
    pub(crate) pixel_range: Option<&'a PixelRange>,
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
    /// The ranks that share each matching step when the matcher's loss decomposes over
    /// classes (every rank runs the same iteration otherwise).
    pub(crate) comm: &'a dyn Communicator,
    /// Outer steps of this iteration whose update the matcher declined ([`MatchOutput::skip`]).
    pub(crate) skipped_steps: usize,
    /// Outer steps of this iteration shared among ranks by class.
    pub(crate) shared_steps: usize,
    /// [`MatchOutput::record`] of the iteration's last outer step.
    pub(crate) record: Vec<(String, f64)>,
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
    let members = sample_indices(by_class, rng, c, n);
    Ok(dataset.train.to_tensor(&members, device)?.0)
}

/// The indices [`sample_class`] draws: a rank that does not compute class `c` still draws
/// them, so that every rank's stream stays where the others' is.
fn sample_indices(by_class: &[Vec<usize>], rng: &mut Rng, c: usize, n: usize) -> Vec<usize> {
    let mut members = by_class[c].clone();
    members.shuffle(rng);
    members.truncate(n);
    members
}

/// Gathers rows of f32 tensors across ranks for a matcher ([`Exchange`]): the communicator's
/// own gather (host bytes, or device buffers under NCCL).
struct CommExchange<'a>(&'a dyn Communicator);

impl Exchange for CommExchange<'_> {
    fn all_gather_rows(&self, rows: &Tensor) -> Result<Tensor> {
        self.0.all_gather_rows(rows)
    }
    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        let mut all = Vec::new();
        for part in self.0.all_gather_bytes(&f64_bytes(values))? {
            all.extend(f64s(&part)?);
        }
        Ok(all)
    }
}

/// Sums the terms that share a name, in the order they come (a per-class matcher reports one
/// per class), keeping the order in which each name first appears.
fn merge_terms(terms: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mut merged: Vec<(String, f64)> = Vec::new();
    for (name, value) in terms {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v += value,
            None => merged.push((name, value)),
        }
    }
    merged
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
        // Shared among ranks when the loss decomposes over classes: this rank's classes.
        // More ranks than classes would leave a rank without a class: the step is then computed
        // whole on every rank.
        let shared = self.comm.size() > 1
            && self.comm.size() <= classes
            && self.matcher.decomposition(self.network.as_ref()) != Decomposition::Global;
        let owned = if shared {
            share(classes, self.comm.rank(), self.comm.size())
        } else {
            0..classes
        };
        let mut real = Vec::with_capacity(classes);
        let wants_real = self.matcher.uses_real_batches();
        for (c, &seed) in seeds.iter().enumerate().filter(|_| wants_real) {
            if !owned.contains(&c) {
                // Drawn all the same, so that every rank's stream stays in step.
                sample_indices(self.by_class, &mut self.rng, c, self.settings.batch_real);
                real.push(self.synthetic.images.as_tensor().narrow(0, 0, 0)?);
                continue;
            }
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
        let exchange = CommExchange(self.comm);
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
            owned: owned.clone(),
            exchange: if shared { &exchange } else { &NoExchange },
        };
        let out = self.matcher.compute(&ctx);
        self.shared_steps += usize::from(shared);
        let mut out = if shared {
            let out = agree(self.comm, out)?;
            gather_shared(self.comm, out, owned, self.synthetic.ipc)?
        } else {
            out?
        };
        out.terms = merge_terms(std::mem::take(&mut out.terms));
        if !out.loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "matching loss is {} at iteration {}; lower --lr-img or check the data",
                out.loss, self.iteration
            )));
        }
        let finite =
            |t: &Tensor| -> Result<bool> { Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite()) };
        let position = |name: &str, what: &str| {
            self.synthetic
                .learned
                .iter()
                .position(|l| l.name == name)
                .ok_or_else(|| {
                    Error::Other(format!(
                        "the matcher returned {what} for '{name}', which it did not declare in prepare()"
                    ))
                })
        };
        for (name, value) in &out.assign {
            let k = position(name, "a value")?;
            self.synthetic.learned[k].var.set(&value.detach())?;
        }
        if out.skip {
            self.skipped_steps += 1;
        } else {
            self.image_opt.step_with(&[Some(out.gradient)])?;
            if let Some(range) = self.pixel_range {
                self.synthetic
                    .images
                    .set(&range.clamp(self.synthetic.images.as_tensor())?)?;
            }
            if !finite(self.synthetic.images.as_tensor())? {
                return Err(Error::NonFinite(format!(
                    "the synthetic set holds non-finite pixels after iteration {}; lower --lr-img",
                    self.iteration
                )));
            }
            for (name, gradient) in out.learned {
                let k = position(&name, "a gradient")?;
                self.learned_opts[k].step_with(&[Some(gradient)])?;
                if !finite(self.synthetic.learned[k].var.as_tensor())? {
                    return Err(Error::NonFinite(format!(
                        "the learned '{name}' became non-finite after iteration {}; lower its learning rate",
                        self.iteration
                    )));
                }
            }
        }
        self.record = out.record;
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

/// Puts together a matching step shared among ranks: every rank's gradient rows (its classes'
/// images, in class order), its loss parts (added left to right in class order, then the shared
/// term, as one process adds them) and its logged terms. The same on every rank.
fn gather_shared(
    comm: &dyn Communicator,
    out: MatchOutput,
    owned: std::ops::Range<usize>,
    ipc: usize,
) -> Result<MatchOutput> {
    if !out.learned.is_empty() {
        return Err(Error::Other(
            "a matcher that learns extras beside the pixels cannot share a step among ranks: its \
             decomposition must be Global"
                .into(),
        ));
    }
    let rows = out.gradient.narrow(0, owned.start * ipc, owned.len() * ipc)?;
    let row_dims = out.gradient.dims()[1..].to_vec();
    let gradient_rows = CommExchange(comm).all_gather_rows(&rows)?;
    let mut dims = vec![gradient_rows.dim(0)?];
    dims.extend(row_dims);
    let gradient = gradient_rows.reshape(dims)?.to_dtype(out.gradient.dtype())?;
    let dtype = out.loss_parts.first().map_or(DType::F32, Tensor::dtype);
    let values: Vec<f64> = out
        .loss_parts
        .iter()
        .map(|p| p.to_dtype(DType::F64)?.to_scalar::<f64>())
        .collect::<candle_core::Result<_>>()?;
    let mut all_values = Vec::new();
    for part in comm.all_gather_bytes(&f64_bytes(&values))? {
        all_values.extend(f64s(&part)?);
    }
    if let Some(g) = &out.loss_global {
        all_values.push(g.to_dtype(DType::F64)?.to_scalar::<f64>()?);
    }
    let mut term_bytes = Vec::new();
    for (name, value) in &out.terms {
        term_bytes.extend_from_slice(&(name.len() as u64).to_le_bytes());
        term_bytes.extend_from_slice(name.as_bytes());
        term_bytes.extend_from_slice(&value.to_le_bytes());
    }
    let mut terms = Vec::new();
    for part in comm.all_gather_bytes(&term_bytes)? {
        let mut at = 0;
        while at < part.len() {
            let broken = || Error::Other("a rank sent broken loss terms".into());
            let len =
                u64::from_le_bytes(part.get(at..at + 8).ok_or_else(broken)?.try_into().expect("8 bytes")) as usize;
            let name = String::from_utf8_lossy(part.get(at + 8..at + 8 + len).ok_or_else(broken)?).into_owned();
            let value = f64::from_le_bytes(
                part.get(at + 8 + len..at + 16 + len)
                    .ok_or_else(broken)?
                    .try_into()
                    .expect("8 bytes"),
            );
            terms.push((name, value));
            at += 16 + len;
        }
    }
    Ok(MatchOutput {
        loss: sum_parts(&all_values, dtype),
        terms,
        gradient,
        learned: Vec::new(),
        loss_parts: Vec::new(),
        loss_global: None,
        skip: false,
        assign: Vec::new(),
        record: Vec::new(),
    })
}
