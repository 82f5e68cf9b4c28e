//! ConvNet, the default network of dataset condensation (Gidaris & Komodakis 2018, as used by
//! DC, DSA, DM and CAFE), and its named variants.
//!
//! `depth` blocks of [conv 3x3 `width` -> norm -> activation -> 2x2 pooling], then a linear
//! classifier on the flattened features; it mirrors `ConvNet` of DC's `networks.py`. The first
//! conv of a 1-channel 28x28 input is padded by 3 (28 -> 32, as DC resizes MNIST-like data to
//! 32x32 features), every other conv by 1.
//!
//! One private builder serves `convnet` (fully configurable) and the thin presets named as in
//! DC: W = width, D = depth, A(S/R/L) = activation, N(N/B/L/I/G) = norm, P(N/M/A) = pooling.

use std::marker::PhantomData;

use cafe_framework::nn::norm::DC_GROUP_NORM_GROUPS;
use cafe_framework::nn::{Activation, BatchNorm2d, Conv2d, Conv2dConfig, Linear, Norm, NormKind, ParamSource, Pooling};
use cafe_framework::registry::merge_json;
use cafe_framework::{
    register_architecture, Architecture, Error, ImageShape, Mode, Network, NetworkFamily, NetworkOutput, Result, Rng,
};
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The hyper-parameters of a ConvNet; the defaults are DC's `ConvNet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvNetConfig {
    /// Channels of every conv layer.
    pub width: usize,
    /// Number of conv blocks.
    pub depth: usize,
    pub activation: Activation,
    pub norm: NormKind,
    pub pooling: Pooling,
}

impl Default for ConvNetConfig {
    fn default() -> Self {
        Self {
            width: 128,
            depth: 3,
            activation: Activation::Relu,
            norm: NormKind::InstanceNorm,
            pooling: Pooling::AvgPooling,
        }
    }
}

impl ConvNetConfig {
    /// Checks the settings that can be checked without an input shape.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 {
            return Err(Error::invalid("convnet.width", self.width, "must be at least 1"));
        }
        if self.depth == 0 {
            return Err(Error::invalid("convnet.depth", self.depth, "must be at least 1"));
        }
        if self.norm == NormKind::GroupNorm && !self.width.is_multiple_of(DC_GROUP_NORM_GROUPS) {
            return Err(Error::invalid(
                "convnet.width",
                self.width,
                "groupnorm uses 4 groups: width must be a multiple of 4",
            ));
        }
        Ok(())
    }

    /// The architecture these settings describe.
    pub fn architecture(self) -> Result<Box<dyn Architecture>> {
        self.validate()?;
        NetworkFamily::boxed(self, self.norm == NormKind::BatchNorm, build)
    }
}

/// One [conv -> norm -> activation -> pooling] block.
#[derive(Debug)]
struct Block {
    conv: Conv2d,
    norm: Norm,
}

/// A built ConvNet.
///
/// `parameters()` order: for each block, conv weight, conv bias, then norm weight and norm
/// bias (absent for `norm = none`); last the classifier weight and bias. This is the order of
/// `named_parameters()` of DC's PyTorch ConvNet.
#[derive(Debug)]
struct ConvNet {
    blocks: Vec<Block>,
    activation: Activation,
    pooling: Pooling,
    classifier: Linear,
    input: ImageShape,
}

/// The one builder behind every ConvNet variant.
fn build(
    config: &ConvNetConfig,
    input: ImageShape,
    classes: usize,
    dtype: DType,
    device: &Device,
    rng: &mut Rng,
) -> Result<ConvNet> {
    config.validate()?;
    if classes == 0 {
        return Err(Error::invalid("convnet classes", classes, "must be at least 1"));
    }
    let (mut channels, mut h, mut w) = (input.channels, input.height, input.width);
    let mut blocks = Vec::with_capacity(config.depth);
    for d in 0..config.depth {
        let padding = if d == 0 && input.channels == 1 && h == 28 && w == 28 {
            3
        } else {
            1
        };
        let conv = Conv2d::new(
            channels,
            config.width,
            3,
            Conv2dConfig {
                stride: 1,
                padding,
                bias: true,
            },
            dtype,
            device,
            rng,
        )?;
        (channels, h, w) = (config.width, h + 2 * padding - 2, w + 2 * padding - 2);
        let norm = Norm::new(config.norm, channels, h, w, dtype, device)?;
        blocks.push(Block { conv, norm });
        if config.pooling != Pooling::None && (h < 2 || w < 2) {
            return Err(Error::invalid(
                "convnet.depth",
                config.depth,
                format!(
                    "block {} would pool a {h}x{w} map of a {input} input; use a smaller depth",
                    d + 1
                ),
            ));
        }
        (h, w) = config.pooling.output_size(h, w);
    }
    let classifier = Linear::new(channels * h * w, classes, dtype, device, rng)?;
    Ok(ConvNet {
        blocks,
        activation: config.activation,
        pooling: config.pooling,
        classifier,
        input,
    })
}

