//! Numbers computed from evaluations: summary statistics with confidence intervals, per-class
//! accuracy, DD-Ranking's fair metrics and the storage a synthetic set takes.

pub mod ddranking;
pub mod per_class;
pub mod stats;
pub mod storage;

pub use ddranking::{
    augmentation_robust_score, hard_label_recovery, improvement_over_random, label_robust_score, normalise_score,
    FairMetrics, MetricSummary,
};
pub use per_class::class_accuracies;
pub use stats::{mean_std, student_t_975, Summary};
pub use storage::{storage_of_safetensors, Storage};
