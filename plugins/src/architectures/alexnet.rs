//! AlexNet and AlexNetBN of DC's `networks.py` (<https://github.com/VICO-UoE/DatasetCondensation>),
//! the small-image AlexNet: conv 5x5 128 (padding 4 for 1-channel input, else 2) -> max pool ->
//! conv 5x5 192 pad 2 -> max pool -> conv 3x3 256 -> conv 3x3 192 -> conv 3x3 192 -> max pool
//! -> Linear classes; every conv is followed by ReLU (`alexnetbn`: BatchNorm, then ReLU).
//!
//! 1x28x28 (padded to 32) and 3x32x32 both reach 192x4x4, the reference's fixed `192 * 4 * 4`;
//! other sizes get a classifier of their own flattened size.
//!
//! - `block_features`: the ReLU output of each of the 5 convs, before any pooling.
//! - `embedding`: the flattened input of the classifier, `[n, 192 * 4 * 4]` for those inputs.

use cafe_framework::nn::{Linear, NormKind};
use cafe_framework::{register_architecture, Architecture, ImageShape, NetworkFamily, Result, Rng};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::blocks::{check_classes, ConvStack, Layer, MapShape, StackClassifier};

/// AlexNet has no settings; the empty config keeps the registry uniform and refuses unknown
/// keys. `alexnet` and `alexnetbn` share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlexNetConfig {}

/// An AlexNet variant: no norm (`alexnet`) or BatchNorm (`alexnetbn`) after each conv.
#[derive(Debug, Clone, Copy)]
struct AlexNetVariant {
    /// The registered name, for messages.
    name: &'static str,
    norm: NormKind,
}

impl AlexNetVariant {
    fn architecture(self) -> Result<Box<dyn Architecture>> {
        NetworkFamily::boxed(self, self.norm == NormKind::BatchNorm, build)
    }
}

/// The one builder behind both variants.
fn build(
    arch: &AlexNetVariant,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<StackClassifier> {
    check_classes(arch.name, classes)?;
    let mut shape = MapShape::new(arch.name, input)?;
    // The reference pads 1-channel (MNIST-like, 28x28) input by 4 so that it reaches 32x32.
    let first_padding = if input.channels == 1 { 4 } else { 2 };
    let conv = |channels, kernel, padding| Layer::Conv {
        channels,
        kernel,
        padding,
    };
    let layers = [
        conv(128, 5, first_padding),
        Layer::MaxPool,
        conv(192, 5, 2),
        Layer::MaxPool,
        conv(256, 3, 1),
        conv(192, 3, 1),
        conv(192, 3, 1),
        Layer::MaxPool,
    ];
    let features = ConvStack::new(&mut shape, &layers, arch.norm, dtype, device, rng)?;
    let fc = Linear::new(shape.current.numel(), classes, dtype, device, rng)?;
    Ok(StackClassifier {
        name: arch.name,
        features,
        classifier: fc,
        input,
    })
}

register_architecture!(
    "alexnet",
    "DC's AlexNet for small images: 5 convs (128 192 256 192 192), 3 max pools, Linear classes",
    AlexNetConfig,
    |_: AlexNetConfig| -> Result<Box<dyn Architecture>> {
        AlexNetVariant {
            name: "alexnet",
            norm: NormKind::None,
        }
        .architecture()
    }
);

register_architecture!(
    "alexnetbn",
    "DC's AlexNetBN: AlexNet with BatchNorm after every conv",
    AlexNetConfig,
    |_: AlexNetConfig| -> Result<Box<dyn Architecture>> {
        AlexNetVariant {
            name: "alexnetbn",
            norm: NormKind::BatchNorm,
        }
        .architecture()
    }
);
