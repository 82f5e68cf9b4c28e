//! A labelled set of normalised images held in memory as contiguous NCHW `f32`.

use candle_core::{Device, Tensor};

use crate::{Error, ImageShape, Result};

/// Images and their labels. `images` holds `labels.len()` images of `shape`, one after the
/// other, each in CHW order, already normalised with the dataset's mean and std.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub shape: ImageShape,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i` (CHW).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.shape.numel();
        &self.images[i * n..(i + 1) * n]
    }

    /// For each class `0..classes`, the indices of its images in ascending order. Labels at or
    /// above `classes` are left out (they cannot occur in a loaded dataset, whose loaders check
    /// the label range).
    pub fn class_indices(&self, classes: usize) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); classes];
        for (i, &label) in self.labels.iter().enumerate() {
            if let Some(list) = out.get_mut(label as usize) {
                list.push(i);
            }
        }
        out
    }

    /// Copies the images and labels at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// If an index is out of range; [`ImageSet::to_tensor`] checks instead.
    pub fn gather(&self, indices: &[usize]) -> (Vec<f32>, Vec<u32>) {
        let mut images = Vec::with_capacity(indices.len() * self.shape.numel());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        (images, labels)
    }

    /// The images at `indices` as an `f32` tensor `[n, c, h, w]` and their labels as a `u32`
    /// tensor `[n]`, on `device`.
    pub fn to_tensor(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::invalid(
                "image index",
                bad,
                format!("the set holds {} images", self.len()),
            ));
        }
        let (images, labels) = self.gather(indices);
        let n = labels.len();
        let x = Tensor::from_vec(images, self.shape.batch_dims(n).to_vec(), device)?;
        let y = Tensor::from_vec(labels, n, device)?;
        Ok((x, y))
    }
}
