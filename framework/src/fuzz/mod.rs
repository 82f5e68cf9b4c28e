//! Entry points for fuzzing: each [`Target`] feeds arbitrary bytes to one parser of untrusted
//! input, the way cafe-lab reads such a file or setting, and returns what the parser said.
//! Whatever the bytes, a target must return (an error is fine): no panic, no abort, no hang,
//! and memory bounded by what the input can legitimately expand to.
//!
//! The coverage-guided harness in `fuzz/` (AFL++, `scripts/fuzz/run.sh`) and the short
//! mutational run of the test suite (`tests/fuzz_smoke.rs`) both call [`Target::run`], on the
//! seed files of `fuzz/seeds/<target>/`.

mod data;
mod files;
mod settings;

use std::path::Path;

pub use files::ParamHolder;

use crate::Result;

/// A parser of untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any tensor file: header, every tensor read as its type allows, the set-storage count.
    TensorFile,
    /// `Checkpoint::load`.
    Checkpoint,
    /// `SyntheticSet::read_metadata`, `SyntheticSet::load` and `evaluate --synthetic`'s reading
    /// of the run's settings from the set's metadata.
    SyntheticSet,
    /// `ExpertRecord::read`, `ExpertTrajectory::load` and `load_through`.
    Expert,
    /// `load_teacher` into a network of three parameters ([2, 3], [2], []).
    Teacher,
    /// An IDX file (MNIST), plain or gzipped, as images and as labels.
    Idx,
    /// CIFAR-10 and CIFAR-100 binary records.
    Cifar,
    /// A MATLAB v5 MAT-file read as an SVHN split.
    Mat,
    /// The input as a gzip stream holding an IDX file (the loaders' bounded gunzip).
    Gzip,
    /// The input as the zlib stream of a MAT-file's compressed element (bounded inflate).
    Zlib,
    /// A `--config` TOML file, merged, checked against the schema and resolved.
    ConfigToml,
    /// `--set PATH=VALUE` assignments, one per line, then the same.
    ConfigSet,
    /// A protocol TOML file, its settings for a few datasets and ipcs, resolved.
    Protocol,
}

impl Target {
    /// Every target, in the order the scripts run them.
    pub const ALL: [Target; 13] = [
        Target::TensorFile,
        Target::Checkpoint,
        Target::SyntheticSet,
        Target::Expert,
        Target::Teacher,
        Target::Idx,
        Target::Cifar,
        Target::Mat,
        Target::Gzip,
        Target::Zlib,
        Target::ConfigToml,
        Target::ConfigSet,
        Target::Protocol,
    ];

    /// The name in scripts and corpus folders.
    pub fn name(self) -> &'static str {
        match self {
            Target::TensorFile => "tensor_file",
            Target::Checkpoint => "checkpoint",
            Target::SyntheticSet => "synthetic_set",
            Target::Expert => "expert",
            Target::Teacher => "teacher",
            Target::Idx => "idx",
            Target::Cifar => "cifar",
            Target::Mat => "mat",
            Target::Gzip => "gzip",
            Target::Zlib => "zlib",
            Target::ConfigToml => "config_toml",
            Target::ConfigSet => "config_set",
            Target::Protocol => "protocol",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// True for targets whose input may be compressed: their memory follows the inflated size
    /// (bounded by what the content's own header declares plus a margin), not the input's.
    pub fn inflates(self) -> bool {
        matches!(self, Target::Idx | Target::Mat | Target::Gzip | Target::Zlib)
    }

    /// Runs the target on `input`. Targets that read files write the input to a file in
    /// `scratch` (a folder the caller owns; one file per target and thread) and read it back.
    pub fn run(self, input: &[u8], scratch: &Path) -> Result<()> {
        match self {
            Target::TensorFile => files::tensor_file(input, scratch),
            Target::Checkpoint => files::checkpoint(input, scratch),
            Target::SyntheticSet => files::synthetic_set(input, scratch),
            Target::Expert => files::expert(input, scratch),
            Target::Teacher => files::teacher(input, scratch),
            Target::Idx => data::idx(input),
            Target::Cifar => data::cifar(input),
            Target::Mat => data::mat(input),
            Target::Gzip => data::gzip(input),
            Target::Zlib => data::zlib(input),
            Target::ConfigToml => settings::config_toml(input, scratch),
            Target::ConfigSet => settings::config_set(input),
            Target::Protocol => settings::protocol(input),
        }
    }
}

/// The file of `name` in `scratch` for this thread, holding `input`.
fn scratch_file(scratch: &Path, name: &str, input: &[u8]) -> Result<std::path::PathBuf> {
    let thread = format!("{:?}", std::thread::current().id());
    let tag: String = thread.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = scratch.join(format!("{tag}-{name}"));
    std::fs::write(&path, input).map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}
