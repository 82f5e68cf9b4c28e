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
use super::correlation::{Correlation, WEIGHT_GRAD_GROUPS};
use super::cpu_op::Elem;
use super::matmul::matmul;

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

/// Splitting by image keeps every thread on its own gemm with no synchronisation; it needs a
/// few images per thread to balance, otherwise `gemm` parallelises each product itself.
fn split_by_image(n: usize) -> bool {
    n >= 2 * rayon::current_num_threads()
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
