//! `Architecture` builds networks; `Network` is one built, trainable network.

use candle_core::{DType, Device, Tensor, Var};

use crate::nn::{BatchNorm2d, ParamSource};
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
///
/// Every pass exists in two forms: on the network's own `Var`s (`forward`, `logits`,
/// `embedding`), and on parameters supplied as tensors in the order of
/// [`Network::parameters`] (`forward_with`, `logits_with`, `embedding_with`), so that a
/// student unrolled through SGD steps (MTT) stays one differentiable graph from its starting
/// parameters, the synthetic pixels and the step size to its final parameters. Both are one
/// code path: an implementation writes the `_from` methods, which take each parameter from a
/// [`ParamSource`], and the rest are provided. On given parameters a network's own state is
/// never changed: BatchNorm normalises with the batch statistics in `Mode::Train` without
/// moving its running statistics, and uses them in `Mode::Eval` (they are buffers, not
/// parameters).
pub trait Network: Send + Sync {
    /// The forward pass of a batch `[n, c, h, w]` in normalised image space, with every
    /// parameter taken from `params` (one [`ParamSource::take`] per `Var`, in the order of
    /// [`Network::parameters`]).
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<NetworkOutput>;

    /// The trainable parameters, in a fixed order (DC matches gradients tensor by tensor).
    fn parameters(&self) -> Vec<Var>;

    /// True when the network has BatchNorm layers (their running statistics matter in
    /// `Mode::Eval`, and DC estimates them on real images before matching).
    fn has_batch_norm(&self) -> bool {
        false
    }

    /// The BatchNorm layers in forward order (PyTorch's `modules()` order for every registered
    /// network), whose running statistics are buffers, not parameters: a teacher file keeps
    /// them beside the parameters (`crate::teacher`). Empty for a network without BatchNorm.
    fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        Vec::new()
    }

    /// Only the logits. A network may override it with a cheaper path that skips the block
    /// features (ConvNet keeps less for backward); the values must be those of `forward_from`.
    fn logits_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward_from(params, x, mode)?.logits)
    }

    /// Only the embedding (DM matches these); overridable like [`Network::logits_from`].
    fn embedding_from(&self, params: &mut ParamSource, x: &Tensor, mode: Mode) -> Result<Tensor> {
        Ok(self.forward_from(params, x, mode)?.embedding)
    }

    /// Forward pass on the network's own parameters.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<NetworkOutput> {
        self.forward_from(&mut ParamSource::own(), x, mode)
    }

    /// Only the logits, on the network's own parameters; a convenience for training and testing.
    fn logits(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.logits_from(&mut ParamSource::own(), x, mode)
    }

    /// Only the embedding, on the network's own parameters.
    fn embedding(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.embedding_from(&mut ParamSource::own(), x, mode)
    }

    /// Forward pass with `params` in place of [`Network::parameters`] (same order, shapes and
    /// dtypes; anything else is an error). Gradients flow to `params`. candle's backward keeps
    /// the gradients of `Var`s only, so the gradient at parameters that are themselves results
    /// (an unrolled step's `theta_1`) is read at a zero `Var` added to them
    /// (`plugins/tests/unrolled_sgd_gradcheck.rs`).
    fn forward_with(&self, params: &[Tensor], x: &Tensor, mode: Mode) -> Result<NetworkOutput> {
        with_given(params, |p| self.forward_from(p, x, mode))
    }

    /// [`Network::logits`] with `params`, through the same cheaper path where there is one.
    fn logits_with(&self, params: &[Tensor], x: &Tensor, mode: Mode) -> Result<Tensor> {
        with_given(params, |p| self.logits_from(p, x, mode))
    }

    /// [`Network::embedding`] with `params`.
    fn embedding_with(&self, params: &[Tensor], x: &Tensor, mode: Mode) -> Result<Tensor> {
        with_given(params, |p| self.embedding_from(p, x, mode))
    }
}

/// Runs `pass` on `params` and checks that it used every one of them.
fn with_given<T>(params: &[Tensor], pass: impl FnOnce(&mut ParamSource) -> Result<T>) -> Result<T> {
    let mut source = ParamSource::given(params);
    let out = pass(&mut source)?;
    source.finish()?;
    Ok(out)
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
