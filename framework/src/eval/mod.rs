//! Evaluation: how a set is judged. The plan ([`EvalPlan`]) is resolved once from the run's
//! settings; one trainer ([`trainer`]) trains fresh networks on a set with hard labels, soft
//! labels or a teacher's outputs and tests them; around it the random baseline, DD-Ranking's
//! fair metrics, knowledge distillation and evaluation during condensation, all reading the
//! plan.

pub mod baseline;
pub mod during;
pub mod evaluator;
pub mod fair_metrics;
pub mod kd;
pub mod plan;
pub mod recipe;
pub mod set_evaluations;
pub mod trainer;

pub use baseline::random_subset;
pub use during::{seal_test_set, split_validation, DuringEval, Selection, ValPoint};
pub use evaluator::Evaluator;
pub use fair_metrics::WHOLE_SET;
pub use kd::{train_teacher, KdOutcome, KdSummary, TEACHER_FILE};
pub use plan::{
    eval_arch_names, reference_eval_augment, ArchPlan, Augmentation, DuringPlan, EvalPlan, KdPlan, KdStudents,
    MetricsPlan, TeacherSource, WholeReference,
};
pub use recipe::{DecayOn, OptimizerKind, Report, Schedule, TrainRecipe};
pub use set_evaluations::SetEvaluations;
pub use trainer::{
    evaluate_set, test_network, test_tensors, train_network, EvalJob, Evaluation, Supervision, TrainingSet,
};
