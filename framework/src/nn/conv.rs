//! Fast 2-D convolution for the CPU whose gradients are convolutions again, so that it stays
//! differentiable to any order (DC's gradient matching differentiates a weight gradient
//! w.r.t. the input pixels).
//!
//! candle's own CPU convolution computes its input gradient with `conv_transpose2d`, about 12x
//! slower than the forward pass (CANDLE_NOTES 4). Here three bilinear custom ops share one
//! geometry:
//! - `A(x, w)`: the convolution, `[n, c, h, w] x [o, c, k, k] -> [n, o, h', w']`;
//! - `B(g, w)`: its input gradient, a correlation of `g` (spread out by the stride) with `w`
//!   flipped in space and its channels swapped, padded by `k - 1 - p`;
//! - `C(g, x)`: its weight gradient, `g (O x N*H'*W') @ im2col(x) (N*H'*W' x C*k*k)`.
//!
//! Each is linear in both arguments and the three are adjoints of each other
//! (`<B(g, w), u> = <g, A(u, w)> = <C(g, u), w>`), so the backward of each is written with the
//! other two and the set is closed under differentiation. With `CANDLE_GRAD_DO_NOT_DETACH=1`
//! second-order gradients flow through them (CANDLE_NOTES 1).
//!
//! On an NVIDIA GPU, in a build with the `cudnn` feature, the same three ops run on cuDNN's
//! forward, backward-data and backward-filter calls (`conv_cudnn.rs`), so the family stays
//! closed under differentiation there too. Elsewhere (no `cudnn`, `CAFE_CUDA_CONV=candle`,
//! other devices, dtypes other than f32/f64) [`conv2d`] falls back to candle's `Tensor::conv2d`.

#[cfg(feature = "cudnn")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use super::backward_graph::settle;
use super::channel_op::channel_sum;
use super::conv_cpu::{correlate, correlate_weight_grad};
#[cfg(feature = "cudnn")]
use super::conv_cudnn::{self, Op};
use super::conv_geometry::Geometry;
use super::cpu_op::{native, run2, run3, to_candle, Elem, Kernel2, Kernel3};
use crate::gpu::{conv_path, ConvPath};
use crate::{Error, Result};

/// 2-D convolution without dilation or groups, as PyTorch's `F.conv2d(x, w, stride=stride,
/// padding=padding)` (zero padding on every side, floor of the output size).
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - `w`: `[o, c, k, k]`
/// - result: `[n, o, (h + 2p - k) / stride + 1, (w + 2p - k) / stride + 1]`
///
/// # Errors
/// When the ranks, channels or dtypes do not match, the kernel is not square, `stride` is 0 or
/// the padded input is smaller than the kernel.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_with_bias(x, w, None, stride, padding)
}

/// [`conv2d`] plus a per-output-channel `bias` `[o]`, added inside the convolution on the CPU
/// (the output is written once).
pub fn conv2d_with_bias(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let geo = Geometry::new(x, w, stride, padding)?;
    if let Some(b) = bias {
        if b.dims() != [geo.o] || b.dtype() != x.dtype() {
            return Err(Error::invalid(
                "conv2d bias",
                format!("{:?} {:?}", b.dims(), b.dtype()),
                format!("must be [{}] {:?}", geo.o, x.dtype()),
            ));
        }
    }
    if !native(x) {
        // On cuDNN the bias is a broadcast add (its gradient candle's sum): one more pass over
        // the output, against PyTorch's cuDNN path, which adds it in a separate kernel too.
        let y = if on_cudnn(x) {
            apply(x, w, Forward(geo))?
        } else {
            x.conv2d(w, padding, stride, 1, 1)?
        };
        return Ok(match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, geo.o, 1, 1))?)?,
            None => y,
        });
    }
    match bias {
        Some(b) => Ok(x
            .contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, ForwardBias(geo))?),
        None => apply(x, w, Forward(geo)),
    }
}

