//! CPU ops for per-channel affine maps of `[n, c, h, w]` tensors (conv bias, norm scale and
//! shift): one parallel pass instead of candle's broadcast ops, whose backward reduces over
//! three non-contiguous dimensions on one thread.
//!
//! The family is closed under differentiation (all maps are bilinear or linear):
//! - `A(x, s, t) = x * s[c] + t[c]`, backward `(S(g, s), P(g, x), Σ(g))`;
//! - `S(x, s) = x * s[c]`, backward `(S(g, s), P(g, x))`;
//! - `P(a, b)[c] = sum over n, h, w of a * b`, backward `(S(b, u), S(a, u))`;
//! - `Σ(a)[c] = sum over n, h, w of a`, backward: `u` broadcast (candle's view).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::backward_graph::settle;
use super::cpu_op::{run1, run2, run3, sum2, Elem, Kernel1, Kernel2, Kernel3};
use crate::{Error, Result};

/// `[n, c, h * w]`: the view every op of the family takes of its big operand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planes {
    n: usize,
    c: usize,
    hw: usize,
}

impl Planes {
    fn of(x: &Tensor, per_channel: &[&Tensor]) -> Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        for t in per_channel {
            if t.dims() != [c] {
                return Err(Error::invalid(
                    "per-channel operand",
                    format!("{:?}", t.dims()),
                    format!("must be [{c}] for {:?}", x.dims()),
                ));
            }
        }
        Ok(Self { n, c, hw: h * w })
    }

    fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    fn check(&self, op: &str, big: &[usize], small: &[usize]) -> candle_core::Result<()> {
        if big.iter().any(|&l| l != self.len()) || small.iter().any(|&l| l != self.c) {
            candle_core::bail!(
                "{op}: operands of {big:?} and {small:?} values do not fit [{}, {}, {}]",
                self.n,
                self.c,
                self.hw
            )
        }
        Ok(())
    }

    /// `f(channel, input plane, output plane)` over every plane, in parallel.
    fn map<T: Elem>(&self, x: &[T], f: impl Fn(usize, &[T], &mut [T]) + Sync + Send) -> Vec<T> {
        let mut out = vec![T::ZERO; self.len()];
        // Planes of a few thousand values or more are one task each; smaller ones are batched.
        if let Some(per_task) = 4096_usize.checked_div(self.hw) {
            let c = self.c;
            out.par_chunks_mut(self.hw)
                .zip(x.par_chunks(self.hw))
                .enumerate()
                .with_min_len(per_task.max(1))
                .for_each(|(i, (o, x))| f(i % c, x, o));
        }
        out
    }

    /// `[c]`: `f(plane of a, plane of b)` summed over the planes of each channel, in parallel
    /// over channels (each channel in a fixed order: deterministic).
    fn reduce<T: Elem>(&self, a: &[T], b: &[T], f: impl Fn(&[T], &[T]) -> f64 + Sync + Send) -> Vec<T> {
        (0..self.c)
            .into_par_iter()
            .map(|c| {
                let s: f64 = (0..self.n)
                    .map(|n| {
                        let at = (n * self.c + c) * self.hw;
                        f(&a[at..at + self.hw], &b[at..at + self.hw])
                    })
                    .sum();
                T::from_f64(s)
            })
            .collect()
    }
}

/// `x * s[c] + t[c]` for `x` `[n, c, h, w]` (either of `s`, `t` may be absent); CPU, f32/f64.
pub(crate) fn channel_affine(x: &Tensor, s: Option<&Tensor>, t: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    match (s, t) {
        (Some(s), Some(t)) => {
            let p = Planes::of(&x, &[s, t])?;
            Ok(x.apply_op3(&s.contiguous()?, &t.contiguous()?, Affine(p))?)
        }
        (Some(s), None) => Ok(x.apply_op2(&s.contiguous()?, Scale(Planes::of(&x, &[s])?))?),
        (None, Some(t)) => {
            let ones = Tensor::ones(t.dims(), t.dtype(), t.device())?;
            Ok(x.apply_op3(&ones, &t.contiguous()?, Affine(Planes::of(&x, &[t])?))?)
        }
        (None, None) => Ok(x),
    }
}

/// `Σ(a)`: per-channel sums of a `[n, c, h, w]` tensor; CPU, f32/f64.
pub(crate) fn channel_sum(a: &Tensor) -> Result<Tensor> {
    Ok(a.contiguous()?.apply_op1(Sum(Planes::of(a, &[])?))?)
}

