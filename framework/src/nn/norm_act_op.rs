//! One CPU op for a ConvNet block's tail: group (or instance) normalisation, its per-channel
//! affine map, a (leaky) ReLU and, optionally, 2x2 average pooling:
//! `y = pool(act(N(x) * w[c] + b[c]))`.
//!
//! Why fused: as separate ops every stage keeps its own output alive for the backward pass
//! (normalised, shifted, activated: three full-size tensors per block, four with the pooling
//! input), and candle cannot free them before the whole backward ends. Fused, the block keeps
//! only its input `x` and its output; the backward recomputes the normalisation and the
//! activation mask from `x` (one cheap pass). Measured on the default ConvNet, 256 images:
//! 213 MiB alive after the forward of `logits` (pooling fused) instead of 717 MiB.
//!
//! The backward has two forms:
//! - first order (candle does not keep the backward graph, or inside
//!   [`super::backward_graph::first_order`]): one fused kernel per group writes `dx` and the
//!   per-channel `dw`, `db`, with no intermediate tensors;
//! - second order (DC): the same gradients composed from the framework's differentiable ops
//!   (`U` avg unpool, `G` rectify gradient, `S` channel scale, `B` normalise backward, `P`
//!   channel dot, `Σ` channel sum), so that they differentiate again:
//!   `gm = G(pre, U(g))`, `dx = B(x, S(gm, w))`, `dw = P(gm, N(x))`, `db = Σ(gm)`, where `pre`
//!   is the affine output recomputed without a graph (the mask is piecewise constant).

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::activation_op::rectify_grad;
use super::backward_graph::backward_keeps_graph;
use super::channel_op::{channel_dot, channel_scale, channel_sum};
use super::cpu_op::{run3, sum2, to_candle, typed, Elem, Kernel3};
use super::group_norm_op::{normalize, normalize_backward};
use super::pool_op::avg_unpool;
use crate::{Error, Result};

/// The name of the backward kernel in its errors.
const BACKWARD: &str = "fused norm-activation backward";

/// The sizes and settings of one fused block tail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    groups: usize,
    eps: f64,
    /// Negative slope of the activation (0 for ReLU; 1 for none).
    slope: f64,
    /// 2x2 average pooling with stride 2 (floor of odd sizes) after the activation.
    pool: bool,
}

impl Block {
    fn channels_per_group(&self) -> usize {
        self.c / self.groups
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    fn group_len(&self) -> usize {
        self.channels_per_group() * self.plane()
    }

    fn out_plane(&self) -> usize {
        if self.pool {
            (self.h / 2) * (self.w / 2)
        } else {
            self.plane()
        }
    }

    fn output_shape(&self) -> Shape {
        if self.pool {
            Shape::from((self.n, self.c, self.h / 2, self.w / 2))
        } else {
            Shape::from((self.n, self.c, self.h, self.w))
        }
    }

    fn check(&self, op: &str, x: usize, per_channel: &[usize], g: Option<usize>) -> candle_core::Result<()> {
        let out = self.n * self.c * self.out_plane();
        if x != self.n * self.c * self.plane()
            || per_channel.iter().any(|&l| l != self.c)
            || g.is_some_and(|g| g != out)
        {
            candle_core::bail!(
                "{op}: operands do not fit [{}, {}, {}, {}]",
                self.n,
                self.c,
                self.h,
                self.w
            )
        }
        Ok(())
    }

    /// `v` if positive, else `slope * v`, selected by multiplication so that it vectorises;
    /// `+ 0` turns `-0` into `0`, as the separate activation op does.
    #[inline]
    fn act(&self, v: f64) -> f64 {
        v * (((v > 0.0) as u8 as f64) * (1.0 - self.slope) + self.slope) + 0.0
    }

    /// The activation's derivative at pre-activation `v` (the slope at exactly 0, as PyTorch).
    #[inline]
    fn act_grad(&self, v: f64) -> f64 {
        ((v > 0.0) as u8 as f64) * (1.0 - self.slope) + self.slope
    }

    /// `(s, t)` with `N(x) * w + b = x * s + t` for a group of mean `mean` and `1 / std` `r`.
    /// Forward and backward both compute the pre-activation as `x * s + t`, so that the
    /// backward's activation mask is bit for bit the forward's.
    #[inline]
    fn affine(&self, mean: f64, r: f64, w: f64, b: f64) -> (f64, f64) {
        let s = r * w;
        (s, b - mean * s)
    }

    /// Writes into `out` (one input plane) the upstream gradient of each pixel, from `g` (one
    /// output plane): itself without pooling; with pooling a quarter of its window's gradient,
    /// zero on a cropped odd last row or column.
    fn upstream<T: Elem>(&self, g: &[T], out: &mut [f64]) {
        if !self.pool {
            out.iter_mut().zip(g).for_each(|(o, &v)| *o = v.into());
            return;
        }
        let (h2, w2) = (self.h / 2, self.w / 2);
        for (y, row) in out.chunks_exact_mut(self.w).enumerate() {
            if y / 2 >= h2 {
                row.fill(0.0);
                continue;
            }
            for (pair, &v) in row.chunks_exact_mut(2).zip(&g[(y / 2) * w2..][..w2]) {
                let q = 0.25 * v.into();
                pair[0] = q;
                pair[1] = q;
            }
            if self.w % 2 == 1 {
                row[self.w - 1] = 0.0;
            }
        }
    }
}

/// `pool(act(N(x) * w + b))` with the given settings; CPU, f32/f64, `x` `[n, c, h, w]`.
/// The caller has checked that `groups` divides `c` and, for pooling, that `h, w >= 2`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
    slope: f64,
    pool: bool,
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) || weight.dims() != [c] || bias.dims() != [c] {
        return Err(Error::invalid(
            "fused norm-activation operands",
            format!(
                "x {:?}, weight {:?}, bias {:?}, {groups} groups",
                x.dims(),
                weight.dims(),
                bias.dims()
            ),
            format!("need [{c}] weight and bias and groups dividing {c}"),
        ));
    }
    let block = Block {
        n,
        c,
        h,
        w,
        groups,
        eps,
        slope,
        pool,
    };
    Ok(x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, NormAct::new(block))?)
}

