//! ResNet18 of DC's `networks.py` (<https://github.com/VICO-UoE/DatasetCondensation>), the
//! small-image ResNet of kuangliu/pytorch-cifar, and its `_AP` variants.
//!
//! Stem conv 3x3 64 stride 1 pad 1 (no bias) -> norm -> ReLU, then four layers of two
//! `BasicBlock`s with widths 64, 128, 256, 512, the last three halving the map, then a Linear
//! classifier. A block is `relu(norm(conv3x3(relu(norm(conv3x3(x))))) + shortcut(x))`; the
//! shortcut is the identity, or conv 1x1 -> norm where the block changes width or size. Every
//! conv has no bias; the norm is instance norm (`GroupNorm(c, c)`, affine) or BatchNorm (`bn`).
//!
//! - `resnet18`, `resnet18bn` (`ResNet`): a halving block's first conv and its shortcut conv
//!   have stride 2; after layer 4 comes `F.avg_pool2d(out, 4)`. 1x28x28 goes 28 -> 28 -> 14 ->
//!   7 -> 4 -> 1 and 3x32x32 goes 32 -> 32 -> 16 -> 8 -> 4 -> 1: 512 features.
//! - `resnet18_ap`, `resnet18bn_ap` (`ResNet_AP`): every conv has stride 1 and a halving block
//!   average-pools 2x2 after its first conv's ReLU and after its shortcut conv; no final
//!   pooling (the reference's `avg_pool2d(kernel_size=1)` is the identity). 1x28x28 goes 28 ->
//!   28 -> 14 -> 7 -> 3 (512 * 3 * 3 features), 3x32x32 ends at 4x4 (512 * 4 * 4), as the
//!   reference's classifier sizes.
//!
//! Pooling is written with tensor ops ([`avg_pool2x2`], [`avg_pool_k`]) that crop to the covered
//! region, so the 7x7 -> 3x3 pooling of the `_AP` nets differentiates correctly (candle's own
//! pooling does not, CANDLE_NOTES 2). Inputs whose last map is larger get a classifier of their
//! own flattened size; inputs too small for the final 4x4 pooling are refused at build time.
//!
//! - `block_features`: the output of each of the 4 layers (after its last block's ReLU).
//! - `embedding`: the flattened input of the classifier.

use cafe_framework::nn::{
    avg_pool2x2, avg_pool_k, relu, Activation, BatchNorm2d, Conv2d, Conv2dConfig, Linear, Norm, NormKind, ParamSource,
};
use cafe_framework::{
    register_architecture, Architecture, ImageShape, Mode, Network, NetworkFamily, NetworkOutput, Result, Rng,
};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::blocks::{check_classes, check_input, MapShape};

/// Blocks per layer of ResNet18.
const RESNET18_BLOCKS: [usize; 4] = [2, 2, 2, 2];
/// Width and stride of the four layers.
const LAYERS: [(usize, usize); 4] = [(64, 1), (128, 2), (256, 2), (512, 2)];
/// Width of the stem conv.
const STEM_WIDTH: usize = 64;
/// The kernel of `ResNet`'s final `F.avg_pool2d(out, 4)`.
const FINAL_POOL: usize = 4;

/// ResNet has no settings; the empty config keeps the registry uniform and refuses unknown keys.
/// All four variants share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {}

/// How a block that halves the map does so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Downsample {
    /// `BasicBlock`: stride 2 in the first conv and the shortcut conv.
    Stride,
    /// `BasicBlock_AP`: stride 1 everywhere, then 2x2 average pooling.
    AvgPool,
}

/// A ResNet variant.
#[derive(Debug, Clone, Copy)]
struct ResNetVariant {
    /// The registered name, for messages.
    name: &'static str,
    blocks: [usize; 4],
    norm: NormKind,
    downsample: Downsample,
}

impl ResNetVariant {
    fn architecture(self) -> Result<Box<dyn Architecture>> {
        NetworkFamily::boxed(self, self.norm == NormKind::BatchNorm, build)
    }
}

