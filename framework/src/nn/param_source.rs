//! Where a layer takes its parameters from in one forward pass: its own `Var`s, or tensors the
//! caller supplies in the order of `Network::parameters()`.
//!
//! Trajectory matching (MTT, Cazenavette et al. 2022) unrolls SGD on a student whose
//! parameters are *tensors of a graph* (`theta_1 = theta_0 - lr * grad`), not the `Var`s a
//! network owns, so that the final loss differentiates back to the synthetic pixels and the
//! step size through every update. The reference does this by swapping the module's parameters
//! for views of one flat tensor (`reparam_module.py`); here every layer asks a `ParamSource`
//! for the tensor standing in for each of its `Var`s. There is one code path: `forward` is the
//! same pass with [`ParamSource::own`], which hands back each `Var`'s own tensor (the same
//! tensor, so outputs and gradients are exactly those of before).

use candle_core::{Tensor, Var};

use crate::{Error, Result};

/// The parameters of one forward pass. Layers call [`ParamSource::take`] once per `Var`, in
/// the order of `Network::parameters()`.
#[derive(Debug)]
pub struct ParamSource<'a> {
    /// `None`: each layer's own `Var`s. `Some`: the supplied tensors and how many were taken.
    given: Option<(&'a [Tensor], usize)>,
}

impl<'a> ParamSource<'a> {
    /// Each layer's own parameters (an ordinary forward pass).
    pub fn own() -> Self {
        Self { given: None }
    }

    /// `tensors` in place of the layers' parameters, in the order of `Network::parameters()`.
    pub fn given(tensors: &'a [Tensor]) -> Self {
        Self {
            given: Some((tensors, 0)),
        }
    }

    /// True for [`ParamSource::own`]: the pass may update the network's own state (BatchNorm's
    /// running statistics); a pass on given parameters leaves the network untouched.
    pub fn is_own(&self) -> bool {
        self.given.is_none()
    }

    /// The tensor to use for the layer parameter `var`: `var` itself, or the next given
    /// tensor, which must have `var`'s shape and dtype (a list in another order, or for
    /// another network, is an error naming the position).
    pub fn take(&mut self, var: &Var) -> Result<Tensor> {
        let Some((tensors, next)) = &mut self.given else {
            return Ok(var.as_tensor().clone());
        };
        let index = *next;
        let Some(t) = tensors.get(index) else {
            return Err(Error::Other(format!(
                "forward_with: {} parameter tensors given, but the network has more (its parameter {index} \
                 is {:?}); pass one tensor per Network::parameters() entry, in that order",
                tensors.len(),
                var.dims()
            )));
        };
        if t.dims() != var.dims() || t.dtype() != var.dtype() {
            return Err(Error::Other(format!(
                "forward_with: parameter tensor {index} is {:?} {:?}, but the network's parameter {index} is \
                 {:?} {:?}; pass the tensors in the order of Network::parameters()",
                t.dims(),
                t.dtype(),
                var.dims(),
                var.dtype()
            )));
        }
        *next += 1;
        Ok(t.clone())
    }

    /// Checks that every given tensor was used: a longer list belongs to another network.
    pub fn finish(&self) -> Result<()> {
        match self.given {
            Some((tensors, used)) if used != tensors.len() => Err(Error::Other(format!(
                "forward_with: {} parameter tensors given, but the network has {used}; pass one tensor \
                 per Network::parameters() entry",
                tensors.len()
            ))),
            _ => Ok(()),
        }
    }
}
