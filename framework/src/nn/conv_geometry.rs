//! The shapes of one call of [`conv2d`](super::conv::conv2d), checked once, and the
//! correlations its forward pass and input gradient run on the CPU.

use candle_core::Tensor;

use super::correlation::Correlation;
use super::cpu_op::Elem;
use crate::{Error, Result};

/// The shapes one convolution was called with; every op of the family carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Geometry {
    pub fn new(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let bad = |reason: String| Error::invalid("conv2d", format!("x {:?}, w {:?}", x.dims(), w.dims()), reason);
        let (&[_, c, h, width], &[o, wc, k, k2]) = (x.dims(), w.dims()) else {
            return Err(bad("x must be [n, c, h, w] and w [o, c, k, k]".into()));
        };
        if c != wc || k != k2 {
            return Err(bad(
                "the channels of x and w must agree and the kernel must be square".into()
            ));
        }
        if x.dtype() != w.dtype() {
            return Err(bad(format!("dtypes differ: {:?} and {:?}", x.dtype(), w.dtype())));
        }
        if stride == 0 || c == 0 || o == 0 || k == 0 {
            return Err(bad(format!(
                "stride ({stride}), channels and kernel size must be positive"
            )));
        }
        if h + 2 * padding < k || width + 2 * padding < k {
            return Err(bad(format!(
                "the input padded by {padding} is smaller than the {k}x{k} kernel"
            )));
        }
        let out = |len: usize| (len + 2 * padding - k) / stride + 1;
        Ok(Self {
            c,
            h,
            w: width,
            o,
            k,
            stride,
            padding,
            out_h: out(h),
            out_w: out(width),
        })
    }

    /// The forward convolution as a correlation over the input.
    pub fn forward(&self) -> Correlation {
        Correlation {
            in_c: self.c,
            in_h: self.h,
            in_w: self.w,
            k: self.k,
            stride: self.stride,
            pad: self.padding as isize,
            dilation: 1,
            out_h: self.out_h,
            out_w: self.out_w,
        }
    }

    /// The input gradient as a correlation over the output gradient: spread out by the stride,
    /// padded by `k - 1 - p` (negative when `p >= k`), cut to the input's size.
    pub fn input_grad(&self) -> Correlation {
        Correlation {
            in_c: self.o,
            in_h: self.out_h,
            in_w: self.out_w,
            k: self.k,
            stride: 1,
            pad: self.k as isize - 1 - self.padding as isize,
            dilation: self.stride,
            out_h: self.h,
            out_w: self.w,
        }
    }

    /// The kernel of [`Self::input_grad`]: `w` flipped in space, channels swapped, as a
    /// row-major `[c, o * k * k]` matrix.
    pub fn flipped_kernel<T: Elem>(&self, w: &[T]) -> Vec<T> {
        let k = self.k;
        let mut out = Vec::with_capacity(w.len());
        for c in 0..self.c {
            for o in 0..self.o {
                for ky in 0..k {
                    for kx in 0..k {
                        out.push(w[((o * self.c + c) * k + (k - 1 - ky)) * k + (k - 1 - kx)]);
                    }
                }
            }
        }
        out
    }
}
