//! Expert trajectories for trajectory matching (MTT, Cazenavette et al., CVPR 2022): training
//! them (the reference's `buffer.py`; the command is [`crate::run::run_experts`]), the store
//! they are kept in (one safetensors file per expert with its parameters after every epoch),
//! and unrolling students along them.

pub mod config;
pub mod correct_init;
pub mod key;
pub mod load;
pub mod store;
pub mod train;
pub mod unroll;
pub mod window;

pub use config::ExpertsConfig;
pub use correct_init::LabelExperts;
pub use key::{default_store_dir, probe_network};
pub use load::{expert_files, load_experts, run_key, ExpertSelection};
pub use store::{expert_file, ExpertRecord, ExpertTrajectory, TrajectoryKey};
pub use train::{expert_rng, ExpertEntry, ExpertTrainer, ExpertsSummary, SUMMARY_FILE};
pub use unroll::{Student, StudentStep, Targets, Unroll, UnrollGradients};
pub use window::{Expansion, StartWindow};
