//! BatchNorm over a batch whose classes are spread over ranks: a synchronised BatchNorm (as
//! PyTorch's `SyncBatchNorm`) whose reductions do not depend on how many ranks there are.
//!
//! DM and CAFE feed a BatchNorm network every class in one batch, so the batch statistics mix
//! the classes (DatasetCondensation `main_DM.py:165-174`, "for ConvNetBN"). To share such a step
//! among ranks by class, each rank forwards only its classes' images, and every BatchNorm layer
//! in `Mode::Train` needs the statistics of the whole batch: while
//! [`with_class_synced_batch_norm`] runs, each layer computes, per class of its input, the sum
//! over (N, H, W) of its values (in f64), gathers every class's sums through the given gather
//! (rank order is class order), adds them in class order, and does the same for the squared
//! deviations from the mean (two passes, as the unsynchronised layer); its backward gathers the
//! per-class sums of `g` and `g * x_hat` in the same way and returns
//! `dx = g - mean(g) - x_hat * mean(g * x_hat)` (per channel, over the whole batch; `g` is the
//! gradient at the normalised input scaled by `1 / std`).
//!
//! Every number is a sum over classes in class order of per-class sums, each computed from its
//! class's rows alone, so one process (whose gather returns its own values) computes the same
//! bytes as any number of ranks. The affine weight and bias stay ordinary autograd ops: their
//! gradients are this rank's share only, which is all a pixel-matching step reads (the
//! network is not stepped by the matching loss).

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use crate::{Error, Result};

/// Every rank's values concatenated in rank order (a single process: its own values).
pub type GatherF64<'a> = dyn Fn(&[f64]) -> Result<Vec<f64>> + 'a;

/// The scope of one [`with_class_synced_batch_norm`] call.
struct Scope {
    /// The caller's gather, alive for as long as the scope is installed (see the `SAFETY` note
    /// in [`with_class_synced_batch_norm`]).
    gather: *const GatherF64<'static>,
    /// Images per class of this rank's batch, in class order.
    rows: Rc<Vec<usize>>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Restores the previous scope when dropped, also when the closure panics.
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SCOPE.with(|s| *s.borrow_mut() = previous);
    }
}

/// Runs `f` with every BatchNorm forward in `Mode::Train` on this thread normalising with the
/// statistics of the whole batch across ranks, and every backward of such a forward that runs
/// inside `f` (call `backward` inside it) gathering its sums the same way. `rows` gives the
/// images per class of this rank's batch, in class order (a rank with no classes passes `&[]`
/// and an empty batch, and still takes part in every gather); `gather` returns every rank's
/// values concatenated in rank order, which must be class order.
pub fn with_class_synced_batch_norm<R>(gather: &GatherF64<'_>, rows: &[usize], f: impl FnOnce() -> R) -> R {
    // SAFETY: the lifetime is erased only to store the pointer in a thread-local; it is
    // dereferenced (in `gather`) only while this scope is installed, i.e. inside `f`, while the
    // borrow `gather` is alive; `Restore` removes it on every exit, unwinding included.
    let erased: *const GatherF64<'static> = unsafe { std::mem::transmute(gather as *const GatherF64<'_>) };
    let scope = Scope {
        gather: erased,
        rows: Rc::new(rows.to_vec()),
    };
    let previous = SCOPE.with(|s| s.borrow_mut().replace(scope));
    let _restore = Restore(previous);
    f()
}

/// Whether a BatchNorm forward on this thread is inside [`with_class_synced_batch_norm`].
pub(crate) fn active() -> bool {
    SCOPE.with(|s| s.borrow().is_some())
}