/// A conv without bias, as every conv of the reference ResNets.
fn conv(
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<Conv2d> {
    let config = Conv2dConfig {
        stride,
        padding: k / 2,
        bias: false,
    };
    Conv2d::new(in_c, out_c, k, config, dtype, device, rng)
}

/// The norm of `kind` for the current map of `shape`.
fn norm(kind: NormKind, shape: &MapShape, dtype: DType, device: &Device) -> Result<Norm> {
    let ImageShape {
        channels,
        height,
        width,
    } = shape.current;
    Norm::new(kind, channels, height, width, dtype, device)
}

/// One `BasicBlock` (or `BasicBlock_AP` when `pool`).
#[derive(Debug)]
struct BasicBlock {
    conv1: Conv2d,
    norm1: Norm,
    conv2: Conv2d,
    norm2: Norm,
    /// Conv 1x1 and norm, where the block changes width or size.
    shortcut: Option<(Conv2d, Norm)>,
    /// 2x2 average pooling after the first conv's ReLU and after the shortcut conv.
    pool: bool,
}

impl BasicBlock {
    /// A block from the current map of `shape` to `planes` channels; `shape` moves to its output.
    #[allow(clippy::too_many_arguments)]
    fn new(
        shape: &mut MapShape,
        planes: usize,
        stride: usize,
        downsample: Downsample,
        kind: NormKind,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let in_planes = shape.current.channels;
        let before = *shape;
        let pool = downsample == Downsample::AvgPool && stride != 1;
        let conv_stride = if downsample == Downsample::Stride { stride } else { 1 };
        let conv1 = conv(in_planes, planes, 3, conv_stride, dtype, device, rng)?;
        shape.conv(planes, 3, 1, conv_stride)?;
        let norm1 = norm(kind, shape, dtype, device)?;
        if pool {
            shape.pool(2)?;
        }
        let conv2 = conv(planes, planes, 3, 1, dtype, device, rng)?;
        let norm2 = norm(kind, shape, dtype, device)?;
        let shortcut = if stride != 1 || in_planes != planes {
            // The 1x1 conv with the same stride (or the same pooling) lands on the same size
            // as the main path: floor((h - 1) / 2) + 1 (or floor(h / 2)) both ways. The
            // reference's `_AP` shortcut pools even at stride 1; ResNet18 has no such block.
            let mut short = before;
            short.conv(planes, 1, 0, conv_stride)?;
            if pool {
                short.pool(2)?;
            }
            let short_conv = conv(in_planes, planes, 1, conv_stride, dtype, device, rng)?;
            Some((short_conv, norm(kind, &short, dtype, device)?))
        } else {
            None
        };
        Ok(Self {
            conv1,
            norm1,
            conv2,
            norm2,
            shortcut,
            pool,
        })
    }

    /// # Shapes
    /// `[n, in_planes, h, w] -> [n, planes, h', w']`.
    fn forward(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let z = self.conv1.forward_with(x, params)?;
        let mut out = self
            .norm1
            .forward_activated_with(&z, mode, Activation::Relu, false, params)?;
        if self.pool {
            out = avg_pool2x2(&out)?;
        }
        let z = self.conv2.forward_with(&out, params)?;
        let out = self.norm2.forward_with(&z, mode, params)?;
        // Taken after the main path's, as `parameters()` lists them.
        let short = match &self.shortcut {
            None => x.clone(),
            Some((conv, norm)) => {
                let s = conv.forward_with(x, params)?;
                norm.forward_with(&if self.pool { avg_pool2x2(&s)? } else { s }, mode, params)?
            }
        };
        relu(&(out + short)?)
    }

    /// norm1, norm2, then the shortcut's norm, where they are BatchNorm (forward order).
    fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let short = self.shortcut.as_ref().map(|(_, n)| n);
        [Some(&self.norm1), Some(&self.norm2), short]
            .into_iter()
            .flatten()
            .filter_map(Norm::as_batch_norm)
            .collect()
    }

    /// conv1, norm1, conv2, norm2, then the shortcut's conv and norm (PyTorch's order).
    fn parameters(&self) -> Vec<Var> {
        let main = [
            self.conv1.parameters(),
            self.norm1.parameters(),
            self.conv2.parameters(),
            self.norm2.parameters(),
        ];
        let short = self
            .shortcut
            .iter()
            .flat_map(|(c, n)| c.parameters().into_iter().chain(n.parameters()));
        main.into_iter().flatten().chain(short).collect()
    }
}