/// The forward op. It keeps each group's `(mean, 1 / std)` from its forward pass, so that the
/// fused backward reads `x` once less (the composed second-order form recomputes them).
struct NormAct {
    block: Block,
    stats: OnceLock<Vec<(f64, f64)>>,
}

impl NormAct {
    fn new(block: Block) -> Self {
        Self {
            block,
            stats: OnceLock::new(),
        }
    }
}

/// Mean and `1 / sqrt(var + eps)` of one group in one pass (sums of `x` and `x^2` in f64,
/// exact enough unless the mean exceeds the spread by ~10^6).
fn group_stats<T: Elem>(x: &[T], eps: f64) -> (f64, f64) {
    let m = x.len() as f64;
    let mean = sum2(x, x, |v, _| v) / m;
    let mean_sq = sum2(x, x, |v, _| v * v) / m;
    (mean, 1.0 / ((mean_sq - mean * mean).max(0.0) + eps).sqrt())
}

impl Kernel3 for NormAct {
    const NAME: &'static str = "fused norm-activation";
    fn run<T: Elem>(&self, x: &[T], w: &[T], b: &[T]) -> candle_core::Result<Vec<T>> {
        let k = self.block;
        k.check(Self::NAME, x.len(), &[w.len(), b.len()], None)?;
        let (len, plane, out_plane, cpg) = (k.group_len(), k.plane(), k.out_plane(), k.channels_per_group());
        let mut out = vec![T::ZERO; k.n * k.c * out_plane];
        let mut stats = vec![(0.0, 0.0); k.n * k.groups];
        if len == 0 || out.is_empty() {
            return Ok(out);
        }
        out.par_chunks_mut(cpg * out_plane)
            .zip(stats.par_iter_mut())
            .enumerate()
            .with_min_len((4096 / len).max(1))
            .for_each(|(i, (out, stat))| {
                let xg = &x[i * len..][..len];
                let (mean, r) = group_stats(xg, k.eps);
                *stat = (mean, r);
                for ci in 0..cpg {
                    let ch = (i % k.groups) * cpg + ci;
                    let (s, t) = k.affine(mean, r, w[ch].into(), b[ch].into());
                    let src = &xg[ci * plane..][..plane];
                    let dst = &mut out[ci * out_plane..][..out_plane];
                    if k.pool {
                        let w2 = k.w / 2;
                        for (oi, row) in dst.chunks_exact_mut(w2.max(1)).enumerate() {
                            let (top, bottom) = (&src[2 * oi * k.w..][..k.w], &src[(2 * oi + 1) * k.w..][..k.w]);
                            for (oj, o) in row.iter_mut().enumerate() {
                                let v = k.act(top[2 * oj].into() * s + t)
                                    + k.act(top[2 * oj + 1].into() * s + t)
                                    + k.act(bottom[2 * oj].into() * s + t)
                                    + k.act(bottom[2 * oj + 1].into() * s + t);
                                *o = T::from_f64(0.25 * v);
                            }
                        }
                    } else {
                        for (o, &v) in dst.iter_mut().zip(src) {
                            *o = T::from_f64(k.act(v.into() * s + t));
                        }
                    }
                }
            });
        // Set once: each application of the op is a new `NormAct`.
        let _ = self.stats.set(stats);
        Ok(out)
    }
}

