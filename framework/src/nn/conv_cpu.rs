//! CPU kernels behind [`super::conv::conv2d`]: im2col followed by one `gemm` per image, for the
//! forward convolution, its input gradient and its weight gradient (3x3 stride-1 ones go to
//! [`super::conv_winograd`] instead, see [`super::conv_algorithm`]).
//!
//! All three are the same "correlation" of an input with a kernel, seen through a
//! [`Correlation`] geometry: the input gradient is a correlation of the output gradient, spread
//! out by the stride (zeros between its pixels, done by index arithmetic, never materialised),
//! with the kernel flipped in space and its channels swapped (CANDLE_NOTES 4). Work is split
//! across rayon threads by image when the batch is large enough, otherwise inside `gemm`.

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv_algorithm::{current, ConvAlgorithm};
use super::conv_winograd as winograd;
use super::cpu_op::Elem;

/// Whether `geo` runs by Winograd F(2x2, 3x3) ([`super::conv_winograd`]) rather than im2col:
/// under [`ConvAlgorithm::Auto`] when it applies and the input has enough channels for its 16
/// products to beat the one im2col product (measured in `conv_algorithm.rs`).
fn winograd_for(geo: &Correlation) -> bool {
    winograd::applies(geo)
        && match current() {
            ConvAlgorithm::Auto => geo.in_c >= super::conv_algorithm::WINOGRAD_MIN_CHANNELS,
            ConvAlgorithm::Winograd => true,
            ConvAlgorithm::Im2col => false,
        }
}

