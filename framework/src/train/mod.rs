//! Training networks: the PyTorch-style SGD optimiser, epochs over a labelled set, accuracy.

pub mod epoch;
pub mod sgd;

pub use epoch::{accuracy, batches, cross_entropy, train_epoch};
pub use sgd::Sgd;