/// Gathers `mine` through the installed scope.
fn gather(mine: &[f64]) -> Result<Vec<f64>> {
    SCOPE.with(|s| {
        let scope = s.borrow();
        let scope = scope.as_ref().ok_or_else(|| {
            Error::Other(
                "a class-synchronised BatchNorm ran outside with_class_synced_batch_norm (its backward must \
                 run inside the scope of its forward)"
                    .into(),
            )
        })?;
        // SAFETY: see `with_class_synced_batch_norm`: the scope is installed, so the borrow behind
        // the pointer is alive.
        let f = unsafe { &*scope.gather };
        f(mine)
    })
}

fn rows() -> Result<Rc<Vec<usize>>> {
    SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .map(|scope| scope.rows.clone())
            .ok_or_else(|| Error::Other("no class-synchronised BatchNorm scope".into()))
    })
}

/// Per class of `rows`, the per-channel sums of `t` (`[n, c, h, w]`) over (N, H, W), in f64:
/// `rows.len() x c` values, class after class.
fn class_sums(t: &Tensor, rows: &[usize]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rows.len() * t.dim(1)?);
    let mut start = 0;
    for &n in rows {
        let part = t.narrow(0, start, n)?.to_dtype(DType::F64)?.sum((0, 2, 3))?;
        out.extend(part.to_vec1::<f64>()?);
        start += n;
    }
    Ok(out)
}

/// Every rank's per-class sums gathered and added in class order: `[c]` totals, in f64.
fn total(mine: &[f64], channels: usize) -> Result<Vec<f64>> {
    let all = gather(mine)?;
    if !all.len().is_multiple_of(channels) {
        return Err(Error::Other(format!(
            "class-synchronised BatchNorm: {} gathered sums are not whole rows of {channels} channels \
             (do all ranks run the same network?)",
            all.len()
        )));
    }
    let mut sum = vec![0.0f64; channels];
    for class in all.chunks_exact(channels) {
        sum.iter_mut().zip(class).for_each(|(s, v)| *s += v);
    }
    Ok(sum)
}

/// What [`super::BatchNorm2d`] needs of a synchronised forward: the normalised input (with
/// the synchronised backward), the whole batch's mean and biased variance (`[c]`, no graph),
/// and how many values per channel the whole batch has.
pub(crate) struct Synced {
    pub normalised: Tensor,
    pub mean: Tensor,
    pub var: Tensor,
    pub count: usize,
}

