//! Soft-label (knowledge-distillation) evaluation, as SRe2L/RDED-style methods are evaluated
//! and as DD-Ranking does it in its soft-label mode 'M': a teacher trained on the real data
//! labels every augmented batch on the fly, and fresh students learn the teacher's
//! temperature-softened outputs on the set instead of its hard labels.
//!
//! References (NUS-HPC-AI-Lab/DD-Ranking at b8b0966): the loss is `KLDivergenceLoss`
//! (`ddranking/loss/kl.py:12-19`: KL(softmax(t / T) || softmax(s / T)) with `batchmean`
//! reduction, times T^2 only with `scale_loss`); the teacher's logits are computed on the same
//! augmented batch the student sees (`ddranking/utils/train_and_eval.py:174-187`); its demo
//! configuration uses T = 1 without scaling (`configs/Demo_LRS_Soft_Label.yaml:53-56`). The
//! students otherwise follow the run's recipe (optimiser, epochs, lr drop; `evaluate.rs`).

use candle_core::{DType, Tensor, D};

use crate::evaluate::{mean_std, EvalSetup, Evaluation};
use crate::metrics::class_accuracies;
use crate::rng::sub_rng;
use crate::teacher::{Teacher, TeacherInfo};
use crate::train::{batches, train_epoch, Sgd};
use crate::traits::architecture::{Mode, Network};
use crate::{Error, Result, Rng};

/// The distillation loss: KL(softmax(teacher / T) || softmax(student / T)), summed over classes
/// and averaged over the batch (`batchmean`), times T^2 when `scale` (`kl.py:12-19`). The
/// teacher's logits carry no gradient.
///
/// # Shapes
/// `student`, `teacher`: `[n, classes]`.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, temperature: f64, scale: bool) -> Result<Tensor> {
    let n = student.dim(0)? as f64;
    let log_q = candle_nn::ops::log_softmax(&(student / temperature)?, D::Minus1)?;
    let log_p = candle_nn::ops::log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let p = log_p.exp()?;
    let kl = (p * (log_p - log_q)?)?.sum_all()?;
    let factor = if scale { temperature * temperature } else { 1.0 } / n;
    Ok((kl * factor)?)
}

/// One epoch of a student on `images`, each batch augmented (as the recipe augments) and
/// labelled by the teacher on the fly. Returns the mean loss.
#[allow(clippy::too_many_arguments)]
pub fn train_kd_epoch(
    student: &dyn Network,
    teacher: &dyn Network,
    opt: &mut Sgd,
    images: &Tensor,
    batch: usize,
    setup: &EvalSetup,
    temperature: f64,
    rng: &mut Rng,
) -> Result<f64> {
    let n = images.dim(0)?;
    let mut total = 0.0;
    for idx in &batches(n, batch, Some(rng)) {
        let idx_t = Tensor::new(idx.as_slice(), images.device())?;
        let mut x = images.index_select(&idx_t, 0)?;
        if !setup.augmenter.is_identity() {
            x = setup.augmenter.augment(&x, rand::Rng::random(rng), false)?;
        }
        let x = x.detach();
        let target = teacher.logits(&x, Mode::Eval)?.detach();
        let loss = kd_loss(&student.logits(&x, Mode::Train)?, &target, temperature, false)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::NonFinite(format!(
                "distillation loss became {value}; lower the learning rate or the temperature"
            )));
        }
        total += value * idx.len() as f64;
        opt.backward_step(&loss)?;
    }
    Ok(total / n.max(1) as f64)
}

/// The recipe's schedule (`evaluate.rs`: E + 1 epochs, lr / 10 with a fresh optimiser after
/// epoch E/2 + 1) around one epoch function.
fn with_schedule(setup: &EvalSetup, net: &dyn Network, mut epoch: impl FnMut(&mut Sgd) -> Result<f64>) -> Result<()> {
    let cfg = setup.config;
    let mut opt = Sgd::new(net.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay);
    let decay_after = setup.epochs / 2 + 1;
    for e in 0..=setup.epochs {
        epoch(&mut opt)?;
        if e == decay_after {
            opt = Sgd::new(net.parameters(), cfg.lr * 0.1, cfg.momentum, cfg.weight_decay);
        }
    }
    Ok(())
}