impl CustomOp3 for NormAct {
    fn name(&self) -> &'static str {
        "cafe-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run3(self, s1, l1, s2, l2, s3, l3)?, self.block.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = if backward_keeps_graph() {
            composed_backward(self.block, x, w, b, g).map_err(to_candle)?
        } else {
            fused_backward(self.block, self.stats.get().map(Vec::as_slice), x, w, b, g)?
        };
        let keep = |t: &Tensor, d: Tensor| t.track_op().then_some(d);
        Ok((keep(x, dx), keep(w, dw), keep(b, db)))
    }
}

/// The second-order form of the backward: differentiable ops only.
fn composed_backward(k: Block, x: &Tensor, w: &Tensor, b: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let gy = if k.pool {
        avg_unpool(g, &[k.n, k.c, k.h, k.w])?
    } else {
        g.clone()
    };
    // The pre-activation, for the mask only: no graph (its derivative is zero almost everywhere).
    let pre = norm_act(&x.detach(), &w.detach(), &b.detach(), k.groups, k.eps, 1.0, false)?;
    let gm = rectify_grad(&pre, &gy, k.slope)?;
    let dx = normalize_backward(x, &channel_scale(&gm, w)?, k.groups, k.eps)?;
    let dw = channel_dot(&gm, &normalize(x, k.groups, k.eps)?)?;
    let db = channel_sum(&gm)?;
    Ok((dx, dw, db))
}

/// The first-order form of the backward: one kernel, no intermediate tensors.
fn fused_backward(
    k: Block,
    stats: Option<&[(f64, f64)]>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (x, w, b, g) = (x.contiguous()?, w.contiguous()?, b.contiguous()?, g.contiguous()?);
    match x.dtype() {
        DType::F32 => fused_backward_typed::<f32>(k, stats, &x, &w, &b, &g),
        DType::F64 => fused_backward_typed::<f64>(k, stats, &x, &w, &b, &g),
        dt => candle_core::bail!("{BACKWARD}: {dt:?} is not supported"),
    }
}

/// The contiguous CPU data of `t` as `T`, while `guard` (its storage) is held.
fn data<'a, T: Elem>(t: &'a Tensor, guard: &'a Storage) -> candle_core::Result<&'a [T]> {
    let Storage::Cpu(cpu) = guard else {
        candle_core::bail!("{BACKWARD} runs on the CPU only")
    };
    typed(BACKWARD, cpu, t.layout())
}

fn fused_backward_typed<T: Elem + candle_core::WithDType>(
    k: Block,
    stats: Option<&[(f64, f64)]>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (xs, ws, bs, gs) = (
        x.storage_and_layout().0,
        w.storage_and_layout().0,
        b.storage_and_layout().0,
        g.storage_and_layout().0,
    );
    let (xd, wd, bd, gd) = (
        data::<T>(x, &xs)?,
        data::<T>(w, &ws)?,
        data::<T>(b, &bs)?,
        data::<T>(g, &gs)?,
    );
    let (dx, dw, db) = group_grads(k, stats, xd, wd, bd, gd)?;
    let dev = x.device();
    Ok((
        Tensor::from_vec(dx, x.shape(), dev)?,
        Tensor::from_vec(dw, k.c, dev)?,
        Tensor::from_vec(db, k.c, dev)?,
    ))
}