/// Normalises `x` (`[n, c, h, w]`, this rank's classes in class order) with the statistics of
/// the whole batch across ranks (see the module docs).
pub(crate) fn normalise(x: &Tensor, eps: f64) -> Result<Synced> {
    let rows = rows()?;
    let (n, c, h, w) = x.dims4()?;
    if rows.iter().sum::<usize>() != n {
        return Err(Error::invalid(
            "class-synchronised BatchNorm input",
            format!("{:?}", x.dims()),
            format!(
                "must hold the {} images of its classes ({:?})",
                rows.iter().sum::<usize>(),
                rows
            ),
        ));
    }
    let counts = total(&rows.iter().map(|&r| (r * h * w) as f64).collect::<Vec<_>>(), 1)?;
    let count = counts[0] as usize;
    if count < 2 {
        return Err(Error::invalid(
            "BatchNorm2d batch",
            format!("{count} values per channel over all ranks"),
            "training needs more than one value per channel",
        ));
    }
    let x = x.contiguous()?;
    let mean: Vec<f64> = total(&class_sums(&x, &rows)?, c)?
        .iter()
        .map(|s| s / count as f64)
        .collect();
    let mean_t = Tensor::from_vec(mean.clone(), (1, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
    let centered = x.broadcast_sub(&mean_t)?;
    let var: Vec<f64> = total(&class_sums(&centered.sqr()?, &rows)?, c)?
        .iter()
        .map(|s| s / count as f64)
        .collect();
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let inv_std_t = Tensor::from_vec(inv_std, (1, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
    // The value is (x - mean) * inv_std with the statistics as constants; `SyncedGradient`
    // (an identity in the forward) adds the statistics' share of the gradient in the backward.
    let hooked = x.apply_op1_arc(std::sync::Arc::new(Box::new(SyncedGradient {
        rows: rows.to_vec(),
        mean: mean_t.clone(),
        inv_std: inv_std_t.clone(),
        count,
    })))?;
    let normalised = hooked.broadcast_sub(&mean_t)?.broadcast_mul(&inv_std_t)?;
    Ok(Synced {
        normalised,
        mean: Tensor::from_vec(mean, c, x.device())?.to_dtype(x.dtype())?,
        var: Tensor::from_vec(var, c, x.device())?.to_dtype(x.dtype())?,
        count,
    })
}

/// The identity, whose backward turns `g` (the gradient at its output, already times
/// `inv_std`) into the gradient of the synchronised normalisation: `g - mean(g) - x_hat *
/// mean(g * x_hat)`, the means over the whole batch across ranks.
struct SyncedGradient {
    rows: Vec<usize>,
    mean: Tensor,
    inv_std: Tensor,
    count: usize,
}

impl CustomOp1 for SyncedGradient {
    fn name(&self) -> &'static str {
        "cafe-class-synced-batch-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let copy = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => CpuStorage::F32(v[a..b].to_vec()),
            (CpuStorage::F64(v), Some((a, b))) => CpuStorage::F64(v[a..b].to_vec()),
            (_, None) => candle_core::bail!("class-synchronised BatchNorm: the input must be contiguous"),
            _ => candle_core::bail!("class-synchronised BatchNorm runs on f32 or f64"),
        };
        Ok((copy, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let inner = || -> Result<Tensor> {
            let c = x.dim(1)?;
            let x_hat = x.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)?;
            let g = g.contiguous()?;
            let mut mine = class_sums(&g, &self.rows)?;
            mine.extend(class_sums(&(&g * &x_hat)?, &self.rows)?);
            // One gather for both sums: each rank sends its classes' g sums, then its g * x_hat
            // sums; they are put back apart per rank below.
            let all = gather(&with_length(&mine))?;
            let (sum_g, sum_gx) = split_pairs(&all, c)?;
            let n = self.count as f64;
            let to = |v: Vec<f64>| -> Result<Tensor> {
                Ok(
                    Tensor::from_vec(v.iter().map(|s| s / n).collect::<Vec<_>>(), (1, c, 1, 1), x.device())?
                        .to_dtype(x.dtype())?,
                )
            };
            Ok(g.broadcast_sub(&to(sum_g)?)?
                .broadcast_sub(&x_hat.broadcast_mul(&to(sum_gx)?)?)?)
        };
        inner().map(Some).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// `mine` prefixed by its length, so that the gathered concatenation can be cut per rank.
fn with_length(mine: &[f64]) -> Vec<f64> {
    let mut v = Vec::with_capacity(mine.len() + 1);
    v.push(mine.len() as f64);
    v.extend_from_slice(mine);
    v
}

/// From every rank's `[len, g sums (k x c), g * x_hat sums (k x c)]`, the two totals over all
/// classes in class order.
fn split_pairs(all: &[f64], c: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut sum_g, mut sum_gx) = (vec![0.0f64; c], vec![0.0f64; c]);
    let mut rest = all;
    while let Some((&len, tail)) = rest.split_first() {
        let len = len as usize;
        if len > tail.len() || !len.is_multiple_of(2 * c) {
            return Err(Error::Other(
                "class-synchronised BatchNorm: the gathered gradient sums do not fit the layer".into(),
            ));
        }
        let (mine, next) = tail.split_at(len);
        let (g, gx) = mine.split_at(len / 2);
        for class in g.chunks_exact(c) {
            sum_g.iter_mut().zip(class).for_each(|(s, v)| *s += v);
        }
        for class in gx.chunks_exact(c) {
            sum_gx.iter_mut().zip(class).for_each(|(s, v)| *s += v);
        }
        rest = next;
    }
    Ok((sum_g, sum_gx))
}