/// True when the family's ops run on cuDNN for `x`: a GPU tensor of f32 or f64 in a build with
/// the `cudnn` feature, unless `CAFE_CUDA_CONV=candle`.
fn on_cudnn(x: &Tensor) -> bool {
    cfg!(feature = "cudnn")
        && x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && conv_path() == ConvPath::Cudnn
}

/// Runs one op of the family on cuDNN: `result` is its output shape.
#[cfg(feature = "cudnn")]
fn on_gpu(
    op: Op,
    g: Geometry,
    batch: usize,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
    result: Shape,
) -> candle_core::Result<(CudaStorage, Shape)> {
    let out = conv_cudnn::run(op, g, batch, a, b, result.elem_count(), crate::gpu::precision())?;
    Ok((out, result))
}

/// Applies one op of the family to contiguous operands (the kernels read plain slices).
fn apply<C: CustomOp2 + Send + Sync + 'static>(a: &Tensor, b: &Tensor, op: C) -> Result<Tensor> {
    Ok(a.contiguous()?.apply_op2(&b.contiguous()?, op)?)
}

/// Only arguments that lead to a variable need a gradient; skipping the others saves e.g. the
/// input gradient of a network's first layer.
fn needed(t: &Tensor) -> bool {
    t.track_op()
}

/// Checks an operand against the geometry (`dims[0] == None`: any batch size) and returns its
/// first dimension. The kernels index by the geometry, so a mismatch must stop here.
fn expect(l: &Layout, what: &str, dims: [Option<usize>; 4]) -> candle_core::Result<usize> {
    let got = l.shape().dims4()?;
    let got = [got.0, got.1, got.2, got.3];
    if got.iter().zip(&dims).any(|(g, d)| d.is_some_and(|d| d != *g)) {
        candle_core::bail!("conv2d: {what} has shape {got:?}, expected {dims:?}")
    }
    Ok(got[0])
}

/// `A(x, w)`: the convolution.
struct Forward(Geometry);

impl Kernel2 for Forward {
    const NAME: &'static str = "conv2d";
    fn run<T: Elem>(&self, x: &[T], w: &[T]) -> candle_core::Result<Vec<T>> {
        Ok(correlate(&self.0.forward(), x, w, self.0.o, None))
    }
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "cafe-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "input", [None, Some(g.c), Some(g.h), Some(g.w)])?;
        expect(l2, "kernel", [Some(g.o), Some(g.c), Some(g.k), Some(g.k)])?;
        Ok((run2(self, s1, l1, s2, l2)?, Shape::from((n, g.o, g.out_h, g.out_w))))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "input", [None, Some(g.c), Some(g.h), Some(g.w)])?;
        expect(l2, "kernel", [Some(g.o), Some(g.c), Some(g.k), Some(g.k)])?;
        on_gpu(
            Op::Forward,
            g,
            n,
            (s1, l1),
            (s2, l2),
            Shape::from((n, g.o, g.out_h, g.out_w)),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let gx = needed(x).then(|| apply(grad, w, InputGrad(g))).transpose();
        let gw = needed(w).then(|| apply(grad, x, WeightGrad(g))).transpose();
        Ok((settle(gx.map_err(to_candle)?), settle(gw.map_err(to_candle)?)))
    }
}

/// `A(x, w) + b`: the convolution with its bias.
struct ForwardBias(Geometry);

impl Kernel3 for ForwardBias {
    const NAME: &'static str = "conv2d";
    fn run<T: Elem>(&self, x: &[T], w: &[T], b: &[T]) -> candle_core::Result<Vec<T>> {
        Ok(correlate(&self.0.forward(), x, w, self.0.o, Some(b)))
    }
}

