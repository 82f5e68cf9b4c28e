//! Training networks: the PyTorch-style SGD optimiser, epochs over a labelled set, the
//! reference's step schedule, the losses, accuracy.

pub mod epoch;
pub mod loss;
pub mod schedule;
pub mod sgd;

pub use epoch::{accuracy, batches, train_epoch, train_epoch_with, BatchLoss, TargetLoss, TeacherLoss};
pub use loss::{classification_loss, cross_entropy, kd_loss, soft_cross_entropy};
pub use schedule::StepSchedule;
pub use sgd::Sgd;
