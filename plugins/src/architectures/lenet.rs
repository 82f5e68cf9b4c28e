//! LeNet of DC's `networks.py` (<https://github.com/VICO-UoE/DatasetCondensation>):
//! conv 5x5 6 channels (padding 2 for 1-channel input, else 0) -> ReLU -> max pool 2x2 ->
//! conv 5x5 16 -> ReLU -> max pool 2x2 -> Linear 120 -> ReLU -> Linear 84 -> ReLU ->
//! Linear classes.
//!
//! Both 1x28x28 (28 -> 28 -> 14 -> 10 -> 5) and 3x32x32 (32 -> 28 -> 14 -> 10 -> 5) end in
//! 16x5x5 features, the reference's fixed `16 * 5 * 5`; other sizes get a first Linear of their
//! own flattened size.
//!
//! - `block_features`: each conv's ReLU output before its pooling, `[n, 6, h, w]` and
//!   `[n, 16, h, w]`.
//! - `embedding`: the input of the last Linear, the 84 ReLU outputs, `[n, 84]`.

use cafe_framework::nn::{relu, Linear, NormKind, ParamSource};
use cafe_framework::{
    register_architecture, Architecture, ImageShape, Mode, Network, NetworkFamily, NetworkOutput, Result, Rng,
};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::blocks::{check_classes, check_input, ConvStack, Layer, MapShape};

/// LeNet has no settings; the empty config keeps the registry uniform and refuses unknown keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeNetConfig {}

fn build(
    _: &LeNetConfig,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<LeNet> {
    check_classes("lenet", classes)?;
    let mut shape = MapShape::new("lenet", input)?;
    // The reference pads 1-channel (MNIST-like, 28x28) input so that both dataset sizes
    // reach the same 5x5 map.
    let padding = if input.channels == 1 { 2 } else { 0 };
    let conv = |channels, padding| Layer::Conv {
        channels,
        kernel: 5,
        padding,
    };
    let layers = [conv(6, padding), Layer::MaxPool, conv(16, 0), Layer::MaxPool];
    let features = ConvStack::new(&mut shape, &layers, NormKind::None, dtype, device, rng)?;
    let flat = shape.current.numel();
    let fc_1 = Linear::new(flat, 120, dtype, device, rng)?;
    let fc_2 = Linear::new(120, 84, dtype, device, rng)?;
    let fc_3 = Linear::new(84, classes, dtype, device, rng)?;
    Ok(LeNet {
        features,
        fc_1,
        fc_2,
        fc_3,
        input,
    })
}

/// A built LeNet. `parameters()` order: conv_1, conv_2, fc_1, fc_2, fc_3, each weight then
/// bias (the reference's `named_parameters` order).
#[derive(Debug)]
struct LeNet {
    features: ConvStack,
    fc_1: Linear,
    fc_2: Linear,
    fc_3: Linear,
    input: ImageShape,
}

impl Network for LeNet {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<NetworkOutput> {
        check_input("lenet", x, self.input)?;
        let (x, block_features) = self.features.forward(params, x, mode)?;
        let flat = x.flatten_from(1)?;
        let h1 = relu(&self.fc_1.forward_with(&flat, params)?)?;
        let h2 = relu(&self.fc_2.forward_with(&h1, params)?)?;
        let logits = self.fc_3.forward_with(&h2, params)?;
        Ok(NetworkOutput {
            logits,
            embedding: h2,
            block_features,
        })
    }

    fn parameters(&self) -> Vec<Var> {
        let fcs = [&self.fc_1, &self.fc_2, &self.fc_3]
            .into_iter()
            .flat_map(|l| l.parameters());
        self.features.parameters().into_iter().chain(fcs).collect()
    }
}

register_architecture!(
    "lenet",
    "DC's LeNet: conv5 6, max pool, conv5 16, max pool, Linear 120, Linear 84, Linear classes (ReLU)",
    LeNetConfig,
    |config: LeNetConfig| -> Result<Box<dyn Architecture>> { NetworkFamily::boxed(config, false, build) }
);
