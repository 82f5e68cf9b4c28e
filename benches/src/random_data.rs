//! A Fashion-MNIST-shaped dataset of random pixels from a fixed seed, so that the workloads
//! need no dataset files: 10 classes of 1x28x28 images, normalised with Fashion-MNIST's mean
//! and std (the pixels are uniform in [0, 1) before normalisation, the range of real ones).

use cafe_framework::data::{Dataset, ImageSet};
use cafe_framework::rng::rng_from_seed;
use rand::Rng as _;

use crate::{CLASSES, INPUT};

/// Fashion-MNIST's mean and std (DESIGN.md "Datasets"); its shape and classes are the crate's
/// `INPUT` and `CLASSES`.
pub const MEAN: f32 = 0.2861;
pub const STD: f32 = 0.3530;

/// `per_class` images of every class, class-major (class c owns rows `c*per_class..`),
/// pixels drawn from `seed`.
pub fn random_image_set(per_class: usize, seed: u64) -> ImageSet {
    let mut rng = rng_from_seed(seed);
    let n = per_class * CLASSES;
    let images: Vec<f32> = (0..n * INPUT.numel())
        .map(|_| (rng.random::<f32>() - MEAN) / STD)
        .collect();
    let labels: Vec<u32> = (0..CLASSES as u32)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect();
    ImageSet {
        images,
        labels,
        shape: INPUT,
    }
}

/// A dataset named `fashion-mnist` (so that name-dependent defaults are Fashion-MNIST's) with
/// `train_per_class` random training and `test_per_class` random test images per class.
pub fn random_fashion_mnist(train_per_class: usize, test_per_class: usize, seed: u64) -> Dataset {
    Dataset {
        name: "fashion-mnist".into(),
        train: random_image_set(train_per_class, seed),
        test: random_image_set(test_per_class, seed.wrapping_add(1)),
        classes: CLASSES,
        class_names: (0..CLASSES).map(|c| format!("class{c}")).collect(),
        mean: vec![MEAN],
        std: vec![STD],
        zca: None,
    }
}
