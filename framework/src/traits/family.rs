//! `NetworkFamily`: the one [`Architecture`] implementation behind every registered network
//! family, made of the family's settings and the function that builds a network from them.
//!
//! Each family used to repeat the same adapter (a struct, `build` boxing what its builder
//! returns, `uses_batch_norm` reading its norm); a family now is its settings type and one
//! builder function, and whatever the trait needs from a family is written here once.

use candle_core::{DType, Device};

use crate::traits::architecture::{Architecture, Network};
use crate::{ImageShape, Result, Rng};

/// Builds one network of a family from its settings `S`, for images of `input` shape and
/// `classes` outputs, its initial weights drawn from `rng` only (a seed fixes them).
pub type BuildNetwork<S, N> = fn(&S, ImageShape, usize, DType, &Device, &mut Rng) -> Result<N>;

/// A network family with fixed settings (e.g. ConvNet of width 128 and depth 3), as an
/// [`Architecture`].
pub struct NetworkFamily<S, N> {
    settings: S,
    batch_norm: bool,
    build: BuildNetwork<S, N>,
}

impl<S, N> NetworkFamily<S, N>
where
    S: Send + Sync + 'static,
    N: Network + 'static,
{
    /// A family whose networks `build` makes from `settings`; `batch_norm` says whether they
    /// use BatchNorm (the engine then estimates running statistics, evaluation picks DC's
    /// augmentation for BatchNorm networks).
    pub fn new(settings: S, batch_norm: bool, build: BuildNetwork<S, N>) -> Self {
        Self {
            settings,
            batch_norm,
            build,
        }
    }

    /// [`NetworkFamily::new`], boxed as the registry's factories return it.
    pub fn boxed(settings: S, batch_norm: bool, build: BuildNetwork<S, N>) -> Result<Box<dyn Architecture>> {
        Ok(Box::new(Self::new(settings, batch_norm, build)))
    }

    pub fn settings(&self) -> &S {
        &self.settings
    }
}

impl<S, N> Architecture for NetworkFamily<S, N>
where
    S: Send + Sync + 'static,
    N: Network + 'static,
{
    fn build(
        &self,
        input: ImageShape,
        classes: usize,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Box<dyn Network>> {
        Ok(Box::new((self.build)(
            &self.settings,
            input,
            classes,
            dtype,
            device,
            rng,
        )?))
    }

    fn uses_batch_norm(&self) -> bool {
        self.batch_norm
    }
}
