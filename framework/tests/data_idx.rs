//! MNIST and Fashion-MNIST from IDX fixture files (plain and gzip, in every searched layout),
//! corrupted versions of them, and the real Fashion-MNIST of Debian's package when installed.

mod support;

use std::path::Path;

use cafe_framework::data::{load, Dataset, DatasetKind};
use cafe_framework::{Error, ImageShape};
use support::data::{assert_close, corrupt_err, gzip, missing_err, norm, opts, write};
use support::idx::{idx_images, idx_labels, mnist_pixel, write_mnist};

// ---------------------------------------------------------------------------------------------
// MNIST / Fashion-MNIST
// ---------------------------------------------------------------------------------------------

fn check_mnist(ds: &Dataset, kind: DatasetKind, train_labels: &[u8], test_labels: &[u8]) {
    assert_eq!(ds.name, kind.name());
    assert_eq!(ds.classes, 10);
    assert_eq!(ds.train.shape, ImageShape::new(1, 28, 28));
    assert_eq!(ds.train.len(), 3);
    assert_eq!(ds.test.len(), 2);
    let (m, s) = (kind.mean()[0], kind.std()[0]);
    assert_eq!(ds.mean, vec![m]);
    assert_eq!(ds.std, vec![s]);
    assert_eq!(
        ds.train.labels,
        train_labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
    );
    assert_eq!(
        ds.test.labels,
        test_labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
    );
    for i in 0..3 {
        for k in [0usize, 1, 27, 28, 400, 783] {
            assert_close(
                ds.train.images[i * 784 + k],
                norm(mnist_pixel(i, k), m, s),
                "train pixel",
            );
        }
    }
    for i in 0..2 {
        for k in [0usize, 5, 783] {
            assert_close(
                ds.test.images[i * 784 + k],
                norm(mnist_pixel(i + 100, k), m, s),
                "test pixel",
            );
        }
    }
}

#[test]
fn mnist_plain_idx_in_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (tr, te) = write_mnist(tmp.path(), false);
    let ds = load("mnist", &opts(tmp.path())).unwrap();
    check_mnist(&ds, DatasetKind::Mnist, &tr, &te);
    assert_close(
        ds.train.images[0],
        (0.0 - 0.1307) / 0.3081,
        "MNIST mean/std of DESIGN.md",
    );
}

#[test]
fn mnist_gz_in_torchvision_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let (tr, te) = write_mnist(&tmp.path().join("MNIST").join("raw"), true);
    let ds = load("MNIST", &opts(tmp.path())).unwrap();
    check_mnist(&ds, DatasetKind::Mnist, &tr, &te);
}

#[test]
fn fashion_mnist_gz_in_subdir() {
    let tmp = tempfile::tempdir().unwrap();
    let (tr, te) = write_mnist(&tmp.path().join("FashionMNIST").join("raw"), true);
    let ds = load("FashionMNIST", &opts(tmp.path())).unwrap();
    check_mnist(&ds, DatasetKind::FashionMnist, &tr, &te);
    assert_eq!(ds.class_names[9], "Ankle boot");
    assert_close(ds.train.images[0], (0.0 - 0.2861) / 0.3530, "Fashion-MNIST mean/std");
}

#[test]
fn mnist_missing_dir_lists_paths_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nowhere");
    let message = missing_err(load("mnist", &opts(&dir)));
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(
        message.contains(&dir.join("MNIST").join("raw").display().to_string()),
        "{message}"
    );
    assert!(message.contains(&dir.join("mnist").display().to_string()), "{message}");
    assert!(message.contains("no such directory"), "{message}");
    assert!(message.contains("--data-dir"), "{message}");
    assert!(message.contains("--download"), "{message}");
}

#[test]
fn fashion_missing_mentions_debian_package() {
    let tmp = tempfile::tempdir().unwrap();
    match load("fashion-mnist", &opts(&tmp.path().join("none"))) {
        // This machine may have the Debian package installed, then loading succeeds.
        Ok(ds) => assert_eq!(ds.train.len(), 60000),
        Err(Error::DatasetMissing { message, .. }) => {
            assert!(message.contains("apt-get install dataset-fashion-mnist"), "{message}");
            assert!(message.contains("/usr/share/datasets/fashion-mnist"), "{message}");
        }
        Err(other) => panic!("expected DatasetMissing, got {other:?}"),
    }
}

#[test]
fn mnist_one_file_missing_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let message = missing_err(load("mnist", &opts(tmp.path())));
    assert!(message.contains("missing t10k-labels-idx1-ubyte[.gz]"), "{message}");
}

#[test]
fn mnist_truncated_image_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    let path = tmp.path().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    write(&path, &bytes[..bytes.len() - 100]);
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("truncated"), "{message}");
    assert!(
        message.contains("2368 bytes, but the file holds 2268 bytes"),
        "{message}"
    );
}

