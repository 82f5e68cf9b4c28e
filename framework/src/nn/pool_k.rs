//! k x k pooling with stride k (non-overlapping windows), written as crop + reshape + sum/max so
//! that its gradient is right when k does not divide the map.
//!
//! candle's `avg_pool2d` / `max_pool2d` backward spreads gradient into the rows and columns that
//! no window covered (CANDLE_NOTES 2). Here the map is first cropped to the covered region, as
//! PyTorch's floor semantics do, so uncovered pixels get exactly 0. [`avg_pool_k`] is the
//! `F.avg_pool2d(out, 4)` that ends ResNet in DC's `networks.py`
//! (<https://github.com/VICO-UoE/DatasetCondensation>); `k = 2` gives the same results as
//! [`avg_pool2x2`](super::avg_pool2x2) and [`max_pool2x2`](super::max_pool2x2).

use candle_core::Tensor;

use crate::{Error, Result};

/// `x` cropped to multiples of `k` and viewed as `[n, c, h/k, k, w/k, k]`.
fn windows(x: &Tensor, k: usize) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(Error::invalid(
            "k x k pooling input",
            format!("{:?}", x.dims()),
            "must be [n, c, h, w]",
        ));
    };
    if k == 0 {
        return Err(Error::invalid("k x k pooling kernel", k, "must be positive"));
    }
    let (hk, wk) = (h / k, w / k);
    if hk == 0 || wk == 0 {
        return Err(Error::invalid(
            "k x k pooling input",
            format!("{:?}", x.dims()),
            format!("a {k}x{k} window needs h >= {k} and w >= {k}"),
        ));
    }
    let mut x = x.clone();
    // Narrowing before the reshape is what keeps the uncovered border out of the graph.
    if h != k * hk {
        x = x.narrow(2, 0, k * hk)?;
    }
    if w != k * wk {
        x = x.narrow(3, 0, k * wk)?;
    }
    Ok(x.reshape((n, c, hk, k, wk, k))?)
}

/// Average of each k x k window, stride k, floor of sizes k does not divide (PyTorch's
/// `F.avg_pool2d(x, k)`).
///
/// # Shapes
/// `[n, c, h, w] -> [n, c, h / k, w / k]`.
pub fn avg_pool_k(x: &Tensor, k: usize) -> Result<Tensor> {
    let windows = windows(x, k)?;
    Ok(windows.sum(5)?.sum(3)?.affine(1.0 / (k * k) as f64, 0.0)?)
}

/// Maximum of each k x k window, stride k, floor of sizes k does not divide (PyTorch's
/// `F.max_pool2d(x, k)`). Tied maxima of a window each receive its full gradient (candle's max
/// backward); with continuous inputs ties do not occur.
///
/// # Shapes
/// `[n, c, h, w] -> [n, c, h / k, w / k]`.
pub fn max_pool_k(x: &Tensor, k: usize) -> Result<Tensor> {
    Ok(windows(x, k)?.max(5)?.max(3)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// A 2x7x5 map whose values are their own flat index, so every window is easy to sum.
    fn ramp() -> Result<Tensor> {
        Ok(Tensor::arange(0.0_f64, 70.0, &Device::Cpu)?.reshape((1, 2, 7, 5))?)
    }

    #[test]
    fn averages_and_maxima_of_cropped_windows() -> Result<()> {
        let x = ramp()?;
        // k = 3 on 7x5: rows 0..6, columns 0..3 are covered; window (0, 0) of channel 0 holds
        // rows 0-2 x columns 0-2 = {0,1,2, 5,6,7, 10,11,12}.
        let avg = avg_pool_k(&x, 3)?;
        assert_eq!(avg.dims(), [1, 2, 2, 1]);
        let got: Vec<f64> = avg.flatten_all()?.to_vec1()?;
        assert_eq!(got, vec![6.0, 21.0, 41.0, 56.0]);
        let max: Vec<f64> = max_pool_k(&x, 3)?.flatten_all()?.to_vec1()?;
        assert_eq!(max, vec![12.0, 27.0, 47.0, 62.0]);
        Ok(())
    }

    #[test]
    fn uncovered_pixels_get_no_gradient() -> Result<()> {
        let x = Var::from_tensor(&ramp()?)?;
        let grads = avg_pool_k(&x, 3)?.sum_all()?.backward()?;
        let g: Vec<Vec<f64>> = grads.get(&x).expect("gradient reaches x").get(0)?.get(0)?.to_vec2()?;
        for (r, row) in g.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let want = if r < 6 && c < 3 { 1.0 / 9.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-15, "row {r} column {c}: {v}, want {want}");
            }
        }
        Ok(())
    }

    #[test]
    fn too_small_maps_and_zero_kernels_are_errors() -> Result<()> {
        let x = ramp()?;
        assert!(avg_pool_k(&x, 6).is_err());
        assert!(max_pool_k(&x, 0).is_err());
        assert!(avg_pool_k(&x.flatten_all()?, 2).is_err());
        Ok(())
    }
}
