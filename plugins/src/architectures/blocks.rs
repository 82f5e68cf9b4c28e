//! Pieces shared by the networks of DC's `networks.py`
//! (<https://github.com/VICO-UoE/DatasetCondensation>) other than ConvNet: input and class
//! checks, a tracker of feature-map shapes that refuses inputs too small for a net at build time,
//! and the [conv -> norm -> ReLU] units with max pooling that make the features of LeNet,
//! AlexNet and VGG.

use cafe_framework::nn::{max_pool2x2, Activation, BatchNorm2d, Conv2d, Conv2dConfig, Norm, NormKind, ParamSource};
use cafe_framework::{Error, ImageShape, Mode, Result, Rng};
use candle_core::{DType, Device, Tensor, Var};

/// Refuses a network without classes.
pub(crate) fn check_classes(net: &str, classes: usize) -> Result<()> {
    if classes == 0 {
        return Err(Error::invalid(format!("{net} classes"), classes, "must be at least 1"));
    }
    Ok(())
}

/// Refuses a batch whose images are not the shape the network was built for.
pub(crate) fn check_input(net: &str, x: &Tensor, expected: ImageShape) -> Result<()> {
    match x.dims() {
        &[_, c, h, w] if ImageShape::new(c, h, w) == expected => Ok(()),
        d => Err(Error::invalid(
            format!("{net} input"),
            format!("{d:?}"),
            format!("must be [n, {expected}] (n, c, h, w)"),
        )),
    }
}

/// The shape of the feature map while a network is being built, so that an input too small for
/// a layer is an error naming the layer instead of a failure deep inside the first forward.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapShape {
    net: &'static str,
    input: ImageShape,
    pub(crate) current: ImageShape,
}

impl MapShape {
    pub(crate) fn new(net: &'static str, input: ImageShape) -> Result<Self> {
        if input.numel() == 0 {
            return Err(Error::invalid(
                format!("{net} input"),
                input,
                "every dimension must be positive",
            ));
        }
        Ok(Self {
            net,
            input,
            current: input,
        })
    }

    fn too_small(&self, layer: &str, need: String) -> Error {
        let ImageShape {
            height: h, width: w, ..
        } = self.current;
        Error::invalid(
            format!("{} input", self.net),
            self.input,
            format!("too small: the {layer} sees a {h}x{w} map and needs {need}; use a larger image"),
        )
    }

    /// After a `k`x`k` convolution to `channels` with `padding` and `stride`.
    pub(crate) fn conv(&mut self, channels: usize, k: usize, padding: usize, stride: usize) -> Result<ImageShape> {
        let ImageShape {
            height: h, width: w, ..
        } = self.current;
        if h + 2 * padding < k || w + 2 * padding < k {
            return Err(self.too_small(
                &format!("{k}x{k} conv"),
                format!("at least {k}x{k} once padded by {padding}"),
            ));
        }
        let out = |len: usize| (len + 2 * padding - k) / stride + 1;
        self.current = ImageShape::new(channels, out(h), out(w));
        Ok(self.current)
    }

    /// After `k`x`k` pooling with stride `k` (floor, as PyTorch).
    pub(crate) fn pool(&mut self, k: usize) -> Result<ImageShape> {
        let ImageShape {
            channels,
            height: h,
            width: w,
        } = self.current;
        if h < k || w < k {
            return Err(self.too_small(&format!("{k}x{k} pooling"), format!("at least {k}x{k}")));
        }
        self.current = ImageShape::new(channels, h / k, w / k);
        Ok(self.current)
    }
}

/// `relu(norm(conv(x)))`: one conv layer of LeNet (no norm), AlexNet and VGG.
#[derive(Debug)]
struct ConvUnit {
    conv: Conv2d,
    norm: Norm,
}

impl ConvUnit {
    /// A `k`x`k` conv (with bias, as `nn.Conv2d`'s default) from the channels of `shape` to
    /// `channels`, stride 1, followed by `norm`; `shape` moves to the conv's output.
    #[allow(clippy::too_many_arguments)]
    fn new(
        shape: &mut MapShape,
        channels: usize,
        k: usize,
        padding: usize,
        norm: NormKind,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let in_channels = shape.current.channels;
        let out = shape.conv(channels, k, padding, 1)?;
        let config = Conv2dConfig {
            stride: 1,
            padding,
            bias: true,
        };
        let conv = Conv2d::new(in_channels, channels, k, config, dtype, device, rng)?;
        let norm = Norm::new(norm, channels, out.height, out.width, dtype, device)?;
        Ok(Self { conv, norm })
    }