/// A built ResNet. `parameters()` order: stem conv weight, stem norm weight and bias, each
/// block's (see [`BasicBlock::parameters`]), the classifier weight and bias.
#[derive(Debug)]
struct ResNet {
    name: &'static str,
    stem: Conv2d,
    stem_norm: Norm,
    layers: Vec<Vec<BasicBlock>>,
    final_pool: bool,
    classifier: Linear,
    input: ImageShape,
}

/// The one builder behind every ResNet variant.
fn build(
    arch: &ResNetVariant,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<ResNet> {
    check_classes(arch.name, classes)?;
    let mut shape = MapShape::new(arch.name, input)?;
    let stem = conv(input.channels, STEM_WIDTH, 3, 1, dtype, device, rng)?;
    shape.conv(STEM_WIDTH, 3, 1, 1)?;
    let stem_norm = norm(arch.norm, &shape, dtype, device)?;
    let mut layers = Vec::with_capacity(LAYERS.len());
    for (&(planes, stride), &count) in LAYERS.iter().zip(&arch.blocks) {
        let strides = std::iter::once(stride).chain(std::iter::repeat(1)).take(count);
        let layer = strides
            .map(|s| BasicBlock::new(&mut shape, planes, s, arch.downsample, arch.norm, dtype, device, rng))
            .collect::<Result<Vec<_>>>()?;
        layers.push(layer);
    }
    let final_pool = arch.downsample == Downsample::Stride;
    if final_pool {
        shape.pool(FINAL_POOL)?;
    }
    let classifier = Linear::new(shape.current.numel(), classes, dtype, device, rng)?;
    Ok(ResNet {
        name: arch.name,
        stem,
        stem_norm,
        layers,
        final_pool,
        classifier,
        input,
    })
}

impl Network for ResNet {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<NetworkOutput> {
        check_input(self.name, x, self.input)?;
        let z = self.stem.forward_with(x, params)?;
        let mut out = self
            .stem_norm
            .forward_activated_with(&z, mode, Activation::Relu, false, params)?;
        let mut features = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            for block in layer {
                out = block.forward(params, &out, mode)?;
            }
            features.push(out.clone());
        }
        if self.final_pool {
            out = avg_pool_k(&out, FINAL_POOL)?;
        }
        let embedding = out.flatten_from(1)?;
        let logits = self.classifier.forward_with(&embedding, params)?;
        Ok(NetworkOutput {
            logits,
            embedding,
            block_features: features,
        })
    }

    fn parameters(&self) -> Vec<Var> {
        let stem = self.stem.parameters().into_iter().chain(self.stem_norm.parameters());
        let blocks = self.layers.iter().flatten().flat_map(|b| b.parameters());
        stem.chain(blocks).chain(self.classifier.parameters()).collect()
    }

    fn has_batch_norm(&self) -> bool {
        self.stem_norm.is_batch_norm()
    }

    fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        let blocks = self.layers.iter().flatten().flat_map(|b| b.batch_norms());
        self.stem_norm.as_batch_norm().into_iter().chain(blocks).collect()
    }
}

/// Declares a registered ResNet18 variant.
macro_rules! resnet18 {
    ($name:literal, $description:literal, $norm:expr, $downsample:expr) => {
        register_architecture!($name, $description, ResNetConfig, |_: ResNetConfig| -> Result<
            Box<dyn Architecture>,
        > {
            ResNetVariant {
                name: $name,
                blocks: RESNET18_BLOCKS,
                norm: $norm,
                downsample: $downsample,
            }
            .architecture()
        });
    };
}

resnet18!(
    "resnet18",
    "DC's ResNet18: basic blocks 2-2-2-2, widths 64-512, instance norm, stride-2 downsampling, avg pool 4",
    NormKind::InstanceNorm,
    Downsample::Stride
);
resnet18!(
    "resnet18bn",
    "DC's ResNet18BN: ResNet18 with BatchNorm",
    NormKind::BatchNorm,
    Downsample::Stride
);
resnet18!(
    "resnet18_ap",
    "DC's ResNet18_AP: ResNet18 downsampling with 2x2 average pooling instead of stride 2",
    NormKind::InstanceNorm,
    Downsample::AvgPool
);
resnet18!(
    "resnet18bn_ap",
    "DC's ResNet18BN_AP: ResNet18_AP with BatchNorm",
    NormKind::BatchNorm,
    Downsample::AvgPool
);
