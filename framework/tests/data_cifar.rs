//! CIFAR-10 and CIFAR-100 from binary-record fixtures, plain and whitened, and corrupted
//! versions of them.

mod support;

use cafe_framework::data::{load, DatasetKind, LoadOptions};
use cafe_framework::ImageShape;
use support::cifar::{cifar_pixel, cifar_record, write_cifar10};
use support::data::{assert_close, corrupt_err, missing_err, norm, opts, write};

// ---------------------------------------------------------------------------------------------
// CIFAR
// ---------------------------------------------------------------------------------------------

#[test]
fn cifar10_batches_in_canonical_subdir() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = write_cifar10(&tmp.path().join("cifar-10-batches-bin"));
    let ds = load("cifar10", &opts(tmp.path())).unwrap();
    let kind = DatasetKind::Cifar10;
    assert_eq!(ds.train.len(), 10);
    assert_eq!(ds.test.len(), 2);
    assert_eq!(ds.train.labels, labels);
    assert_eq!(ds.test.labels, vec![9, 0]);
    assert_eq!(ds.class_names[0], "airplane");
    assert_eq!(ds.train.shape, ImageShape::new(3, 32, 32));
    for (i, k) in [(0usize, 0usize), (3, 1023), (3, 1024), (7, 2500), (9, 3071)] {
        let c = k / 1024;
        let want = norm(cifar_pixel(i, k), kind.mean()[c], kind.std()[c]);
        assert_close(ds.train.images[i * 3072 + k], want, "cifar10 pixel");
    }
    assert_close(
        ds.test.images[3072 + 5],
        norm(cifar_pixel(101, 5), 0.4914, 0.2023),
        "test",
    );
}

#[test]
fn cifar10_whitened_starts_from_plain_pixels() {
    // mtt-distillation utils.py:58-59: with --zca, ToTensor alone (x / 255), then ZCA.
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(&tmp.path().join("cifar-10-batches-bin"));
    let ds = load(
        "cifar10",
        &LoadOptions {
            zca: Some(0.1),
            ..opts(tmp.path())
        },
    )
    .unwrap();
    assert_eq!(ds.zca.as_ref().map(|z| z.eps), Some(0.1));
    for i in 0..3072 {
        let mean = (0..10).map(|n| ds.train.images[n * 3072 + i] as f64).sum::<f64>() / 10.0;
        assert!(mean.abs() < 1e-4, "whitened train mean at {i}: {mean}");
    }
    // Back to x / 255, up to f32 rounding through two 3072 x 3072 products (well under the
    // 1/255 between two pixel values).
    let close = |a: f32, b: f32, what: &str| assert!((a - b).abs() < 2e-4, "{what}: {a} != {b}");
    let train = ds.denormalise(&ds.train.images);
    let test = ds.denormalise(&ds.test.images);
    for (i, k) in [(0usize, 0usize), (3, 1023), (7, 2500), (9, 3071)] {
        close(
            train[i * 3072 + k],
            cifar_pixel(i, k) as f32 / 255.0,
            "unwhitened train pixel",
        );
    }
    close(
        test[3072 + 5],
        cifar_pixel(101, 5) as f32 / 255.0,
        "unwhitened test pixel",
    );
}

#[test]
fn cifar100_uses_fine_labels() {
    let tmp = tempfile::tempdir().unwrap();
    // Directly in data_dir, no subfolder.
    let mut train = cifar_record(&[19, 99], 0);
    train.extend(cifar_record(&[0, 42], 1));
    write(&tmp.path().join("train.bin"), &train);
    write(&tmp.path().join("test.bin"), &cifar_record(&[5, 7], 2));
    let ds = load("CIFAR-100", &opts(tmp.path())).unwrap();
    assert_eq!(ds.classes, 100);
    assert_eq!(ds.train.labels, vec![99, 42]);
    assert_eq!(ds.test.labels, vec![7]);
    assert_eq!(ds.class_names[99], "worm");
    assert_close(
        ds.train.images[3072 + 2048],
        norm(cifar_pixel(1, 2048), 0.4409, 0.2762),
        "blue",
    );
}

#[test]
fn cifar_missing_lists_both_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let message = missing_err(load("cifar10", &opts(tmp.path())));
    assert!(
        message.contains(&tmp.path().join("cifar-10-batches-bin").display().to_string()),
        "{message}"
    );
    assert!(message.contains("missing data_batch_1.bin"), "{message}");
    assert!(message.contains("cifar-10-binary.tar.gz"), "{message}");
}

#[test]
fn cifar_truncated_empty_and_bad_label() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    write_cifar10(&dir);
    let path = dir.join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    write(&path, &bytes[..bytes.len() - 1]);
    let (p, message) = corrupt_err(load("cifar10", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("not a multiple of the 3073-byte record"), "{message}");

    write(&path, &[]);
    let (_, message) = corrupt_err(load("cifar10", &opts(tmp.path())));
    assert!(message.contains("file is empty"), "{message}");

    write(&path, &cifar_record(&[10], 0));
    let (_, message) = corrupt_err(load("cifar10", &opts(tmp.path())));
    assert!(message.contains("record 0 has label 10, expected 0..10"), "{message}");

    // CIFAR-100: a fine label of 100.
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("train.bin"), &cifar_record(&[0, 100], 0));
    write(&tmp.path().join("test.bin"), &cifar_record(&[0, 1], 0));
    let (_, message) = corrupt_err(load("cifar100", &opts(tmp.path())));
    assert!(message.contains("label 100, expected 0..100"), "{message}");
}
