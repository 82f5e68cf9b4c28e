//! The geometry shared by the CPU convolution kernels (im2col in `conv_cpu.rs`, Winograd in
//! `conv_winograd.rs`, and the shapes of `conv_geometry.rs`): a strided, padded, dilated
//! correlation, its im2col matrix, and how a weight gradient split by image groups its partial
//! sums. It sits below both kernels so that neither borrows from the other.

use super::cpu_op::Elem;

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

/// How many partial sums the weight gradient keeps when split by image: enough to balance 16
/// threads, few enough that the final sum is cheap (Winograd's weight gradient too).
pub(super) const WEIGHT_GRAD_GROUPS: usize = 16;
