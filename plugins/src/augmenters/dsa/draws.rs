//! Random parameters for DSA's ops, drawn from cafe-lab's seeded generator.
//!
//! The reference reseeds torch before every draw (`set_seed_DiffAug`) and, in siamese mode,
//! overwrites every image's parameters with the first image's (`theta[:] = theta[0]`). Here
//! each op gets its own sub-stream of the call's seed and draws image after image, so the
//! first image's parameters never depend on the batch size: the real and the synthetic batch
//! of a class, augmented with one seed, get the same transformation.

use candle_core::Tensor;
use rand::Rng as _;

use cafe_framework::rng::Rng;
use cafe_framework::Result;

/// One parameter per image: `n` independent draws, or in siamese mode a single draw shared by
/// the whole batch (a one-element vector, which the ops broadcast).
pub fn per_image<T>(n: usize, siamese: bool, rng: &mut Rng, mut draw: impl FnMut(&mut Rng) -> T) -> Vec<T> {
    let count = if siamese { 1.min(n) } else { n };
    (0..count).map(|_| draw(rng)).collect()
}

/// A uniform number in [0, 1), like `torch.rand`.
pub fn uniform(rng: &mut Rng) -> f64 {
    rng.random::<f64>()
}

/// A uniform integer in [low, high), like `torch.randint(low, high)`; `low` when empty.
pub fn randint(rng: &mut Rng, low: i64, high: i64) -> i64 {
    if high <= low {
        low
    } else {
        rng.random_range(low..high)
    }
}

/// Per-image scalars as a `[len, 1, 1, 1]` tensor of `x`'s dtype and device, ready to
/// broadcast over `x` (`len` is 1 in siamese mode).
pub fn per_image_tensor(values: &[f64], x: &Tensor) -> Result<Tensor> {
    let t = Tensor::from_vec(values.to_vec(), (values.len(), 1, 1, 1), x.device())?;
    Ok(t.to_dtype(x.dtype())?)
}
