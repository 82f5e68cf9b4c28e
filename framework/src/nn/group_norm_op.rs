//! CPU ops for group normalisation `N(x) = (x - mean) / sqrt(var + eps)` per group (biased
//! variance): parallel over groups, two reads and one write each way, with a backward that is
//! itself differentiable, so DC's second-order gradients pass through instance norm.
//!
//! Per group of `m` values, with `xh = N(x)` and `r = 1 / sqrt(var + eps)`:
//! - backward `B(x, g) = r (g - mean(g) - xh mean(g xh))`. Its Jacobian in `g` is symmetric,
//!   so the backward of `B` w.r.t. `g` for upstream `u` is `B(x, u)`;
//! - w.r.t. `x` it is `D(x, g, u) = -r (xh <B(x, g), u> / m + mean(xh u) B(x, g) + mean(xh g)
//!   B(x, u))` (derived by hand; the second-order tests hold it against finite differences).
//!
//! `D` has no backward: third-order gradients through a norm are an error, not a silent zero.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::backward_graph::settle;
use super::cpu_op::{run1, run2, run3, sum2, Elem, Kernel1, Kernel2, Kernel3};
use crate::Result;

/// Normalises `[n, c, h, w]` over groups of `c / groups` channels; CPU, f32/f64. The caller has
/// checked that `groups` divides `c`.
pub(crate) fn normalize(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let geo = Groups {
        rows: n * groups,
        len: (c / groups) * h * w,
        eps,
    };
    Ok(x.contiguous()?.apply_op1(Normalize(geo))?)
}

/// `B(x, g)`: the backward of [`normalize`] at `x` for upstream `g`; differentiable in both.
pub(crate) fn normalize_backward(x: &Tensor, g: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let geo = Groups {
        rows: n * groups,
        len: (c / groups) * h * w,
        eps,
    };
    Ok(x.contiguous()?.apply_op2(&g.contiguous()?, Backward(geo))?)
}

/// The data seen as `rows` groups of `len` consecutive values (NCHW keeps a group contiguous).
#[derive(Debug, Clone, Copy)]
struct Groups {
    rows: usize,
    len: usize,
    eps: f64,
}

/// Mean and `1 / sqrt(var + eps)` of one group (two passes: exact for large offsets).
#[inline]
fn stats<T: Elem>(x: &[T], eps: f64) -> (f64, f64) {
    let m = x.len() as f64;
    let mean = sum2(x, x, |v, _| v) / m;
    let var = sum2(x, x, |v, _| (v - mean) * (v - mean)) / m;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Mean of `a` and mean of `a * xh` over one group.
#[inline]
fn moments<T: Elem>(a: &[T], x: &[T], mean: f64, r: f64) -> (f64, f64) {
    let m = a.len() as f64;
    (sum2(a, a, |a, _| a) / m, sum2(a, x, |a, x| a * (x - mean) * r) / m)
}

impl Groups {
    fn count(&self) -> usize {
        self.rows * self.len
    }

    fn check(&self, op: &str, lens: &[usize]) -> candle_core::Result<()> {
        if self.len == 0 || lens.iter().any(|&l| l != self.count()) {
            candle_core::bail!(
                "{op}: operands of {lens:?} values, expected {} groups of {}",
                self.rows,
                self.len
            )
        }
        Ok(())
    }

    /// Runs `f(group index, output group)` over all groups in parallel; small groups are
    /// batched into one task so that instance norm on 4x4 maps does not drown in scheduling.
    fn map<T: Elem>(&self, f: impl Fn(usize, &mut [T]) + Sync + Send) -> Vec<T> {
        let mut out = vec![T::ZERO; self.count()];
        let min_rows = (4096 / self.len).max(1);
        out.par_chunks_mut(self.len)
            .enumerate()
            .with_min_len(min_rows)
            .for_each(|(i, o)| f(i, o));
        out
    }
}

/// `N(x)`.
struct Normalize(Groups);

impl Kernel1 for Normalize {
    const NAME: &'static str = "group normalize";
    fn run<T: Elem>(&self, x: &[T]) -> candle_core::Result<Vec<T>> {
        let g = self.0;
        g.check(Self::NAME, &[x.len()])?;
        Ok(g.map(|i, out| {
            let x = &x[i * g.len..][..g.len];
            let (mean, r) = stats(x, g.eps);
            for (o, &v) in out.iter_mut().zip(x) {
                *o = T::from_f64((v.into() - mean) * r);
            }
        }))
    }
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "cafe-group-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run1(self, s, l)?, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(settle(Some(x.apply_op2(&g.contiguous()?, Backward(self.0))?)))
    }
}

/// `B(x, g)`.
struct Backward(Groups);

impl Kernel2 for Backward {
    const NAME: &'static str = "group normalize gradient";
    fn run<T: Elem>(&self, x: &[T], g: &[T]) -> candle_core::Result<Vec<T>> {
        let geo = self.0;
        geo.check(Self::NAME, &[x.len(), g.len()])?;
        Ok(geo.map(|i, out| {
            let (x, g) = (&x[i * geo.len..][..geo.len], &g[i * geo.len..][..geo.len]);
            let (mean, r) = stats(x, geo.eps);
            let (g_mean, gx_mean) = moments(g, x, mean, r);
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                let xh = (x.into() - mean) * r;
                *o = T::from_f64(r * (g.into() - g_mean - xh * gx_mean));
            }
        }))
    }
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "cafe-group-normalize-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run2(self, s1, l1, s2, l2)?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _res: &Tensor,
        u: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let u = u.contiguous()?;
        let d_x = x
            .track_op()
            .then(|| x.apply_op3(g, &u, SecondOrder(self.0)))
            .transpose()?;
        let d_g = g.track_op().then(|| x.apply_op2(&u, Backward(self.0))).transpose()?;
        Ok((settle(d_x), settle(d_g)))
    }
}

/// `D(x, g, u)`: the derivative of `<B(x, g), u>` w.r.t. `x`.
struct SecondOrder(Groups);

impl Kernel3 for SecondOrder {
    const NAME: &'static str = "group normalize second derivative";
    fn run<T: Elem>(&self, x: &[T], g: &[T], u: &[T]) -> candle_core::Result<Vec<T>> {
        let geo = self.0;
        geo.check(Self::NAME, &[x.len(), g.len(), u.len()])?;
        Ok(geo.map(|i, out| {
            let range = i * geo.len..(i + 1) * geo.len;
            let (x, g, u) = (&x[range.clone()], &g[range.clone()], &u[range]);
            let m = geo.len as f64;
            let (mean, r) = stats(x, geo.eps);
            let (g_mean, gx_mean) = moments(g, x, mean, r);
            let (u_mean, ux_mean) = moments(u, x, mean, r);
            let xh = |x: T| (x.into() - mean) * r;
            let b_g = |x: T, g: T| r * (g.into() - g_mean - xh(x) * gx_mean);
            let b_u = |x: T, u: T| r * (u.into() - u_mean - xh(x) * ux_mean);
            let f: f64 = x.iter().zip(g).zip(u).map(|((&x, &g), &u)| b_g(x, g) * u.into()).sum();
            for (((o, &x), &g), &u) in out.iter_mut().zip(x).zip(g).zip(u) {
                *o = T::from_f64(-r * (xh(x) * f / m + ux_mean * b_g(x, g) + gx_mean * b_u(x, u)));
            }
        }))
    }
}

impl CustomOp3 for SecondOrder {
    fn name(&self) -> &'static str {
        "cafe-group-normalize-second-order"
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
        Ok((run3(self, s1, l1, s2, l2, s3, l3)?, l1.shape().clone()))
    }
}
