//! 2x2 pooling with stride 2 whose gradient is right for odd sizes too.
//!
//! candle's `avg_pool2d` / `max_pool2d` backward spreads gradient into the last row and column
//! of an odd-sized map, which no window covered (CANDLE_NOTES 2). Here only the covered region
//! is pooled (floor semantics, as PyTorch), so the uncovered pixels get exactly 0: by fused CPU
//! ops, or off the CPU by cropping and then reshape + mean/max.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::cpu_op::native;
use super::pool_op;
use crate::{Error, Result};

/// The pooling DC's networks choose from; names as in DC's `net_pooling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    None,
    MaxPooling,
    #[default]
    AvgPooling,
}

impl Pooling {
    /// The spatial size after this pooling.
    pub fn output_size(self, h: usize, w: usize) -> (usize, usize) {
        match self {
            Pooling::None => (h, w),
            Pooling::MaxPooling | Pooling::AvgPooling => (h / 2, w / 2),
        }
    }

    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Pooling::None => Ok(x.clone()),
            Pooling::MaxPooling => max_pool2x2(x),
            Pooling::AvgPooling => avg_pool2x2(x),
        }
    }
}

/// `x` cropped to even sizes and viewed as `[n, c, h/2, 2, w/2, 2]`.
fn windows(x: &Tensor) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(Error::invalid(
            "2x2 pooling input",
            format!("{:?}", x.dims()),
            "must be [n, c, h, w]",
        ));
    };
    let (h2, w2) = (h / 2, w / 2);
    if h2 == 0 || w2 == 0 {
        return Err(Error::invalid(
            "2x2 pooling input",
            format!("{:?}", x.dims()),
            "needs h >= 2 and w >= 2",
        ));
    }
    let mut x = x.clone();
    if h != 2 * h2 {
        x = x.narrow(2, 0, 2 * h2)?;
    }
    if w != 2 * w2 {
        x = x.narrow(3, 0, 2 * w2)?;
    }
    Ok(x.reshape((n, c, h2, 2, w2, 2))?)
}

/// Average of each 2x2 window, stride 2, floor of odd sizes (PyTorch's `avg_pool2d(x, 2)`).
/// A fused op on the CPU in f32/f64, tensor ops elsewhere.
///
/// # Shapes
/// `[n, c, h, w] -> [n, c, h / 2, w / 2]`.
pub fn avg_pool2x2(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        return pool_op::avg_pool(x);
    }
    avg_pool2x2_with_tensor_ops(x)
}

/// [`avg_pool2x2`] as reshape + sum: what runs off the CPU, and the reference the fused op is
/// tested against.
pub fn avg_pool2x2_with_tensor_ops(x: &Tensor) -> Result<Tensor> {
    Ok(windows(x)?.sum(5)?.sum(3)?.affine(0.25, 0.0)?)
}

/// Maximum of each 2x2 window, stride 2, floor of odd sizes (PyTorch's `max_pool2d(x, 2)`).
/// A fused op on the CPU in f32/f64 (the gradient goes to the first maximum of a window, as in
/// PyTorch), tensor ops elsewhere.
///
/// # Shapes
/// `[n, c, h, w] -> [n, c, h / 2, w / 2]`.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    if native(x) {
        return pool_op::max_pool(x);
    }
    max_pool2x2_with_tensor_ops(x)
}

/// [`max_pool2x2`] as reshape + max: what runs off the CPU, and the reference the fused op is
/// tested against. Tied maxima of a window each receive its full gradient (candle's max
/// backward); with continuous inputs ties do not occur.
pub fn max_pool2x2_with_tensor_ops(x: &Tensor) -> Result<Tensor> {
    Ok(windows(x)?.max(5)?.max(3)?)
}