/// `S(x, s)`: `x * s[c]`; CPU, f32/f64.
pub(crate) fn channel_scale(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    Ok(scale(x, s, Planes::of(x, &[s])?)?)
}

/// `P(a, b)`: per-channel sums of `a * b`; CPU, f32/f64.
pub(crate) fn channel_dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(dot(a, b, Planes::of(a, &[])?)?)
}

fn scale(x: &Tensor, s: &Tensor, p: Planes) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&s.contiguous()?, Scale(p))
}

fn dot(a: &Tensor, b: &Tensor, p: Planes) -> candle_core::Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, Dot(p))
}

fn sum(a: &Tensor, p: Planes) -> candle_core::Result<Tensor> {
    a.contiguous()?.apply_op1(Sum(p))
}

/// Only arguments that lead to a variable need a gradient.
fn when(t: &Tensor, f: impl FnOnce() -> candle_core::Result<Tensor>) -> candle_core::Result<Option<Tensor>> {
    t.track_op().then(f).transpose()
}

/// `A(x, s, t)`.
struct Affine(Planes);

impl Kernel3 for Affine {
    const NAME: &'static str = "channel affine";
    fn run<T: Elem>(&self, x: &[T], s: &[T], t: &[T]) -> candle_core::Result<Vec<T>> {
        self.0.check(Self::NAME, &[x.len()], &[s.len(), t.len()])?;
        Ok(self.0.map(x, |c, x, o| {
            let (s, t): (f64, f64) = (s[c].into(), t[c].into());
            o.iter_mut()
                .zip(x)
                .for_each(|(o, &x)| *o = T::from_f64(x.into() * s + t));
        }))
    }
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "cafe-channel-affine"
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

    fn bwd(
        &self,
        x: &Tensor,
        s: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let p = self.0;
        Ok((
            settle(when(x, || scale(g, s, p))?),
            settle(when(s, || dot(g, x, p))?),
            settle(when(t, || sum(g, p))?),
        ))
    }
}

/// `S(x, s)`.
struct Scale(Planes);

impl Kernel2 for Scale {
    const NAME: &'static str = "channel scale";
    fn run<T: Elem>(&self, x: &[T], s: &[T]) -> candle_core::Result<Vec<T>> {
        self.0.check(Self::NAME, &[x.len()], &[s.len()])?;
        Ok(self.0.map(x, |c, x, o| {
            let s: f64 = s[c].into();
            o.iter_mut().zip(x).for_each(|(o, &x)| *o = T::from_f64(x.into() * s));
        }))
    }
}

impl CustomOp2 for Scale {
    fn name(&self) -> &'static str {
        "cafe-channel-scale"
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
        s: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let p = self.0;
        Ok((settle(when(x, || scale(g, s, p))?), settle(when(s, || dot(g, x, p))?)))
    }
}

/// `P(a, b)`.
struct Dot(Planes);

impl Kernel2 for Dot {
    const NAME: &'static str = "channel dot";
    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> candle_core::Result<Vec<T>> {
        self.0.check(Self::NAME, &[a.len(), b.len()], &[])?;
        Ok(self
            .0
            .reduce(a, b, |a, b| a.iter().zip(b).map(|(&a, &b)| a.into() * b.into()).sum()))
    }
}

impl CustomOp2 for Dot {
    fn name(&self) -> &'static str {
        "cafe-channel-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run2(self, s1, l1, s2, l2)?, Shape::from(self.0.c)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        u: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let p = self.0;
        Ok((settle(when(a, || scale(b, u, p))?), settle(when(b, || scale(a, u, p))?)))
    }
}

/// `Σ(a)`.
struct Sum(Planes);

impl Kernel1 for Sum {
    const NAME: &'static str = "channel sum";
    fn run<T: Elem>(&self, a: &[T]) -> candle_core::Result<Vec<T>> {
        self.0.check(Self::NAME, &[a.len()], &[])?;
        Ok(self.0.reduce(a, a, |a, _| sum2(a, a, |a, _| a)))
    }
}

impl CustomOp1 for Sum {
    fn name(&self) -> &'static str {
        "cafe-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run1(self, s, l)?, Shape::from(self.0.c)))
    }

    fn bwd(&self, a: &Tensor, _res: &Tensor, u: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(settle(Some(u.reshape((1, self.0.c, 1, 1))?.broadcast_as(a.shape())?)))
    }
}