/// `(dx, dw, db)` of the block for upstream gradient `g` (of the block's output), with the
/// forward pass's per-group `stats` when it kept them.
///
/// Per group, with `xh = N(x)`, `pre = xh w + b`, `gm = act'(pre) * upstream(g)`, `a = gm w`:
/// `dx = r (a - mean(a) - xh mean(a xh))`, `dw[c] = sum gm xh`, `db[c] = sum gm`. Pass one keeps
/// `gm` in a scratch buffer and sums per channel; `mean(a)` and `mean(a xh)` follow from those
/// sums (`w` is constant over a channel); pass two writes `dx`. The per-image channel sums are
/// added over images in a fixed order, so the result does not depend on the thread count.
fn group_grads<T: Elem>(
    k: Block,
    stats: Option<&[(f64, f64)]>,
    x: &[T],
    w: &[T],
    b: &[T],
    g: &[T],
) -> candle_core::Result<(Vec<T>, Vec<T>, Vec<T>)> {
    k.check(BACKWARD, x.len(), &[w.len(), b.len()], Some(g.len()))?;
    let stats = stats.filter(|s| s.len() == k.n * k.groups);
    let (len, plane, out_plane, cpg) = (k.group_len(), k.plane(), k.out_plane(), k.channels_per_group());
    let mut dx = vec![T::ZERO; x.len()];
    // Per (image, channel): sum of gm * xh and of gm.
    let mut dw_parts = vec![0.0_f64; k.n * k.c];
    let mut db_parts = vec![0.0_f64; k.n * k.c];
    if len > 0 {
        dx.par_chunks_mut(len)
            .zip(dw_parts.par_chunks_mut(cpg).zip(db_parts.par_chunks_mut(cpg)))
            .enumerate()
            .with_min_len((4096 / len).max(1))
            .for_each_init(Vec::new, |gm: &mut Vec<f64>, (i, (dx, (dw, db)))| {
                let xg = &x[i * len..][..len];
                let gg = &g[i * cpg * out_plane..][..cpg * out_plane];
                let (mean, r) = stats.map_or_else(|| group_stats(xg, k.eps), |s| s[i]);
                gm.clear();
                gm.resize(len, 0.0);
                let (mut sum_a, mut sum_a_xh) = (0.0, 0.0);
                for ci in 0..cpg {
                    let ch = (i % k.groups) * cpg + ci;
                    let wc = w[ch].into();
                    let (s, t) = k.affine(mean, r, wc, b[ch].into());
                    let src = &xg[ci * plane..][..plane];
                    let gmp = &mut gm[ci * plane..][..plane];
                    k.upstream(&gg[ci * out_plane..][..out_plane], gmp);
                    for (v, &xv) in gmp.iter_mut().zip(src) {
                        *v *= k.act_grad(xv.into() * s + t);
                    }
                    let s_gm = sum2(gmp, gmp, |v, _| v);
                    // sum gm xh = r (sum gm x - mean sum gm)
                    let s_gm_xh = r * (sum2(gmp, src, |v, x| v * x) - mean * s_gm);
                    dw[ci] = s_gm_xh;
                    db[ci] = s_gm;
                    sum_a += wc * s_gm;
                    sum_a_xh += wc * s_gm_xh;
                }
                let (mean_a, mean_a_xh) = (sum_a / len as f64, sum_a_xh / len as f64);
                for ci in 0..cpg {
                    let wc: f64 = w[(i % k.groups) * cpg + ci].into();
                    // dx = r (gm w - mean_a - (x - mean) r mean_a_xh) = gm p + x q + o
                    let (p, q) = (r * wc, -r * r * mean_a_xh);
                    let o = -r * mean_a - q * mean;
                    let range = ci * plane..(ci + 1) * plane;
                    for ((d, &xv), &gv) in dx[range.clone()].iter_mut().zip(&xg[range.clone()]).zip(&gm[range]) {
                        *d = T::from_f64(gv * p + xv.into() * q + o);
                    }
                }
            });
    }
    let per_channel = |parts: &[f64]| -> Vec<T> {
        (0..k.c)
            .map(|ch| T::from_f64((0..k.n).map(|img| parts[img * k.c + ch]).sum()))
            .collect()
    };
    Ok((dx, per_channel(&dw_parts), per_channel(&db_parts)))
}