impl ConvNet {
    /// The forward pass; `block_features` are collected only when `keep_features`. Without
    /// them, average pooling joins the fused norm-activation op, so a block keeps only its
    /// input and its pooled output for the backward pass (a fifth of its activations).
    fn run(&self, params: &mut ParamSource, x: &Tensor, mode: Mode, keep_features: bool) -> Result<NetworkOutput> {
        let expected = self.input;
        match x.dims() {
            &[_, c, h, w] if ImageShape::new(c, h, w) == expected => {}
            d => {
                return Err(Error::invalid(
                    "convnet input",
                    format!("{d:?}"),
                    format!("must be [n, {expected}] (n, c, h, w)"),
                ))
            }
        }
        let fuse_pool = !keep_features && self.pooling == Pooling::AvgPooling;
        let mut features = Vec::with_capacity(if keep_features { self.blocks.len() } else { 0 });
        let mut x = x.clone();
        for block in &self.blocks {
            let z = block.conv.forward_with(&x, params)?;
            let y = block
                .norm
                .forward_activated_with(&z, mode, self.activation, fuse_pool, params)?;
            if fuse_pool {
                x = y;
            } else {
                x = self.pooling.forward(&y)?;
                if keep_features {
                    features.push(y);
                }
            }
        }
        let embedding = x.flatten_from(1)?;
        let logits = self.classifier.forward_with(&embedding, params)?;
        Ok(NetworkOutput {
            logits,
            embedding,
            block_features: features,
        })
    }
}

impl Network for ConvNet {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<NetworkOutput> {
        self.run(params, x, mode, true)
    }

    fn logits_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.run(params, x, mode, false)?.logits)
    }

    fn embedding_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.run(params, x, mode, false)?.embedding)
    }

    fn parameters(&self) -> Vec<Var> {
        let blocks = self
            .blocks
            .iter()
            .flat_map(|b| b.conv.parameters().into_iter().chain(b.norm.parameters()));
        blocks.chain(self.classifier.parameters()).collect()
    }

    fn has_batch_norm(&self) -> bool {
        self.blocks.iter().any(|b| b.norm.is_batch_norm())
    }

    fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        self.blocks.iter().filter_map(|b| b.norm.as_batch_norm()).collect()
    }
}

register_architecture!(
    "convnet",
    "DC's ConvNet: depth x [conv3x3 width, norm, act, pool 2x2], linear classifier; all settings configurable",
    ConvNetConfig,
    |config: ConvNetConfig| -> Result<Box<dyn Architecture>> { config.architecture() }
);

/// The settings a named variant starts from.
trait Preset: 'static {
    fn config() -> ConvNetConfig;
}

/// A variant's config: the same keys as [`ConvNetConfig`], defaulting to the variant's values
/// (missing keys take the variant's value, not `convnet`'s), so `cafe-lab list` shows what each
/// variant is and tests can still shrink its width.
struct Tuned<P: Preset>(ConvNetConfig, PhantomData<P>);

impl<P: Preset> Default for Tuned<P> {
    fn default() -> Self {
        Self(P::config(), PhantomData)
    }
}

impl<P: Preset> Serialize for Tuned<P> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, P: Preset> Deserialize<'de> for Tuned<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let patch = serde_json::Value::deserialize(d)?;
        let mut config = serde_json::to_value(P::config()).map_err(D::Error::custom)?;
        merge_json(&mut config, &patch);
        Ok(Self(
            serde_json::from_value(config).map_err(D::Error::custom)?,
            PhantomData,
        ))
    }
}

/// Declares a preset marker type and registers it under `$name`.
macro_rules! preset {
    ($marker:ident, $name:literal, $description:literal, { $($field:ident: $value:expr),* }) => {
        struct $marker;
        impl Preset for $marker {
            fn config() -> ConvNetConfig {
                ConvNetConfig { $($field: $value,)* ..ConvNetConfig::default() }
            }
        }
        register_architecture!($name, $description, Tuned<$marker>, |c: Tuned<$marker>| -> Result<Box<dyn Architecture>> {
            c.0.architecture()
        });
    };
}

preset!(W32, "convnetw32", "ConvNet of width 32", { width: 32 });
preset!(W64, "convnetw64", "ConvNet of width 64", { width: 64 });
preset!(W128, "convnetw128", "ConvNet of width 128 (the default)", { width: 128 });
preset!(W256, "convnetw256", "ConvNet of width 256", { width: 256 });
preset!(D1, "convnetd1", "ConvNet of depth 1", { depth: 1 });
preset!(D2, "convnetd2", "ConvNet of depth 2", { depth: 2 });
preset!(D3, "convnetd3", "ConvNet of depth 3 (the default)", { depth: 3 });
preset!(D4, "convnetd4", "ConvNet of depth 4", { depth: 4 });
preset!(AS, "convnetas", "ConvNet with sigmoid activations", { activation: Activation::Sigmoid });
preset!(AR, "convnetar", "ConvNet with ReLU activations (the default)", { activation: Activation::Relu });
preset!(AL, "convnetal", "ConvNet with leaky ReLU (slope 0.01) activations", { activation: Activation::LeakyRelu });
preset!(NN, "convnetnn", "ConvNet without normalisation", { norm: NormKind::None });
preset!(BN, "convnetbn", "ConvNet with batch norm", { norm: NormKind::BatchNorm });
preset!(LN, "convnetln", "ConvNet with layer norm over (C, H, W)", { norm: NormKind::LayerNorm });
preset!(IN, "convnetin", "ConvNet with instance norm (the default)", { norm: NormKind::InstanceNorm });
preset!(GN, "convnetgn", "ConvNet with group norm, 4 groups", { norm: NormKind::GroupNorm });
preset!(NP, "convnetnp", "ConvNet without pooling", { pooling: Pooling::None });
preset!(MP, "convnetmp", "ConvNet with 2x2 max pooling", { pooling: Pooling::MaxPooling });
preset!(AP, "convnetap", "ConvNet with 2x2 average pooling (the default)", { pooling: Pooling::AvgPooling });
