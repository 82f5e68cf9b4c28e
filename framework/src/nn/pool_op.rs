//! CPU ops for 2x2 pooling with stride 2 (floor of odd sizes): one parallel pass each way,
//! and backward passes that are ops again, so pooling differentiates to second order.
//!
//! Average pooling `P` and its backward `U` (each window's gradient spread as a quarter over
//! its four pixels, zero on an uncropped odd last row or column) are linear and adjoint, so
//! the backward of each is the other. Max pooling is `S(x, x)` with `S(x, v)` = the value of
//! `v` where `x` has its window maximum; its backward scatters into those positions, `T(x, g)`;
//! both are linear in their second operand, adjoint there, and piecewise constant in `x`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::backward_graph::settle;
use super::cpu_op::{run1, run2, Elem, Kernel1, Kernel2};
use crate::{Error, Result};

/// The sizes of one pooling: input planes `h x w` (of `planes = n * c`), output `h/2 x w/2`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl Dims {
    fn of(x: &Tensor) -> Result<Self> {
        let &[n, c, h, w] = x.dims() else {
            return Err(Error::invalid(
                "2x2 pooling input",
                format!("{:?}", x.dims()),
                "must be [n, c, h, w]",
            ));
        };
        if h < 2 || w < 2 {
            return Err(Error::invalid(
                "2x2 pooling input",
                format!("{:?}", x.dims()),
                "needs h >= 2 and w >= 2",
            ));
        }
        Ok(Self { n, c, h, w })
    }

    fn input_shape(&self) -> Shape {
        Shape::from((self.n, self.c, self.h, self.w))
    }

    fn output_shape(&self) -> Shape {
        Shape::from((self.n, self.c, self.h / 2, self.w / 2))
    }

    /// The four input offsets (within a plane) of output pixel `(i, j)`.
    #[inline]
    fn window(&self, i: usize, j: usize) -> [usize; 4] {
        let top = 2 * i * self.w + 2 * j;
        [top, top + 1, top + self.w, top + self.w + 1]
    }

    /// Applies `f(input plane, output plane)` to every plane, in parallel; the output has
    /// `out_plane` scalars per plane.
    fn planes<T: Elem>(
        &self,
        input: &[T],
        in_plane: usize,
        out_plane: usize,
        f: impl Fn(&[T], &mut [T]) + Sync + Send,
    ) -> Vec<T> {
        let mut out = vec![T::ZERO; self.n * self.c * out_plane];
        if out_plane > 0 && in_plane > 0 {
            out.par_chunks_mut(out_plane)
                .zip(input.par_chunks(in_plane))
                .with_min_len(16)
                .for_each(|(o, i)| f(i, o));
        }
        out
    }
}

/// Average of each 2x2 window; CPU, f32/f64.
pub(crate) fn avg_pool(x: &Tensor) -> Result<Tensor> {
    let dims = Dims::of(x)?;
    Ok(x.contiguous()?.apply_op1(AvgPool(dims))?)
}

/// The backward of [`avg_pool`] for an input of `input_dims` (`[n, c, h, w]`): each window's
/// gradient spread as a quarter over its pixels. Differentiable (its backward is `avg_pool`).
pub(crate) fn avg_unpool(g: &Tensor, input_dims: &[usize]) -> Result<Tensor> {
    let &[n, c, h, w] = input_dims else {
        return Err(Error::invalid(
            "avg unpool shape",
            format!("{input_dims:?}"),
            "must be [n, c, h, w]",
        ));
    };
    Ok(g.contiguous()?.apply_op1(AvgUnpool(Dims { n, c, h, w }))?)
}

/// Maximum of each 2x2 window; CPU, f32/f64.
pub(crate) fn max_pool(x: &Tensor) -> Result<Tensor> {
    let dims = Dims::of(x)?;
    let x = x.contiguous()?;
    Ok(x.apply_op2(&x, MaxSelect(dims))?)
}

/// Checks that an operand has the element count its role needs.
fn expect_len(op: &str, got: usize, want: usize) -> candle_core::Result<()> {
    if got != want {
        candle_core::bail!("{op}: operand has {got} values, expected {want}")
    }
    Ok(())
}

/// `P`: average pooling.
struct AvgPool(Dims);

impl Kernel1 for AvgPool {
    const NAME: &'static str = "avg pool";
    fn run<T: Elem>(&self, x: &[T]) -> candle_core::Result<Vec<T>> {
        let d = self.0;
        let (h2, w2) = (d.h / 2, d.w / 2);
        expect_len(Self::NAME, x.len(), d.input_shape().elem_count())?;
        Ok(d.planes(x, d.h * d.w, h2 * w2, |src, dst| {
            for i in 0..h2 {
                for j in 0..w2 {
                    let s: f64 = d.window(i, j).iter().map(|&k| src[k].into()).sum();
                    dst[i * w2 + j] = T::from_f64(0.25 * s);
                }
            }
        }))
    }
}

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "cafe-avg-pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run1(self, s, l)?, self.0.output_shape()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(settle(Some(g.contiguous()?.apply_op1(AvgUnpool(self.0))?)))
    }
}