    /// # Shapes
    /// `[n, in, h, w] -> [n, channels, h', w']`.
    fn forward(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let z = self.conv.forward_with(x, params)?;
        // One fused op where the norm allows it (fewer activations kept for the backward pass).
        self.norm
            .forward_activated_with(&z, mode, Activation::Relu, false, params)
    }

    /// Conv weight and bias, then norm weight and bias (PyTorch's `named_parameters` order).
    fn parameters(&self) -> Vec<Var> {
        self.conv
            .parameters()
            .into_iter()
            .chain(self.norm.parameters())
            .collect()
    }

    fn is_batch_norm(&self) -> bool {
        self.norm.is_batch_norm()
    }

    fn batch_norm(&self) -> Option<&BatchNorm2d> {
        self.norm.as_batch_norm()
    }
}

/// One entry of a plain conv network's feature extractor, as the `features` `nn.Sequential`
/// of LeNet, AlexNet and VGG in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// `ConvUnit`: conv `kernel`x`kernel` to `channels` with `padding`, norm, ReLU.
    Conv {
        channels: usize,
        kernel: usize,
        padding: usize,
    },
    /// 2x2 max pool, stride 2.
    MaxPool,
}

/// A [`ConvUnit`] and whether a 2x2 max pool follows it.
#[derive(Debug)]
struct Stage {
    unit: ConvUnit,
    pool: bool,
}

/// The feature extractor of LeNet, AlexNet and VGG: conv units, some followed by max pooling.
#[derive(Debug)]
pub(crate) struct ConvStack {
    stages: Vec<Stage>,
}

impl ConvStack {
    /// Builds `layers` with `norm` after every conv; `shape` moves to the output's shape.
    pub(crate) fn new(
        shape: &mut MapShape,
        layers: &[Layer],
        norm: NormKind,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let mut stages: Vec<Stage> = Vec::with_capacity(layers.len());
        for layer in layers {
            match *layer {
                Layer::Conv {
                    channels,
                    kernel,
                    padding,
                } => {
                    let unit = ConvUnit::new(shape, channels, kernel, padding, norm, dtype, device, rng)?;
                    stages.push(Stage { unit, pool: false });
                }
                Layer::MaxPool => {
                    shape.pool(2)?;
                    let Some(last) = stages.last_mut() else {
                        return Err(Error::Other(format!(
                            "{}: a conv stack must start with a conv",
                            shape.net
                        )));
                    };
                    last.pool = true;
                }
            }
        }
        Ok(Self { stages })
    }

    /// The output of the last layer and every conv unit's output before its pooling.
    ///
    /// # Shapes
    /// `[n, c, h, w] -> ([n, c', h', w'], one [n, c_i, h_i, w_i] per conv)`.
    pub(crate) fn forward(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<(Tensor, Vec<Tensor>)> {
        let mut features = Vec::with_capacity(self.stages.len());
        let mut x = x.clone();
        for stage in &self.stages {
            let y = stage.unit.forward(params, &x, mode)?;
            x = if stage.pool { max_pool2x2(&y)? } else { y.clone() };
            features.push(y);
        }
        Ok((x, features))
    }

    /// Each unit's parameters in order.
    pub(crate) fn parameters(&self) -> Vec<Var> {
        self.stages.iter().flat_map(|s| s.unit.parameters()).collect()
    }

    pub(crate) fn has_batch_norm(&self) -> bool {
        self.stages.iter().any(|s| s.unit.is_batch_norm())
    }

    /// The BatchNorm layers, in forward order.
    pub(crate) fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        self.stages.iter().filter_map(|s| s.unit.batch_norm()).collect()
    }
}

/// A conv stack followed by one linear classifier on its flattened output: AlexNet's and
/// VGG's shape. `parameters()` order: the stack's (per conv: weight, bias, then norm weight
/// and bias), then the classifier's weight and bias (the reference's `named_parameters` order).
#[derive(Debug)]
pub(crate) struct StackClassifier {
    pub(crate) name: &'static str,
    pub(crate) features: ConvStack,
    pub(crate) classifier: cafe_framework::nn::Linear,
    pub(crate) input: ImageShape,
}

impl cafe_framework::Network for StackClassifier {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<cafe_framework::NetworkOutput> {
        check_input(self.name, x, self.input)?;
        let (x, block_features) = self.features.forward(params, x, mode)?;
        let embedding = x.flatten_from(1)?;
        let logits = self.classifier.forward_with(&embedding, params)?;
        Ok(cafe_framework::NetworkOutput {
            logits,
            embedding,
            block_features,
        })
    }

    fn parameters(&self) -> Vec<Var> {
        self.features
            .parameters()
            .into_iter()
            .chain(self.classifier.parameters())
            .collect()
    }

    fn has_batch_norm(&self) -> bool {
        self.features.has_batch_norm()
    }

    fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        self.features.batch_norms()
    }
}
