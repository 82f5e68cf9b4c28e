//! MLP of DC's `networks.py` (<https://github.com/VICO-UoE/DatasetCondensation>): flatten ->
//! Linear 128 -> ReLU -> Linear 128 -> ReLU -> Linear classes.
//!
//! The reference sizes its first layer for 1x28x28 or 3x32x32 images; here it takes the
//! flattened size of whatever input the network is built for.
//!
//! - `block_features`: the two hidden layers after their ReLU, `[n, 128]` each.
//! - `embedding`: the input of the last Linear, i.e. the second hidden layer, `[n, 128]`.

use cafe_framework::nn::{relu, Linear, ParamSource};
use cafe_framework::{
    register_architecture, Architecture, ImageShape, Mode, Network, NetworkFamily, NetworkOutput, Result, Rng,
};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::blocks::{check_classes, check_input, MapShape};

/// Width of both hidden layers in the reference.
const HIDDEN: usize = 128;

/// MLP has no settings; the empty config keeps the registry uniform and refuses unknown keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {}

fn build(
    _: &MlpConfig,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<Mlp> {
    check_classes("mlp", classes)?;
    MapShape::new("mlp", input)?;
    let fc_1 = Linear::new(input.numel(), HIDDEN, dtype, device, rng)?;
    let fc_2 = Linear::new(HIDDEN, HIDDEN, dtype, device, rng)?;
    let fc_3 = Linear::new(HIDDEN, classes, dtype, device, rng)?;
    Ok(Mlp {
        fc_1,
        fc_2,
        fc_3,
        input,
    })
}

/// A built MLP. `parameters()` order: fc_1, fc_2, fc_3, each weight then bias.
#[derive(Debug)]
struct Mlp {
    fc_1: Linear,
    fc_2: Linear,
    fc_3: Linear,
    input: ImageShape,
}

impl Network for Mlp {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, _mode: Mode) -> Result<NetworkOutput> {
        check_input("mlp", x, self.input)?;
        let h1 = relu(&self.fc_1.forward_with(&x.flatten_from(1)?, params)?)?;
        let h2 = relu(&self.fc_2.forward_with(&h1, params)?)?;
        let logits = self.fc_3.forward_with(&h2, params)?;
        Ok(NetworkOutput {
            logits,
            embedding: h2.clone(),
            block_features: vec![h1, h2],
        })
    }

    fn parameters(&self) -> Vec<Var> {
        [&self.fc_1, &self.fc_2, &self.fc_3]
            .iter()
            .flat_map(|l| l.parameters())
            .collect()
    }
}

register_architecture!(
    "mlp",
    "DC's MLP: flatten, Linear 128, ReLU, Linear 128, ReLU, Linear classes",
    MlpConfig,
    |config: MlpConfig| -> Result<Box<dyn Architecture>> { NetworkFamily::boxed(config, false, build) }
);
