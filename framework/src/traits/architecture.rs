//! `Architecture` builds networks; `Network` is one built, trainable network.

use candle_core::{DType, Device, Tensor, Var};

use crate::{ImageShape, Result, Rng};

/// Whether a forward pass trains (BatchNorm uses and updates batch statistics) or evaluates
/// (BatchNorm uses its running statistics), as PyTorch's `net.train()` / `net.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// Everything one forward pass yields.
///
/// # Shapes
/// - `logits`: `[n, classes]`
/// - `embedding`: `[n, d]`, the flattened input of the final classifier
/// - `block_features`: one tensor per block, each block's output after its activation and
///   before its pooling (`[n, c, h, w]` for convolutional blocks, `[n, d]` for dense ones).
///   CAFE aligns these layer by layer.
#[derive(Debug, Clone)]
pub struct NetworkOutput {
    pub logits: Tensor,
    pub embedding: Tensor,
    pub block_features: Vec<Tensor>,
}

/// A built network. Its parameters are `Var`s so that optimisers update them in place.
pub trait Network: Send + Sync {
    /// Forward pass of a batch `[n, c, h, w]` in normalised image space.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<NetworkOutput>;

    /// The trainable parameters, in a fixed order (DC matches gradients tensor by tensor).
    fn parameters(&self) -> Vec<Var>;

    /// True when the network has BatchNorm layers (their running statistics matter in
    /// `Mode::Eval`, and DC estimates them on real images before matching).
    fn has_batch_norm(&self) -> bool {
        false
    }

    /// Only the logits; a convenience for training and testing. A network may override it
    /// with a cheaper path that skips the block features (ConvNet keeps less for backward).
    fn logits(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward(x, mode)?.logits)
    }

    /// Only the embedding (DM matches these); overridable like [`Network::logits`].
    fn embedding(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward(x, mode)?.embedding)
    }
}

/// A network family with fixed hyper-parameters (e.g. ConvNet of width 128 and depth 3).
pub trait Architecture: Send + Sync {
    /// Builds a freshly initialised network for images of `input` shape and `classes` outputs.
    /// Initial weights come from `rng` only, so that a seed fixes them (candle's CPU RNG
    /// cannot be seeded).
    fn build(
        &self,
        input: ImageShape,
        classes: usize,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Box<dyn Network>>;

    /// True when the networks it builds use BatchNorm.
    fn uses_batch_norm(&self) -> bool {
        false
    }
}