#[test]
fn mnist_truncated_gz_stream() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), true);
    let path = tmp.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    write(&path, &bytes[..bytes.len() / 2]);
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("gzip"), "{message}");
}

#[test]
fn mnist_gz_inflating_past_its_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), true);
    // The header promises 3 images of 28x28 (2368 bytes in all); the stream holds 16 MiB more.
    let path = tmp.path().join("train-images-idx3-ubyte.gz");
    let mut bytes = idx_images(3, 28, 28, &[0; 3 * 784]);
    bytes.resize(bytes.len() + (16 << 20), 0);
    write(&path, &gzip(&bytes));
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000, "a small file");
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("gzip stream inflates past"), "{message}");
    assert!(
        message.contains("its IDX header announces dimensions [3, 28, 28], 2368 bytes"),
        "{message}"
    );
    // The same for a label file.
    write_mnist(tmp.path(), true);
    let labels = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    let mut bytes = idx_labels(&[7, 1]);
    bytes.resize(bytes.len() + (16 << 20), 1);
    write(&labels, &gzip(&bytes));
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, labels);
    assert!(message.contains("inflates past"), "{message}");

    // A little past the header's size stays the precise "too long" of the IDX check.
    write_mnist(tmp.path(), true);
    let mut bytes = idx_labels(&[7, 1]);
    bytes.extend_from_slice(&[0; 100]);
    write(&labels, &gzip(&bytes));
    let (_, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert!(message.contains("too long"), "{message}");
}

#[test]
fn mnist_wrong_magic() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    // A label file where the image file should be.
    let path = tmp.path().join("train-images-idx3-ubyte");
    write(&path, &idx_labels(&[1, 2, 3]));
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("bad magic number"), "{message}");
    assert!(message.contains("expected 2051"), "{message}");
    assert!(message.contains("found 2049"), "{message}");
}

#[test]
fn mnist_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    let path = tmp.path().join("train-labels-idx1-ubyte");
    write(&path, &idx_labels(&[1, 2]));
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("holds 2 labels"), "{message}");
    assert!(message.contains("3 images"), "{message}");
}

#[test]
fn mnist_huge_header_on_tiny_file_errors_without_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    let path = tmp.path().join("train-images-idx3-ubyte");
    // 2^31 images of 28x28 announced, 10 bytes of pixels present.
    write(&path, &idx_images(1 << 31, 28, 28, &[0; 10]));
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("2147483648"), "{message}");
    // The same for a label file, and for absurd dimensions that overflow u64.
    write(&path, &idx_images(u32::MAX, u32::MAX, u32::MAX, &[0; 10]));
    let (_, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert!(message.contains("truncated"), "{message}");
    write_mnist(tmp.path(), false);
    let labels = tmp.path().join("t10k-labels-idx1-ubyte");
    let mut bytes = 2049u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&(1u32 << 31).to_be_bytes());
    write(&labels, &bytes);
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, labels);
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn mnist_wrong_image_size() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    write(
        &tmp.path().join("t10k-images-idx3-ubyte"),
        &idx_images(2, 32, 32, &[0; 2048]),
    );
    let (_, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert!(message.contains("images are 32x32, expected 28x28"), "{message}");
}

#[test]
fn mnist_label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    let path = tmp.path().join("train-labels-idx1-ubyte");
    write(&path, &idx_labels(&[1, 10, 2]));
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("label 10 at index 1 is out of range"), "{message}");
}

#[test]
fn mnist_empty_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), false);
    let path = tmp.path().join("train-images-idx3-ubyte");
    write(&path, &[]);
    let (p, message) = corrupt_err(load("mnist", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("file is 0 bytes, too short"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// The real Fashion-MNIST of Debian's dataset-fashion-mnist, when installed
// ---------------------------------------------------------------------------------------------

#[test]
fn real_fashion_mnist_from_debian_package() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        println!(
            "skipped: {} is absent (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    // An empty data folder: the loader must fall back to the Debian path.
    let tmp = tempfile::tempdir().unwrap();
    let ds = load("fashion-mnist", &opts(tmp.path())).unwrap();
    assert_eq!(ds.train.len(), 60000);
    assert_eq!(ds.test.len(), 10000);
    assert_eq!(ds.train.shape, ImageShape::new(1, 28, 28));
    let mean = ds.train.images.iter().map(|&v| v as f64).sum::<f64>() / ds.train.images.len() as f64;
    assert!(mean.abs() < 0.01, "normalised train mean {mean}");
    for list in ds.train.class_indices(10) {
        assert_eq!(list.len(), 6000);
    }
}
