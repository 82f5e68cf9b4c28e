//! Training networks: the PyTorch-style SGD optimiser, epochs over a labelled set, the losses, accuracy.

pub mod epoch;
pub mod loss;
pub mod sgd;

pub use epoch::{accuracy, batches, train_epoch};
pub use loss::{classification_loss, cross_entropy, soft_cross_entropy};
pub use sgd::Sgd;
