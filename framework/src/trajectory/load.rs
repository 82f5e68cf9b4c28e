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

/// Which experts of a store a run reads, as mtt-distillation's `--max_files` and
/// `--max_experts` select them (`distill.py:173-178,320-321`; TESLA and DATM alike): the
/// reference keeps `save_interval` = 10 experts per `replay_buffer_N.pt` in training order
/// (`buffer.py:101-107,131`), reads the first `max_files` files and the first `max_experts`
/// experts of each. A cafe-lab store keeps one expert per file, numbered in training order, so
/// the reference's file `f` is experts `f * experts_per_file ..` of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertSelection {
    /// Experts per reference buffer file (`--save_interval 10`, `buffer.py:131`).
    pub experts_per_file: usize,
    /// The first this many files; None: all (`--max_files`, `distill.py:470`).
    pub max_files: Option<usize>,
    /// The first this many experts of each file; None: all (`--max_experts`, `distill.py:471`).
    pub max_experts: Option<usize>,
}

impl Default for ExpertSelection {
    fn default() -> Self {
        Self {
            experts_per_file: 10,
            max_files: None,
            max_experts: None,
        }
    }
}

impl ExpertSelection {
    /// The files of the first `max_files` groups (every expert in them: DATM's label
    /// initialisation reads these, not cut to `max_experts`, `DATM.py:200,282-284`).
    pub fn files<'a>(&self, files: &'a [PathBuf]) -> &'a [PathBuf] {
        let per = self.experts_per_file.max(1);
        let n = self.max_files.map_or(files.len(), |f| (f * per).min(files.len()));
        &files[..n]
    }

    /// The experts a run walks: of the first `max_files` groups, the first `max_experts` each.
    pub fn experts(&self, files: &[PathBuf]) -> Vec<PathBuf> {
        let per = self.experts_per_file.max(1);
        let keep = self.max_experts.unwrap_or(per).min(per);
        self.files(files)
            .chunks(per)
            .flat_map(|group| group.iter().take(keep).cloned())
            .collect()
    }
}

/// The experts of `dir` that `selection` keeps, each checked against `key`, each holding epochs
/// `0..=last` on `device`.
pub fn load_experts(
    dir: &Path,
    key: &TrajectoryKey,
    last: usize,
    selection: ExpertSelection,
    device: &Device,
) -> Result<Vec<ExpertTrajectory>> {
    selection
        .experts(&expert_files(dir)?)
        .iter()
        .map(|path| {
            ExpertRecord::read(path)?.check_fits(path, key)?;
            ExpertTrajectory::load_through(path, device, last)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[PathBuf]) -> Vec<String> {
        v.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn selects_as_the_reference_reads_its_files() {
        let files: Vec<PathBuf> = (0..25).map(|i| PathBuf::from(format!("e{i}"))).collect();
        let all = ExpertSelection::default();
        assert_eq!(all.experts(&files).len(), 25);
        // --max_files 2 --max_experts 3: experts 0-2 of replay_buffer_0 and 1.
        let s = ExpertSelection {
            max_files: Some(2),
            max_experts: Some(3),
            ..all
        };
        assert_eq!(names(&s.experts(&files)), ["e0", "e1", "e2", "e10", "e11", "e12"]);
        assert_eq!(s.files(&files).len(), 20);
        // The last, partial file counts as a file.
        let s = ExpertSelection {
            max_experts: Some(1),
            ..all
        };
        assert_eq!(names(&s.experts(&files)), ["e0", "e10", "e20"]);
        // A store smaller than one file: max_experts is the first N overall.
        assert_eq!(s.experts(&files[..4]).len(), 1);
    }
}
