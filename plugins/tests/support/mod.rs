//! Helpers shared by the plugins' architecture tests (`arch_gradcheck.rs`, `arch_zoo.rs`):
//! seeded uniform tensors and the scalar probe whose gradients they check. A folder with a
//! `mod.rs`, so that cargo does not build it as a test binary of its own.

use cafe_framework::{Mode, Network, Result, Rng};
use candle_core::{Device, Tensor};
use rand::Rng as _;

/// An f64 tensor of `shape` drawn uniformly from [-1, 1) by `rng`.
pub fn uniform(shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// The scalar whose gradients are checked: `<logits, r> + <embedding, s> + sum_i <f_i, t_i>`,
/// so it reaches every output a matcher may use (CAFE matches the block features too).
pub struct Probe {
    r: Tensor,
    s: Tensor,
    t: Vec<Tensor>,
}

impl Probe {
    /// Draws `r`, `s` and the `t_i` from `rng`, shaped as `net`'s outputs on `x`.
    pub fn new(net: &dyn Network, x: &Tensor, rng: &mut Rng) -> Result<Self> {
        let out = net.forward(x, Mode::Train)?;
        Ok(Self {
            r: uniform(out.logits.dims(), rng)?,
            s: uniform(out.embedding.dims(), rng)?,
            t: out
                .block_features
                .iter()
                .map(|f| uniform(f.dims(), rng))
                .collect::<Result<_>>()?,
        })
    }

    /// The probe's value for `net` on `x` (a forward pass in training mode).
    pub fn value(&self, net: &dyn Network, x: &Tensor) -> Result<Tensor> {
        let out = net.forward(x, Mode::Train)?;
        let mut total = ((out.logits * &self.r)?.sum_all()? + (out.embedding * &self.s)?.sum_all()?)?;
        for (f, t) in out.block_features.iter().zip(&self.t) {
            total = (total + (f * t)?.sum_all()?)?;
        }
        Ok(total)
    }
}
