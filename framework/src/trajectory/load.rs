//! Reading an expert store for a condensation: every expert file of a folder (those that
//! `cafe-lab experts` wrote), each checked against the run, each holding the epochs the
//! matcher will read.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::traits::matcher::PrepareContext;
use crate::{Error, Result};

use super::store::{ExpertRecord, ExpertTrajectory, TrajectoryKey};

/// The expert files of `dir` (`expert_NNNN.safetensors`), in index order.
pub fn expert_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::io(
            format!(
                "reading the expert store {} (train one with `cafe-lab experts --dataset D --arch A --out {}`)",
                dir.display(),
                dir.display()
            ),
            e,
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("expert_") && n.ends_with(".safetensors") && !n.contains(".tmp"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid(
            "expert store",
            dir.display(),
            "it holds no expert_NNNN.safetensors files; train experts with `cafe-lab experts` first",
        ));
    }
    Ok(files)
}

/// What a run's trajectories must fit: its dataset, image shape, classes, architecture and the
/// parameter shapes of a network the architecture builds.
pub fn run_key(ctx: &PrepareContext) -> Result<TrajectoryKey> {
    TrajectoryKey::for_network(ctx.dataset, ctx.arch, ctx.arch_name, ctx.arch_config, ctx.device)
}

/// The first `max_experts` (all when `None`) experts of `dir`, each checked against `key`, each
/// holding epochs `0..=last` on `device`.
pub fn load_experts(
    dir: &Path,
    key: &TrajectoryKey,
    last: usize,
    max_experts: Option<usize>,
    device: &Device,
) -> Result<Vec<ExpertTrajectory>> {
    let mut files = expert_files(dir)?;
    if let Some(m) = max_experts {
        files.truncate(m.max(1));
    }
    files
        .iter()
        .map(|path| {
            ExpertRecord::read(path)?.check_fits(path, key)?;
            ExpertTrajectory::load_through(path, device, last)
        })
        .collect()
}
