//! The object-safe plugin traits. Each plugin kind is one small trait; construction from a
//! serde config is kept apart, in the registry (`crate::registry`).

pub mod architecture;
pub mod augmenter;
pub mod family;
pub mod image_update;
pub mod matcher;
pub mod scheduler;
