//! The dataset layer apart from file formats: dataset names and aliases, `ImageSet`, and the
//! embedded `shapes` set.

mod support;

use candle_core::{DType, Device};

use cafe_framework::data::shapes::{self, MEAN, STD};
use cafe_framework::data::{dataset_names, load, DatasetKind, ImageSet, LoadOptions};
use cafe_framework::{Error, ImageShape};

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

#[test]
fn names_are_canonical_and_aliases_parse() {
    assert_eq!(
        dataset_names(),
        vec!["shapes", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn"]
    );
    for alias in ["FashionMNIST", "fashion-mnist", "fashion_mnist", "Fashion-MNIST"] {
        assert_eq!(
            DatasetKind::from_name(alias).unwrap(),
            DatasetKind::FashionMnist,
            "{alias}"
        );
    }
    assert_eq!(DatasetKind::from_name("CIFAR-10").unwrap(), DatasetKind::Cifar10);
    assert_eq!(DatasetKind::from_name("SVHN").unwrap(), DatasetKind::Svhn);
    assert_eq!(DatasetKind::Cifar100.class_names().len(), 100);
    for kind in DatasetKind::ALL {
        assert_eq!(kind.mean().len(), kind.shape().channels);
        assert_eq!(kind.std().len(), kind.shape().channels);
        assert_eq!(kind.class_names().len(), kind.classes());
    }
}

#[test]
fn unknown_name_lists_valid_names() {
    match load("imagenet", &LoadOptions::default()) {
        Err(Error::InvalidSetting { setting, value, reason }) => {
            assert_eq!(setting, "dataset");
            assert_eq!(value, "imagenet");
            assert!(reason.contains("valid names: shapes, mnist, fashion-mnist"), "{reason}");
        }
        other => panic!("expected InvalidSetting, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// ImageSet
// ---------------------------------------------------------------------------------------------

#[test]
fn image_set_gather_and_tensors() {
    let shape = ImageShape::new(1, 2, 2);
    let set = ImageSet {
        images: (0..16).map(|v| v as f32).collect(),
        labels: vec![1, 0, 1, 2],
        shape,
    };
    assert_eq!(set.len(), 4);
    assert_eq!(set.class_indices(3), vec![vec![1], vec![0, 2], vec![3]]);
    let (x, y) = set.gather(&[2, 0]);
    assert_eq!(x, vec![8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]);
    assert_eq!(y, vec![1, 1]);
    let (tx, ty) = set.to_tensor(&[3, 1], &Device::Cpu).unwrap();
    assert_eq!(tx.dims(), &[2, 1, 2, 2]);
    assert_eq!(tx.dtype(), DType::F32);
    assert_eq!(ty.dtype(), DType::U32);
    assert_eq!(ty.to_vec1::<u32>().unwrap(), vec![2, 0]);
    assert_eq!(
        tx.flatten_all().unwrap().to_vec1::<f32>().unwrap()[..4],
        [12.0, 13.0, 14.0, 15.0]
    );
    assert!(matches!(
        set.to_tensor(&[4], &Device::Cpu),
        Err(Error::InvalidSetting { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn shapes_is_deterministic_balanced_and_finite() {
    let start = std::time::Instant::now();
    let a = load(
        "shapes",
        &LoadOptions {
            seed: 7,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let elapsed = start.elapsed();
    let b = load(
        "shapes",
        &LoadOptions {
            seed: 7,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let c = load(
        "shapes",
        &LoadOptions {
            seed: 8,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(a, b, "same seed, same dataset");
    assert_ne!(a.train.images, c.train.images, "different seeds differ");
    assert_ne!(a.test.images, c.test.images);
    assert_ne!(a.train.images[..768], a.test.images[..768], "train and test differ");

    assert_eq!(a.name, "shapes");
    assert_eq!(a.classes, 10);
    assert_eq!(a.class_names, shapes::CLASS_NAMES.map(String::from).to_vec());
    assert_eq!(a.train.shape, ImageShape::new(3, 16, 16));
    assert_eq!(a.train.len(), 5000);
    assert_eq!(a.test.len(), 1000);
    assert_eq!(a.train.images.len(), 5000 * 768);
    for (set, per) in [(&a.train, 500), (&a.test, 100)] {
        for list in set.class_indices(10) {
            assert_eq!(list.len(), per);
        }
        // Any prefix is balanced: labels are interleaved.
        let first: Vec<u32> = set.labels[..20].to_vec();
        assert_eq!(first, (0..20).map(|i| i % 10).collect::<Vec<u32>>());
    }
    assert!(a.train.images.iter().chain(&a.test.images).all(|v| v.is_finite()));
    assert_eq!(a.mean, MEAN.to_vec());
    assert_eq!(a.std, STD.to_vec());
    // Generation is meant to be fast; generous bound for a loaded debug machine.
    assert!(elapsed.as_secs_f64() < 10.0, "shapes took {elapsed:?}");
    println!("shapes generated in {elapsed:?}");
}

/// The MEAN/STD constants are the statistics of the seed-0 train set; other seeds are close.
#[test]
fn shapes_stats() {
    for seed in [0u64, 1] {
        let (raw, _) = shapes::raw_split(seed, false);
        let plane = 256;
        let n = raw.len() / 768;
        let mut stats = Vec::new();
        for c in 0..3 {
            let vals = (0..n).flat_map(|i| raw[i * 768 + c * plane..i * 768 + (c + 1) * plane].iter());
            let (mut s, mut s2) = (0f64, 0f64);
            for &v in vals {
                s += v as f64;
                s2 += (v as f64) * (v as f64);
            }
            let count = (n * plane) as f64;
            let mean = s / count;
            stats.push((mean, (s2 / count - mean * mean).sqrt()));
        }
        println!("shapes seed {seed}: mean/std per channel {stats:?}");
        let tol = if seed == 0 { 1e-4 } else { 5e-3 };
        for c in 0..3 {
            assert!(
                (stats[c].0 - MEAN[c] as f64).abs() < tol,
                "mean c{c} seed {seed}: {stats:?}"
            );
            assert!(
                (stats[c].1 - STD[c] as f64).abs() < tol,
                "std c{c} seed {seed}: {stats:?}"
            );
        }
    }
}
