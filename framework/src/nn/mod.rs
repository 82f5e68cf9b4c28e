//! Neural-network building blocks: a fast convolution that differentiates to any order, the
//! layers DC's networks are made of, and their random initialisation.

pub mod activation;
mod activation_op;
pub mod backward_graph;
pub mod batch_norm;
pub mod batch_norm_record;
mod channel_op;
pub mod class_synced_batch_norm;
pub mod conv;
pub mod conv_algorithm;
mod conv_cpu;
#[cfg(feature = "cudnn")]
mod conv_cudnn;
mod conv_geometry;
pub mod conv_layer;
mod conv_winograd;
mod correlation;
mod cpu_op;
pub mod group_norm;
mod group_norm_op;
pub mod init;
pub mod layer_norm;
pub mod linear;
mod matmul;
pub mod norm;
mod norm_act_op;
pub mod param_source;
pub mod pool;
pub mod pool_k;
mod pool_op;
mod scoped_override;

pub use activation::{leaky_relu, leaky_relu_with_tensor_ops, relu, sigmoid, Activation};
pub use backward_graph::{backward_keeps_graph, first_order};
pub use batch_norm::{BatchNorm2d, RunningStats};
pub use batch_norm_record::{record_batch_norms, BatchNormRecord};
pub use class_synced_batch_norm::{with_class_synced_batch_norm, GatherF64};
pub use conv::{conv2d, conv2d_with_bias};
pub use conv_algorithm::{with_conv_algorithm, ConvAlgorithm};
pub use conv_layer::{Conv2d, Conv2dConfig};
pub use group_norm::{group_normalize, group_normalize_with_tensor_ops, GroupNorm};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use norm::{Norm, NormKind};
pub use param_source::ParamSource;
pub use pool::{avg_pool2x2, avg_pool2x2_with_tensor_ops, max_pool2x2, max_pool2x2_with_tensor_ops, Pooling};
pub use pool_k::{avg_pool_k, max_pool_k};
