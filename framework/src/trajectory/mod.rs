//! Expert trajectories for trajectory matching (MTT, Cazenavette et al., CVPR 2022): training
//! them (`cafe-lab experts`, the reference's `buffer.py`) and the store they are kept in, one
//! safetensors file per expert with its parameters after every epoch.

pub mod command;
pub mod config;
pub mod load;
pub mod store;
pub mod train;
pub mod unroll;

pub use command::run_experts;
pub use config::ExpertsConfig;
pub use load::{expert_files, load_experts, run_key};
pub use store::{expert_file, ExpertRecord, ExpertTrajectory, TrajectoryKey};
pub use train::{expert_rng, ExpertEntry, ExpertTrainer, ExpertsSummary, SUMMARY_FILE};
pub use unroll::{Student, StudentStep, Targets, Unroll, UnrollGradients};
