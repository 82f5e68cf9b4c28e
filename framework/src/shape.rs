//! The shape of one image: channels, height, width.

use serde::{Deserialize, Serialize};

/// Shape of a single image in NCHW layout, without the batch dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Number of scalars in one image.
    pub const fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `[n, c, h, w]` for a batch of `n` images.
    pub fn batch_dims(&self, n: usize) -> [usize; 4] {
        [n, self.channels, self.height, self.width]
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}