/// Trains `setup.config.nets` students on `images` with `teacher`'s soft labels at
/// `temperature` and tests them on `setup.test` (hard labels), as `evaluate_set` does for
/// hard labels; network k starts from the same initialisation as there.
pub fn evaluate_set_kd(
    setup: &EvalSetup,
    teacher: &dyn Network,
    temperature: f64,
    set_name: &str,
    images: &Tensor,
) -> Result<Evaluation> {
    let cfg = setup.config;
    let test_n = cfg.test_limit.map_or(setup.test.len(), |l| l.min(setup.test.len()));
    let (test_x, test_y) = setup.test.to_tensor(&(0..test_n).collect::<Vec<_>>(), setup.device)?;
    let images = images.detach().to_dtype(DType::F32)?;
    let mut accuracies = Vec::new();
    let mut per_class = vec![0.0; setup.classes];
    for k in 0..cfg.nets {
        let mut rng = sub_rng(setup.seed, &[0xE7A1, k as u64]);
        let net = setup
            .arch
            .build(setup.shape, setup.classes, DType::F32, setup.device, &mut rng)?;
        with_schedule(setup, net.as_ref(), |opt| {
            train_kd_epoch(
                net.as_ref(),
                teacher,
                opt,
                &images,
                cfg.batch,
                setup,
                temperature,
                &mut rng,
            )
        })?;
        let (acc, pc) = class_accuracies(net.as_ref(), &test_x, &test_y, setup.classes, 500, Mode::Eval)?;
        if let Some(cb) = setup.on_network {
            cb(k, acc);
        }
        accuracies.push(acc);
        per_class
            .iter_mut()
            .zip(&pc)
            .for_each(|(s, v)| *s += v / cfg.nets as f64);
    }
    let (mean, std) = mean_std(&accuracies);
    Ok(Evaluation {
        set: set_name.to_string(),
        arch: setup.arch_name.to_string(),
        accuracies,
        mean,
        std,
        train_images: images.dim(0)?,
        test_images: test_n,
        epochs: setup.epochs,
        augment: setup.augment_name.to_string(),
        per_class,
        lr: Some(cfg.lr),
        // The teacher's outputs, not soft labels learned with the set.
        soft_labels: false,
    })
}

/// Trains a teacher of `setup.arch` on the real `images`/`labels` under the recipe's schedule
/// (`setup.epochs`, augmentation, optimiser) with hard labels, then tests it.
pub fn train_teacher(setup: &EvalSetup, images: &Tensor, labels: &Tensor, seed: u64) -> Result<Teacher> {
    let mut rng = sub_rng(seed, &[0x7EAC_4E12]);
    let net = setup
        .arch
        .build(setup.shape, setup.classes, DType::F32, setup.device, &mut rng)?;
    with_schedule(setup, net.as_ref(), |opt| {
        train_epoch(
            net.as_ref(),
            opt,
            images,
            labels,
            setup.config.batch,
            Some(setup.augmenter),
            &mut rng,
        )
    })?;
    let test_n = setup
        .config
        .test_limit
        .map_or(setup.test.len(), |l| l.min(setup.test.len()));
    let (test_x, test_y) = setup.test.to_tensor(&(0..test_n).collect::<Vec<_>>(), setup.device)?;
    let (accuracy, _) = class_accuracies(net.as_ref(), &test_x, &test_y, setup.classes, 500, Mode::Eval)?;
    Ok(Teacher {
        net,
        info: TeacherInfo {
            arch: setup.arch_name.to_string(),
            source: "trained".into(),
            epochs: setup.epochs,
            train_images: images.dim(0)?,
            accuracy,
        },
    })
}
