//! VGG11 and VGG11BN of DC's `networks.py` (<https://github.com/VICO-UoE/DatasetCondensation>):
//! the configuration `64 M 128 M 256 256 M 512 512 M 512 512 M`, each number a conv 3x3
//! padding 1 -> norm -> ReLU and each `M` a 2x2 max pool, then Linear classes. The norm is
//! instance norm (`GroupNorm(c, c)`, affine) for `vgg11`, BatchNorm for `vgg11bn`. As in the
//! reference, the first conv of a 1-channel (MNIST-like, 28x28) input is padded by 3, so it
//! reaches 32x32 like the 3-channel datasets.
//!
//! The reference's classifier takes 512 features (1x1 maps after five pools of 32x32) and ends
//! its features with `AvgPool2d(kernel_size=1, stride=1)`, the identity, left out here. Inputs
//! whose last map is larger than 1x1 get a classifier of their own flattened size.
//!
//! - `block_features`: the ReLU output of each of the 8 convs, before any pooling.
//! - `embedding`: the flattened input of the classifier, `[n, 512]` for 28x28 and 32x32 input.

use cafe_framework::nn::{Linear, NormKind};
use cafe_framework::{register_architecture, Architecture, ImageShape, NetworkFamily, Result, Rng};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use super::blocks::{check_classes, ConvStack, Layer, MapShape, StackClassifier};

/// One entry of a VGG configuration: conv 3x3 to this many channels, or `None` for a 2x2 max
/// pool (the reference's `'M'`).
type Entry = Option<usize>;

/// The reference's `cfg_vgg['VGG11']`.
const VGG11: [Entry; 13] = [
    Some(64),
    None,
    Some(128),
    None,
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    None,
];

/// VGG has no settings; the empty config keeps the registry uniform and refuses unknown keys.
/// `vgg11` and `vgg11bn` share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VggConfig {}

/// A VGG variant: its layers and the norm after each conv.
#[derive(Debug, Clone, Copy)]
struct VggVariant {
    /// The registered name, for messages.
    name: &'static str,
    config: &'static [Entry],
    norm: NormKind,
}

impl VggVariant {
    fn architecture(self) -> Result<Box<dyn Architecture>> {
        NetworkFamily::boxed(self, self.norm == NormKind::BatchNorm, build)
    }
}

/// The one builder behind every VGG variant.
fn build(
    arch: &VggVariant,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<StackClassifier> {
    check_classes(arch.name, classes)?;
    let mut shape = MapShape::new(arch.name, input)?;
    let layers: Vec<Layer> = (arch.config.iter().enumerate())
        .map(|(i, entry)| match *entry {
            // As in the reference, pad the first conv of 1-channel input by 3 (28 -> 32).
            Some(channels) => {
                let padding = if i == 0 && input.channels == 1 { 3 } else { 1 };
                Layer::Conv {
                    channels,
                    kernel: 3,
                    padding,
                }
            }
            None => Layer::MaxPool,
        })
        .collect();
    let features = ConvStack::new(&mut shape, &layers, arch.norm, dtype, device, rng)?;
    let classifier = Linear::new(shape.current.numel(), classes, dtype, device, rng)?;
    Ok(StackClassifier {
        name: arch.name,
        features,
        classifier,
        input,
    })
}

register_architecture!(
    "vgg11",
    "DC's VGG11: 64 M 128 M 256 256 M 512 512 M 512 512 M (conv3, instance norm, ReLU), Linear classes",
    VggConfig,
    |_: VggConfig| -> Result<Box<dyn Architecture>> {
        VggVariant {
            name: "vgg11",
            config: &VGG11,
            norm: NormKind::InstanceNorm,
        }
        .architecture()
    }
);

register_architecture!(
    "vgg11bn",
    "DC's VGG11BN: VGG11 with BatchNorm instead of instance norm",
    VggConfig,
    |_: VggConfig| -> Result<Box<dyn Architecture>> {
        VggVariant {
            name: "vgg11bn",
            config: &VGG11,
            norm: NormKind::BatchNorm,
        }
        .architecture()
    }
);