/// A strided correlation: `out[oy, ox] = sum in'[oy * stride + ky - pad, ox * stride + kx - pad]
/// * kernel[ky, kx]`, where `in'` is the input with `dilation - 1` zeros inserted between
/// neighbouring pixels and zero outside. `pad` may exceed the kernel (it is negative for the
/// input gradient of a convolution padded by more than `k - 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Correlation {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: isize,
    pub dilation: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Correlation {
    /// Rows of the im2col matrix: one per (channel, ky, kx).
    pub fn patch(&self) -> usize {
        self.in_c * self.k * self.k
    }

    /// Columns of the im2col matrix: one per output pixel.
    pub fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Scalars of one input image.
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    /// The input pixel that virtual coordinate `v` reads, if any (zero padding and the zeros of
    /// the dilation read nothing).
    #[inline]
    fn tap(&self, v: isize, len: usize) -> Option<usize> {
        if v < 0 {
            return None;
        }
        let v = v as usize;
        if !v.is_multiple_of(self.dilation) {
            return None;
        }
        let i = v / self.dilation;
        (i < len).then_some(i)
    }

    /// Writes the `[patch, pixels]` im2col matrix of one input image `src` (`[in_c, in_h, in_w]`)
    /// into `cols`.
    pub fn im2col<T: Elem>(&self, src: &[T], cols: &mut [T]) {
        let (k, p, plane) = (self.k, self.pixels(), self.in_h * self.in_w);
        for ci in 0..self.in_c {
            let plane = &src[ci * plane..(ci + 1) * plane];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((ci * k + ky) * k + kx) * p..][..p];
                    for (oy, out) in row.chunks_exact_mut(self.out_w).enumerate() {
                        let vy = (oy * self.stride + ky) as isize - self.pad;
                        match self.tap(vy, self.in_h) {
                            None => out.fill(T::ZERO),
                            Some(iy) => self.fill_row(&plane[iy * self.in_w..][..self.in_w], kx, out),
                        }
                    }
                }
            }
        }
    }

    /// One output row of one im2col row: the input row `src` read at column offset `kx`.
    #[inline]
    fn fill_row<T: Elem>(&self, src: &[T], kx: usize, out: &mut [T]) {
        if self.stride == 1 && self.dilation == 1 {
            // The common case is a shifted copy: out[ox] = src[ox + shift] where in range.
            let shift = kx as isize - self.pad;
            let width = out.len() as isize;
            let lo = (-shift).clamp(0, width) as usize;
            let hi = (self.in_w as isize - shift).clamp(lo as isize, width) as usize;
            out[..lo].fill(T::ZERO);
            out[lo..hi].copy_from_slice(&src[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
            out[hi..].fill(T::ZERO);
        } else {
            for (ox, o) in out.iter_mut().enumerate() {
                let vx = (ox * self.stride + kx) as isize - self.pad;
                *o = self.tap(vx, self.in_w).map_or(T::ZERO, |ix| src[ix]);
            }
        }
    }
}

/// Splitting by image keeps every thread on its own gemm with no synchronisation; it needs a
/// few images per thread to balance, otherwise `gemm` parallelises each product itself.
fn split_by_image(n: usize) -> bool {
    n >= 2 * rayon::current_num_threads()
}

/// How many partial sums the weight gradient keeps when split by image: enough to balance 16
/// threads, few enough that the final sum is cheap (Winograd's weight gradient too).
pub(super) const WEIGHT_GRAD_GROUPS: usize = 16;

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]`, all row-major with the given row strides, except that
/// `rhs_t` reads `rhs` transposed (its element (i, j) at `j * rhs_rs + i`).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    rhs: &[T],
    rhs_rs: usize,
    rhs_t: bool,
    parallelism: Parallelism,
) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k);
    let (rhs_cs, rhs_rs) = if rhs_t {
        (rhs_rs as isize, 1)
    } else {
        (1, rhs_rs as isize)
    };
    // SAFETY: the slices cover the strided matrices described (checked by the callers' sizes),
    // `dst` is exclusively borrowed and distinct from `lhs` and `rhs`; `T` is f32 or f64, which
    // `gemm` supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `out[n] = kernel[out_c, patch] @ im2col(input[n]) (+ bias[out_c])` for every image: a
/// forward correlation. `input` is `[n, in_c, in_h, in_w]`, the result `[n, out_c, out_h, out_w]`.
/// The bias is written first and the product accumulated onto it: the addition is free.
pub(crate) fn correlate<T: Elem>(
    geo: &Correlation,
    input: &[T],
    kernel: &[T],
    out_c: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    if winograd_for(geo) {
        return winograd::correlate(geo, input, kernel, out_c, bias);
    }
    let (patch, pixels) = (geo.patch(), geo.pixels());
    let n = input.len() / geo.in_len().max(1);
    let mut out = vec![T::ZERO; n * out_c * pixels];
    if out.is_empty() {
        return out;
    }
    let one = |src: &[T], dst: &mut [T], cols: &mut Vec<T>, par: Parallelism| {
        geo.im2col(src, cols);
        if let Some(bias) = bias {
            dst.chunks_exact_mut(pixels).zip(bias).for_each(|(row, &b)| row.fill(b));
        }
        matmul(
            (out_c, pixels, patch),
            dst,
            bias.is_some(),
            kernel,
            cols,
            pixels,
            false,
            par,
        );
    };
    if split_by_image(n) {
        input
            .par_chunks_exact(geo.in_len())
            .zip(out.par_chunks_exact_mut(out_c * pixels))
            .for_each_init(
                || vec![T::ZERO; patch * pixels],
                |cols, (src, dst)| one(src, dst, cols, Parallelism::None),
            );
    } else {
        let mut cols = vec![T::ZERO; patch * pixels];
        for (src, dst) in input
            .chunks_exact(geo.in_len())
            .zip(out.chunks_exact_mut(out_c * pixels))
        {
            one(src, dst, &mut cols, Parallelism::Rayon(0));
        }
    }
    out
}

/// `sum_n grad[n] @ im2col(input[n])^T`: the weight gradient `[out_c, patch]` of a forward
/// correlation, for `grad` `[n, out_c, out_h, out_w]` and `input` `[n, in_c, in_h, in_w]`.
pub(crate) fn correlate_weight_grad<T: Elem>(geo: &Correlation, grad: &[T], input: &[T], out_c: usize) -> Vec<T> {
    if winograd_for(geo) {
        return winograd::correlate_weight_grad(geo, grad, input, out_c);
    }
    let (patch, pixels) = (geo.patch(), geo.pixels());
    let n = input.len() / geo.in_len().max(1);
    if n == 0 || pixels == 0 {
        return vec![T::ZERO; out_c * patch];
    }
    let add = |acc: &mut [T], src: &[T], g: &[T], cols: &mut Vec<T>, par: Parallelism| {
        geo.im2col(src, cols);
        matmul((out_c, patch, pixels), acc, true, g, cols, pixels, true, par);
    };
    if split_by_image(n) {
        // Images are summed in fixed groups, each group in order and the groups in order, so
        // that the result does not depend on the thread count or on scheduling.
        let per_group = n.div_ceil(WEIGHT_GRAD_GROUPS);
        let partial: Vec<Vec<T>> = input
            .par_chunks(per_group * geo.in_len())
            .zip(grad.par_chunks(per_group * out_c * pixels))
            .map_init(
                || vec![T::ZERO; patch * pixels],
                |cols, (src, g)| {
                    let mut acc = vec![T::ZERO; out_c * patch];
                    for (src, g) in src.chunks_exact(geo.in_len()).zip(g.chunks_exact(out_c * pixels)) {
                        add(&mut acc, src, g, cols, Parallelism::None);
                    }
                    acc
                },
            )
            .collect();
        let mut parts = partial.into_iter();
        let mut acc = parts.next().unwrap_or_else(|| vec![T::ZERO; out_c * patch]);
        for part in parts {
            acc.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
        }
        acc
    } else {
        let mut acc = vec![T::ZERO; out_c * patch];
        let mut cols = vec![T::ZERO; patch * pixels];
        for (src, g) in input.chunks_exact(geo.in_len()).zip(grad.chunks_exact(out_c * pixels)) {
            add(&mut acc, src, g, &mut cols, Parallelism::Rayon(0));
        }
        acc
    }
}
