//! Shared setup of cafe-lab's benchmarks: the default ConvNet as registered, and the same
//! network (sharing its parameters) run with candle's built-in layers, so that benches compare
//! implementations on identical numbers; and the workloads timed beside PyTorch
//! ([`workloads`], run by the `cafe-workload` binary and `scripts/bench/side_by_side.py`).

pub mod live_bytes;
pub mod random_data;
pub mod runner;
pub mod threads;
pub mod workloads;

use cafe_framework::nn::{
    avg_pool2x2, avg_pool2x2_with_tensor_ops, group_normalize, group_normalize_with_tensor_ops, relu,
};
use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Architecture, ImageShape, Mode, Network, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;

/// Keeps the plugins, and so the registered `convnet`, linked (CANDLE_NOTES 7).
use cafe_plugins as _;

/// Fashion-MNIST-sized input and classes of every benchmark, and the batch of a forward+backward.
pub const INPUT: ImageShape = ImageShape::new(1, 28, 28);
pub const CLASSES: usize = 10;
pub const BATCH: usize = 256;

/// How the benchmark network computes its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The registered ConvNet: cafe-lab's fast convolution and fused CPU layers.
    Fast,
    /// The same layers, but candle's built-in `conv2d` (and its autograd) for the convolutions.
    CandleConv,
    /// Everything with candle's built-in ops: `conv2d`, broadcast arithmetic for the norm's
    /// statistics and affine, reshape + sum pooling, `relu`.
    CandleAll,
}

impl Path {
    pub const ALL: [Path; 3] = [Path::Fast, Path::CandleConv, Path::CandleAll];

    pub fn name(self) -> &'static str {
        match self {
            Path::Fast => "fast",
            Path::CandleConv => "candle_conv",
            Path::CandleAll => "candle_all",
        }
    }
}

/// The default ConvNet (width 128, depth 3, instance norm, ReLU, average pooling) in f32, and
/// a batch of `BATCH` random images, both from fixed seeds.
pub struct Setup {
    pub net: Box<dyn Network>,
    pub params: Vec<Var>,
    pub images: Tensor,
}

impl Setup {
    pub fn new() -> Result<Self> {
        let arch = find::<dyn Architecture>("convnet")?.instantiate(&serde_json::json!({}))?;
        let net = arch.build(INPUT, CLASSES, DType::F32, &Device::Cpu, &mut rng_from_seed(0))?;
        let params = net.parameters();
        let mut rng = rng_from_seed(1);
        let data: Vec<f32> = (0..BATCH * INPUT.numel())
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        let images = Tensor::from_vec(data, &INPUT.batch_dims(BATCH), &Device::Cpu)?;
        Ok(Self { net, params, images })
    }

    /// The logits along `path`.
    pub fn forward(&self, path: Path) -> Result<Tensor> {
        if path == Path::Fast {
            return Ok(self.net.forward(&self.images, Mode::Train)?.logits);
        }
        // parameters(): per block conv weight, conv bias, norm weight, norm bias; classifier last.
        let p: Vec<&Tensor> = self.params.iter().map(|v| v.as_tensor()).collect();
        let mut x = self.images.clone();
        for (block, b) in p[..12].chunks_exact(4).enumerate() {
            let padding = if block == 0 { 3 } else { 1 };
            let c = b[1].dim(0)?;
            let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
            let y = x.conv2d(b[0], padding, 1, 1, 1)?.broadcast_add(&per_channel(b[1])?)?;
            x = if path == Path::CandleConv {
                let y = group_normalize(&y, c, 1e-5)?
                    .broadcast_mul(&per_channel(b[2])?)?
                    .broadcast_add(&per_channel(b[3])?)?;
                avg_pool2x2(&relu(&y)?)?
            } else {
                let y = group_normalize_with_tensor_ops(&y, c, 1e-5)?;
                let y = y
                    .broadcast_mul(&per_channel(b[2])?)?
                    .broadcast_add(&per_channel(b[3])?)?;
                avg_pool2x2_with_tensor_ops(&y.relu()?)?
            };
        }
        Ok(x.flatten_from(1)?.matmul(&p[12].t()?)?.broadcast_add(p[13])?)
    }

    /// One forward and backward pass of a scalar loss (the logits' sum) along `path`.
    pub fn forward_backward(&self, path: Path) -> Result<()> {
        let grads = self.forward(path)?.sum_all()?.backward()?;
        // Every parameter must have been reached, or the timing would flatter the path.
        if self.params.iter().any(|p| grads.get(p).is_none()) {
            return Err(cafe_framework::Error::Other(format!(
                "{}: a parameter got no gradient",
                path.name()
            )));
        }
        Ok(())
    }
}

/// Largest absolute difference between the logits of two paths.
pub fn max_difference(setup: &Setup, a: Path, b: Path) -> Result<f32> {
    let d = (setup.forward(a)? - setup.forward(b)?)?.abs()?.flatten_all()?.max(0)?;
    Ok(d.to_scalar::<f32>()?)
}