impl CustomOp3 for ForwardBias {
    fn name(&self) -> &'static str {
        "cafe-conv2d-bias"
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
        let g = self.0;
        let n = expect(l1, "input", [None, Some(g.c), Some(g.h), Some(g.w)])?;
        expect(l2, "kernel", [Some(g.o), Some(g.c), Some(g.k), Some(g.k)])?;
        if l3.shape().dims() != [g.o] {
            candle_core::bail!("conv2d: bias has shape {:?}, expected [{}]", l3.shape().dims(), g.o)
        }
        Ok((
            run3(self, s1, l1, s2, l2, s3, l3)?,
            Shape::from((n, g.o, g.out_h, g.out_w)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (conv_x, conv_w) = Forward(self.0).bwd(x, w, res, grad)?;
        let gb = needed(b).then(|| channel_sum(grad)).transpose().map_err(to_candle)?;
        Ok((conv_x, conv_w, settle(gb)))
    }
}

/// `B(g, w)`: the input gradient of `A` for output gradient `g`.
struct InputGrad(Geometry);

impl Kernel2 for InputGrad {
    const NAME: &'static str = "conv2d input gradient";
    fn run<T: Elem>(&self, gy: &[T], w: &[T]) -> candle_core::Result<Vec<T>> {
        Ok(correlate(
            &self.0.input_grad(),
            gy,
            &self.0.flipped_kernel(w),
            self.0.c,
            None,
        ))
    }
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "cafe-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "output gradient", [None, Some(g.o), Some(g.out_h), Some(g.out_w)])?;
        expect(l2, "kernel", [Some(g.o), Some(g.c), Some(g.k), Some(g.k)])?;
        Ok((run2(self, s1, l1, s2, l2)?, Shape::from((n, g.c, g.h, g.w))))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "output gradient", [None, Some(g.o), Some(g.out_h), Some(g.out_w)])?;
        expect(l2, "kernel", [Some(g.o), Some(g.c), Some(g.k), Some(g.k)])?;
        on_gpu(Op::InputGrad, g, n, (s1, l1), (s2, l2), Shape::from((n, g.c, g.h, g.w)))
    }

    /// `d <B(g, w), u> = <dg, A(u, w)> + <C(g, u), dw>`.
    fn bwd(
        &self,
        gy: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        u: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let d_gy = needed(gy).then(|| apply(u, w, Forward(g))).transpose();
        let d_w = needed(w).then(|| apply(gy, u, WeightGrad(g))).transpose();
        Ok((settle(d_gy.map_err(to_candle)?), settle(d_w.map_err(to_candle)?)))
    }
}

/// `C(g, x)`: the weight gradient of `A` for output gradient `g` and input `x`.
struct WeightGrad(Geometry);

impl Kernel2 for WeightGrad {
    const NAME: &'static str = "conv2d weight gradient";
    fn run<T: Elem>(&self, gy: &[T], x: &[T]) -> candle_core::Result<Vec<T>> {
        Ok(correlate_weight_grad(&self.0.forward(), gy, x, self.0.o))
    }
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "cafe-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "output gradient", [None, Some(g.o), Some(g.out_h), Some(g.out_w)])?;
        expect(l2, "input", [Some(n), Some(g.c), Some(g.h), Some(g.w)])?;
        Ok((run2(self, s1, l1, s2, l2)?, Shape::from((g.o, g.c, g.k, g.k))))
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let g = self.0;
        let n = expect(l1, "output gradient", [None, Some(g.o), Some(g.out_h), Some(g.out_w)])?;
        expect(l2, "input", [Some(n), Some(g.c), Some(g.h), Some(g.w)])?;
        on_gpu(
            Op::WeightGrad,
            g,
            n,
            (s1, l1),
            (s2, l2),
            Shape::from((g.o, g.c, g.k, g.k)),
        )
    }

    /// `d <C(g, x), v> = <dg, A(x, v)> + <B(g, v), dx>`.
    fn bwd(
        &self,
        gy: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.0;
        let d_gy = needed(gy).then(|| apply(x, v, Forward(g))).transpose();
        let d_x = needed(x).then(|| apply(gy, v, InputGrad(g))).transpose();
        Ok((settle(d_gy.map_err(to_candle)?), settle(d_x.map_err(to_candle)?)))
    }
}