/// `U`: the backward of average pooling.
struct AvgUnpool(Dims);

impl Kernel1 for AvgUnpool {
    const NAME: &'static str = "avg pool gradient";
    fn run<T: Elem>(&self, g: &[T]) -> candle_core::Result<Vec<T>> {
        let d = self.0;
        let (h2, w2) = (d.h / 2, d.w / 2);
        expect_len(Self::NAME, g.len(), d.output_shape().elem_count())?;
        Ok(d.planes(g, h2 * w2, d.h * d.w, |src, dst| {
            for i in 0..h2 {
                for j in 0..w2 {
                    let v = T::from_f64(0.25 * src[i * w2 + j].into());
                    for k in d.window(i, j) {
                        dst[k] = v;
                    }
                }
            }
        }))
    }
}

impl CustomOp1 for AvgUnpool {
    fn name(&self) -> &'static str {
        "cafe-avg-unpool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run1(self, s, l)?, self.0.input_shape()))
    }

    fn bwd(&self, _g: &Tensor, _res: &Tensor, u: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(settle(Some(u.contiguous()?.apply_op1(AvgPool(self.0))?)))
    }
}

/// Offset within the plane of the maximum of window `(i, j)`: the first one in row-major
/// order, or a NaN, which then propagates as in PyTorch.
#[inline]
fn argmax<T: Elem>(d: &Dims, plane: &[T], i: usize, j: usize) -> usize {
    let window = d.window(i, j);
    let mut best = window[0];
    for &k in &window[1..] {
        let (v, b): (f64, f64) = (plane[k].into(), plane[best].into());
        if b.is_nan() {
            break;
        }
        if v > b || v.is_nan() {
            best = k;
        }
    }
    best
}

/// `S(x, v)`: `v` at the positions of the window maxima of `x`.
struct MaxSelect(Dims);

impl Kernel2 for MaxSelect {
    const NAME: &'static str = "max pool";
    fn run<T: Elem>(&self, x: &[T], v: &[T]) -> candle_core::Result<Vec<T>> {
        let d = self.0;
        let (plane, h2, w2) = (d.h * d.w, d.h / 2, d.w / 2);
        expect_len(Self::NAME, x.len(), d.input_shape().elem_count())?;
        expect_len(Self::NAME, v.len(), x.len())?;
        // Planes of x and v are paired through their common index.
        let pairs: Vec<(&[T], &[T])> = x.chunks(plane).zip(v.chunks(plane)).collect();
        let mut out = vec![T::ZERO; d.n * d.c * h2 * w2];
        out.par_chunks_mut((h2 * w2).max(1))
            .zip(pairs.par_iter())
            .with_min_len(16)
            .for_each(|(dst, (xp, vp))| {
                for i in 0..h2 {
                    for j in 0..w2 {
                        dst[i * w2 + j] = vp[argmax(&d, xp, i, j)];
                    }
                }
            });
        Ok(out)
    }
}

impl CustomOp2 for MaxSelect {
    fn name(&self) -> &'static str {
        "cafe-max-pool2x2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run2(self, s1, l1, s2, l2)?, self.0.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d_v = v
            .track_op()
            .then(|| x.apply_op2(&g.contiguous()?, MaxScatter(self.0)))
            .transpose()?;
        Ok((None, settle(d_v)))
    }
}

/// `T(x, g)`: `g` written at the positions of the window maxima of `x`, zero elsewhere.
struct MaxScatter(Dims);

impl Kernel2 for MaxScatter {
    const NAME: &'static str = "max pool gradient";
    fn run<T: Elem>(&self, x: &[T], g: &[T]) -> candle_core::Result<Vec<T>> {
        let d = self.0;
        let (plane, h2, w2) = (d.h * d.w, d.h / 2, d.w / 2);
        expect_len(Self::NAME, x.len(), d.input_shape().elem_count())?;
        expect_len(Self::NAME, g.len(), d.output_shape().elem_count())?;
        let pairs: Vec<(&[T], &[T])> = x.chunks(plane).zip(g.chunks((h2 * w2).max(1))).collect();
        let mut out = vec![T::ZERO; x.len()];
        out.par_chunks_mut(plane.max(1))
            .zip(pairs.par_iter())
            .with_min_len(16)
            .for_each(|(dst, (xp, gp))| {
                for i in 0..h2 {
                    for j in 0..w2 {
                        dst[argmax(&d, xp, i, j)] = gp[i * w2 + j];
                    }
                }
            });
        Ok(out)
    }
}

impl CustomOp2 for MaxScatter {
    fn name(&self) -> &'static str {
        "cafe-max-unpool2x2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((run2(self, s1, l1, s2, l2)?, self.0.input_shape()))
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
            .then(|| x.apply_op2(&u.contiguous()?, MaxSelect(self.0)))
            .transpose()?;
        Ok((None, settle(d_g)))
    }
}
