//! What a run's trajectories must fit, built one way for every consumer (the `experts`
//! command, the matcher's store check, its soft-label initialisation), and where a store
//! lives by default.

use std::path::PathBuf;

use candle_core::{DType, Device};
use serde_json::Value;

use crate::data::Dataset;
use crate::rng::rng_from_seed;
use crate::traits::architecture::{Architecture, Network};
use crate::Result;

use super::store::TrajectoryKey;

/// The store folder of `dataset`'s experts of architecture `arch` when none is named:
/// `experts/<dataset>-<arch>` (the reference's `buffers/<dataset>/<model>`, mtt-distillation
/// `buffer.py:24-29`).
pub fn default_store_dir(dataset: &str, arch: &str) -> PathBuf {
    PathBuf::from("experts").join(format!("{dataset}-{arch}"))
}

/// A throwaway network of `arch` for `ds`: its structure (parameter shapes, layers) matters,
/// not its weights, which come from a fixed seed and are meant to be replaced.
pub fn probe_network(arch: &dyn Architecture, ds: &Dataset, device: &Device) -> Result<Box<dyn Network>> {
    arch.build(ds.train.shape, ds.classes, DType::F32, device, &mut rng_from_seed(0))
}

impl TrajectoryKey {
    /// The key of networks of `arch` (registered as `arch_name` with the resolved config
    /// `arch_config`) trained on `ds` as loaded (its name, whitening, image shape, classes).
    pub fn for_network(
        ds: &Dataset,
        arch: &dyn Architecture,
        arch_name: &str,
        arch_config: &Value,
        device: &Device,
    ) -> Result<Self> {
        let probe = probe_network(arch, ds, device)?;
        Ok(Self {
            dataset: ds.name.clone(),
            zca: ds.zca.as_ref().map(|z| z.eps),
            image_shape: ds.train.shape,
            classes: ds.classes,
            arch: arch_name.to_string(),
            arch_config: arch_config.clone(),
            parameter_shapes: probe.parameters().iter().map(|p| p.dims().to_vec()).collect(),
        })
    }
}
