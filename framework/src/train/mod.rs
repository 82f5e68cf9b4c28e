//! Training networks: the PyTorch-style optimisers (SGD, Adam/AdamW) behind one trait, epochs
//! over a labelled set, the reference's step schedule and cosine learning-rate curves, the
//! losses, accuracy.

pub mod adam;
pub mod bn_statistics;
pub mod epoch;
pub mod loss;
pub mod lr_curve;
pub mod optimizer;
pub mod schedule;
pub mod sgd;

pub use adam::{Adam, AdamConfig, Decay};
pub use bn_statistics::bn_statistics_loss;
pub use epoch::{accuracy, batches, train_epoch, train_epoch_with, BatchLoss, TargetLoss, TeacherLoss};
pub use loss::{classification_loss, cross_entropy, kd_loss, soft_cross_entropy};
pub use lr_curve::LrCurve;
pub use optimizer::Optimizer;
pub use schedule::StepSchedule;
pub use sgd::Sgd;
