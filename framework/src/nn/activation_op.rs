//! CPU ops for ReLU and leaky ReLU: one parallel pass each way instead of candle's mask,
//! convert and multiply, and a backward that is itself a differentiable op (second order).
//!
//! `R(x) = x > 0 ? x : slope x`; its backward `G(x, g) = g * (x > 0 ? 1 : slope)` is linear in
//! `g` and piecewise constant in `x`, so the backward of `G` is `G(x, u)` for `g` and zero
//! (almost everywhere) for `x`. The gradient at exactly 0 is `slope`, as in PyTorch.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_op::{run1, run2, Elem, Kernel1, Kernel2};
use crate::Result;

/// Elements per rayon task: large enough to amortise scheduling, small enough to balance.
const MIN_LEN: usize = 1 << 14;

/// `x > 0 ? x : slope x` on a contiguous f32/f64 CPU tensor.
pub(crate) fn rectify(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Rectify { slope })?)
}

struct Rectify {
    slope: f64,
}

impl Kernel1 for Rectify {
    const NAME: &'static str = "rectify";
    fn run<T: Elem>(&self, x: &[T]) -> candle_core::Result<Vec<T>> {
        let slope = self.slope;
        // NaN passes through (as in PyTorch) so that divergence stays visible downstream.
        Ok(x.par_iter()
            .with_min_len(MIN_LEN)
            .map(|&v| {
                let f: f64 = v.into();
                if f > 0.0 || f.is_nan() {
                    v
                } else if slope == 0.0 {
                    T::ZERO
                } else {
                    T::from_f64(f * slope)
                }
            })
            .collect())
    }
}

impl CustomOp1 for Rectify {
    fn name(&self) -> &'static str {
        "cafe-rectify"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run1(self, s, l)?, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2(&g.contiguous()?, RectifyGrad { slope: self.slope })?))
    }
}

/// `g * (x > 0 ? 1 : slope)`.
struct RectifyGrad {
    slope: f64,
}

impl Kernel2 for RectifyGrad {
    const NAME: &'static str = "rectify gradient";
    fn run<T: Elem>(&self, x: &[T], g: &[T]) -> candle_core::Result<Vec<T>> {
        if x.len() != g.len() {
            candle_core::bail!("rectify gradient: {} values for {} inputs", g.len(), x.len())
        }
        let slope = self.slope;
        Ok(x.par_iter()
            .zip(g.par_iter())
            .with_min_len(MIN_LEN)
            .map(|(&x, &g)| {
                let x: f64 = x.into();
                if x > 0.0 {
                    g
                } else {
                    T::from_f64(slope * g.into())
                }
            })
            .collect())
    }
}

impl CustomOp2 for RectifyGrad {
    fn name(&self) -> &'static str {
        "cafe-rectify-grad"
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
        let d_g = g
            .track_op()
            .then(|| x.apply_op2(&u.contiguous()?, RectifyGrad { slope: self.slope }))
            .transpose()?;
        Ok((None, d_g))
    }
}
