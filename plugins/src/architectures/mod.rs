//! Registered architectures, one file each.

pub mod alexnet;
mod blocks;
pub mod convnet;
pub mod lenet;
pub mod mlp;
pub mod resnet;
pub mod vgg;
