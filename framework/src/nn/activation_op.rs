//! CPU ops for ReLU and leaky ReLU: one parallel pass each way instead of candle's mask,
//! convert and multiply, and a backward that is itself a differentiable op (second order).
//!
//! `R(x) = x > 0 ? x : slope x`; its backward `G(x, g) = g * (x > 0 ? 1 : slope)` is linear in
//! `g` and piecewise constant in `x`, so the backward of `G` is `G(x, u)` for `g` and zero
//! (almost everywhere) for `x`. The gradient at exactly 0 is `slope`, as in PyTorch.

use super::backward_graph::settle;
use super::cpu_op::{run1, run2, zip_map, Elem, Kernel1, Kernel2};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// `x > 0 ? x : slope x` on a contiguous f32/f64 CPU tensor.
pub(crate) fn rectify(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(Rectify { slope })?)
}

/// `g * (x > 0 ? 1 : slope)`: the backward of [`rectify`] at `x`, differentiable in `g`.
pub(crate) fn rectify_grad(x: &Tensor, g: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op2(&g.contiguous()?, RectifyGrad { slope })?)
}

struct Rectify {
    slope: f64,
}

impl Kernel1 for Rectify {
    const NAME: &'static str = "rectify";
    fn run<T: Elem>(&self, x: &[T]) -> candle_core::Result<Vec<T>> {
        let (slope, rest) = (T::from_f64(self.slope), T::from_f64(1.0 - self.slope));
        // `x * (1 or slope)` selected by multiplication: a branch on the sign of random data
        // mispredicts half the time (measured 3x slower). NaN fails `x > 0` and stays NaN, as
        // in PyTorch; `+ 0` turns the -0 of a negative times 0 into 0. (-inf gives NaN, not 0.)
        Ok(zip_map(x, x, |v, _| {
            v * (T::from_bool(v > T::ZERO) * rest + slope) + T::ZERO
        }))
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
        Ok(settle(Some(
            x.apply_op2(&g.contiguous()?, RectifyGrad { slope: self.slope })?,
        )))
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
        let (slope, rest) = (T::from_f64(self.slope), T::from_f64(1.0 - self.slope));
        Ok(zip_map(x, g, |x, g| g * (T::from_bool(x > T::ZERO) * rest + slope)))
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
        Ok((None, settle(d_g)))
    }
}
