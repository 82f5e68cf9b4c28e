//! The dataset layer against fixture files written here in the real formats (IDX plain and
//! gzip, CIFAR-10/100 binary batches, MATLAB v5 MAT-files plain and miCOMPRESSED), against
//! corrupted versions of them, and the embedded `shapes` set.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use proptest::prelude::*;

use cafe_framework::data::download::{extract_tar_gz, md5_file, remote_files, verify_checksum};
use cafe_framework::data::mat::{parse_mat, MatData};
use cafe_framework::data::shapes::{self, MEAN, STD};
use cafe_framework::data::{dataset_names, load, Dataset, DatasetKind, ImageSet, LoadOptions};
use cafe_framework::{Error, ImageShape};

// ---------------------------------------------------------------------------------------------
// Fixture writers
// ---------------------------------------------------------------------------------------------

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX image file: magic 2051, [n, rows, cols], then the pixels.
fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [2051u32, n, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// An IDX label file: magic 2049, [n], then the labels.
fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [2049u32, labels.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// Pixel `k` of MNIST fixture image `i` (distinct per image and position).
fn mnist_pixel(i: usize, k: usize) -> u8 {
    ((i * 37 + k * 11) % 256) as u8
}

/// Writes a full MNIST-style fixture (3 train images, 2 test images) into `dir`, gzipped or
/// plain. Returns (train labels, test labels).
fn write_mnist(dir: &Path, gz: bool) -> (Vec<u8>, Vec<u8>) {
    let (train_labels, test_labels) = (vec![3u8, 0, 9], vec![7u8, 1]);
    let images = |n: usize, offset: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (0..784).map(move |k| mnist_pixel(i + offset, k)))
            .collect()
    };
    let files = [
        ("train-images-idx3-ubyte", idx_images(3, 28, 28, &images(3, 0))),
        ("train-labels-idx1-ubyte", idx_labels(&train_labels)),
        ("t10k-images-idx3-ubyte", idx_images(2, 28, 28, &images(2, 100))),
        ("t10k-labels-idx1-ubyte", idx_labels(&test_labels)),
    ];
    for (name, bytes) in files {
        if gz {
            write(&dir.join(format!("{name}.gz")), &gzip(&bytes));
        } else {
            write(&dir.join(name), &bytes);
        }
    }
    (train_labels, test_labels)
}

/// One CIFAR record: label byte(s) then 3072 pixels, pixel k of record `i` = f(i, k).
fn cifar_record(labels: &[u8], i: usize) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|k| cifar_pixel(i, k)));
    r
}

fn cifar_pixel(i: usize, k: usize) -> u8 {
    ((i * 53 + k * 7 + k / 1024 * 19) % 256) as u8
}

/// Column-major X(h, w, c, n) value of the SVHN fixture.
fn svhn_pixel(h: usize, w: usize, c: usize, n: usize) -> u8 {
    ((h * 7 + w * 13 + c * 50 + n * 31) % 256) as u8
}

fn opts(dir: &Path) -> LoadOptions {
    LoadOptions {
        data_dir: Some(dir.to_path_buf()),
        download: false,
        seed: 0,
        zca: None,
    }
}

fn norm(v: u8, mean: f32, std: f32) -> f32 {
    (v as f32 / 255.0 - mean) / std
}

fn assert_close(a: f32, b: f32, what: &str) {
    assert!((a - b).abs() <= 1e-5, "{what}: {a} != {b}");
}

// -------- MAT v5 writer --------

/// A minimal MAT v5 writer: enough to produce the files MATLAB writes for SVHN.
struct Mat {
    big_endian: bool,
}

impl Mat {
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// A data element; small format when `data` fits in 4 bytes and `small` is allowed.
    fn element(&self, data_type: u32, data: &[u8], small: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if small && data.len() <= 4 {
            out.extend_from_slice(&self.u32(data_type | ((data.len() as u32) << 16)));
            let mut d = data.to_vec();
            d.resize(4, 0);
            out.extend_from_slice(&d);
            return out;
        }
        out.extend_from_slice(&self.u32(data_type));
        out.extend_from_slice(&self.u32(data.len() as u32));
        out.extend_from_slice(data);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out
    }

    /// An miMATRIX element for a real numeric array of MATLAB `class` with values stored as
    /// `data_type` (`values` already encoded).
    fn matrix(&self, name: &str, class: u8, dims: &[u32], data_type: u32, values: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut flags = self.u32(u32::from(class)).to_vec();
        flags.extend_from_slice(&self.u32(0));
        body.extend(self.element(6, &flags, false));
        let dims_bytes: Vec<u8> = dims.iter().flat_map(|&d| self.u32(d)).collect();
        body.extend(self.element(5, &dims_bytes, false));
        body.extend(self.element(1, name.as_bytes(), true));
        body.extend(self.element(data_type, values, true));
        self.element(14, &body, false)
    }

    fn file(&self, elements: &[Vec<u8>], compress: bool) -> Vec<u8> {
        let mut out = b"MATLAB 5.0 MAT-file, Platform: cafe-lab test fixture".to_vec();
        out.resize(116, b' ');
        out.extend_from_slice(&[0; 8]);
        if self.big_endian {
            out.extend_from_slice(&[0x01, 0x00]);
            out.extend_from_slice(b"MI");
        } else {
            out.extend_from_slice(&[0x00, 0x01]);
            out.extend_from_slice(b"IM");
        }
        for e in elements {
            if compress {
                let z = zlib(e);
                out.extend_from_slice(&self.u32(15));
                out.extend_from_slice(&self.u32(z.len() as u32));
                out.extend_from_slice(&z);
            } else {
                out.extend_from_slice(e);
            }
        }
        out
    }

    fn f64s(&self, values: &[f64]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }
}

/// The SVHN fixture's X (uint8, 32x32x3xN, column-major) as a MAT element.
fn svhn_x(mat: &Mat, n: usize) -> Vec<u8> {
    let mut x = vec![0u8; 3072 * n];
    for ni in 0..n {
        for c in 0..3 {
            for w in 0..32 {
                for h in 0..32 {
                    x[h + 32 * w + 1024 * c + 3072 * ni] = svhn_pixel(h, w, c, ni);
                }
            }
        }
    }
    mat.matrix("X", 9, &[32, 32, 3, n as u32], 2, &x)
}

/// `y` as doubles (class double, stored miDOUBLE).
fn svhn_y_double(mat: &Mat, labels: &[f64]) -> Vec<u8> {
    mat.matrix("y", 6, &[labels.len() as u32, 1], 9, &mat.f64s(labels))
}

/// `y` as MATLAB writes small-integer doubles: class double, stored as miUINT8.
fn svhn_y_u8(mat: &Mat, labels: &[u8]) -> Vec<u8> {
    mat.matrix("y", 6, &[labels.len() as u32, 1], 2, labels)
}

fn check_svhn_split(set: &ImageSet, n: usize, expected_labels: &[u32]) {
    let kind = DatasetKind::Svhn;
    assert_eq!(set.shape, ImageShape::new(3, 32, 32));
    assert_eq!(set.len(), n);
    assert_eq!(set.labels, expected_labels);
    for ni in 0..n {
        for c in 0..3 {
            for h in [0usize, 1, 17, 31] {
                for w in [0usize, 2, 30, 31] {
                    let got = set.images[ni * 3072 + c * 1024 + h * 32 + w];
                    let want = norm(svhn_pixel(h, w, c, ni), kind.mean()[c], kind.std()[c]);
                    assert_close(got, want, &format!("svhn n{ni} c{c} h{h} w{w}"));
                }
            }
        }
    }
}

fn corrupt_err(result: cafe_framework::Result<Dataset>) -> (PathBuf, String) {
    match result {
        Err(Error::DatasetCorrupt { path, message }) => (path, message),
        Err(other) => panic!("expected DatasetCorrupt, got {other:?}"),
        Ok(_) => panic!("expected DatasetCorrupt, the load succeeded"),
    }
}

fn missing_err(result: cafe_framework::Result<Dataset>) -> String {
    match result {
        Err(Error::DatasetMissing { message, .. }) => message,
        Err(other) => panic!("expected DatasetMissing, got {other:?}"),
        Ok(_) => panic!("expected DatasetMissing, the load succeeded"),
    }
}

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
// CIFAR
// ---------------------------------------------------------------------------------------------

/// Writes CIFAR-10 batches of two records each into `dir`; returns the train labels.
fn write_cifar10(dir: &Path) -> Vec<u32> {
    let mut labels = Vec::new();
    for b in 1..=5 {
        let mut bytes = Vec::new();
        for r in 0..2 {
            let i = (b - 1) * 2 + r;
            let label = (i * 3 % 10) as u8;
            labels.push(label as u32);
            bytes.extend(cifar_record(&[label], i));
        }
        write(&dir.join(format!("data_batch_{b}.bin")), &bytes);
    }
    let mut test = cifar_record(&[9], 100);
    test.extend(cifar_record(&[0], 101));
    write(&dir.join("test_batch.bin"), &test);
    labels
}

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

// ---------------------------------------------------------------------------------------------
// SVHN / MAT v5
// ---------------------------------------------------------------------------------------------

fn write_svhn(dir: &Path, mat: &Mat, compress: bool) {
    // Train: labels as doubles with 10 (= digit 0); test: stored as uint8, in a file where y
    // comes before X.
    let train = mat.file(&[svhn_x(mat, 3), svhn_y_double(mat, &[10.0, 1.0, 9.0])], compress);
    let test = mat.file(&[svhn_y_u8(mat, &[10, 4]), svhn_x(mat, 2)], compress);
    write(&dir.join("train_32x32.mat"), &train);
    write(&dir.join("test_32x32.mat"), &test);
}

#[test]
fn svhn_uncompressed_mat() {
    let tmp = tempfile::tempdir().unwrap();
    write_svhn(tmp.path(), &Mat { big_endian: false }, false);
    let ds = load("svhn", &opts(tmp.path())).unwrap();
    check_svhn_split(&ds.train, 3, &[0, 1, 9]);
    check_svhn_split(&ds.test, 2, &[0, 4]);
}

#[test]
fn svhn_compressed_mat() {
    let tmp = tempfile::tempdir().unwrap();
    write_svhn(&tmp.path().join("svhn"), &Mat { big_endian: false }, true);
    let ds = load("SVHN", &opts(tmp.path())).unwrap();
    check_svhn_split(&ds.train, 3, &[0, 1, 9]);
    check_svhn_split(&ds.test, 2, &[0, 4]);
}

#[test]
fn svhn_big_endian_mat() {
    let tmp = tempfile::tempdir().unwrap();
    write_svhn(tmp.path(), &Mat { big_endian: true }, false);
    let ds = load("svhn", &opts(tmp.path())).unwrap();
    check_svhn_split(&ds.train, 3, &[0, 1, 9]);
}

#[test]
fn mat_reader_skips_other_variables_and_reads_doubles() {
    let mat = Mat { big_endian: false };
    let other = mat.matrix("notes", 6, &[1, 2], 9, &mat.f64s(&[1.5, -2.0]));
    let y = svhn_y_double(&mat, &[3.0, 10.0]);
    let bytes = mat.file(&[other, y], true);
    let arrays = parse_mat(&bytes, Path::new("t.mat"), &["y", "notes"]).unwrap();
    assert_eq!(arrays.len(), 2);
    assert_eq!(arrays[0].name, "notes");
    assert_eq!(arrays[0].data, MatData::F64(vec![1.5, -2.0]));
    assert_eq!(arrays[1].dims, vec![2, 1]);
    assert_eq!(arrays[1].class, 6);
    let only_y = parse_mat(&bytes, Path::new("t.mat"), &["y"]).unwrap();
    assert_eq!(only_y.len(), 1);
}

#[test]
fn svhn_garbage_mat() {
    let tmp = tempfile::tempdir().unwrap();
    write_svhn(tmp.path(), &Mat { big_endian: false }, false);
    let path = tmp.path().join("train_32x32.mat");
    write(&path, &[0x42; 300]);
    let (p, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("not a MATLAB v5 MAT-file"), "{message}");

    write(&path, b"MATLAB 5.0");
    let (_, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert!(
        message.contains("shorter than the 128-byte MAT-file header"),
        "{message}"
    );

    let mut v73 = b"MATLAB 7.3 MAT-file".to_vec();
    v73.resize(512, 0);
    write(&path, &v73);
    let (_, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert!(message.contains("v7.3"), "{message}");
}

#[test]
fn svhn_truncated_and_bad_zlib_mat() {
    let tmp = tempfile::tempdir().unwrap();
    let mat = Mat { big_endian: false };
    write_svhn(tmp.path(), &mat, false);
    let path = tmp.path().join("train_32x32.mat");
    let bytes = std::fs::read(&path).unwrap();
    write(&path, &bytes[..bytes.len() - 200]);
    let (p, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("claims"), "{message}");
    assert!(message.contains("remain"), "{message}");

    // A compressed element whose zlib header is garbage.
    write_svhn(tmp.path(), &mat, true);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[128..132].try_into().unwrap()),
        15,
        "miCOMPRESSED first"
    );
    bytes[136] = 0xff;
    bytes[137] = 0xff;
    write(&path, &bytes);
    let (p, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("invalid zlib stream"), "{message}");
}

#[test]
fn mat_compressed_element_inflating_past_its_declared_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mat = Mat { big_endian: false };
    write_svhn(tmp.path(), &mat, true);
    // A compressed y whose zlib stream goes on with 16 MiB of zeros after the element.
    let y = svhn_y_double(&mat, &[10.0, 1.0, 9.0]);
    let declared = y.len();
    let mut inflated = y;
    inflated.resize(inflated.len() + (16 << 20), 0);
    let z = zlib(&inflated);
    let mut element = mat.u32(15).to_vec();
    element.extend_from_slice(&mat.u32(z.len() as u32));
    element.extend_from_slice(&z);
    let path = tmp.path().join("train_32x32.mat");
    write(&path, &mat.file(&[svhn_x(&mat, 3), element], false));
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000, "a small file");
    let (p, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("zlib stream inflates past"), "{message}");
    assert!(message.contains(&format!("declares {declared} bytes")), "{message}");
}

#[test]
fn svhn_bad_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let mat = Mat { big_endian: false };
    write_svhn(tmp.path(), &mat, false);
    let path = tmp.path().join("test_32x32.mat");
    // No y.
    write(&path, &mat.file(&[svhn_x(&mat, 2)], false));
    let (p, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert_eq!(p, path);
    assert!(message.contains("no numeric variable 'y'"), "{message}");
    // A label of 11.
    write(
        &path,
        &mat.file(&[svhn_x(&mat, 2), svhn_y_double(&mat, &[1.0, 11.0])], true),
    );
    let (_, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert!(message.contains("y(2) = 11 is not a digit label"), "{message}");
    // Three labels for two images.
    write(&path, &mat.file(&[svhn_x(&mat, 2), svhn_y_u8(&mat, &[1, 2, 3])], false));
    let (_, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert!(
        message.contains("X has dimensions [32, 32, 3, 2], expected [32, 32, 3, 3]"),
        "{message}"
    );
    // Dimensions that do not match the data length.
    let bad = mat.matrix("X", 9, &[32, 32, 3, 5], 2, &[0; 3072 * 2]);
    write(&path, &mat.file(&[bad, svhn_y_u8(&mat, &[1, 2])], false));
    let (_, message) = corrupt_err(load("svhn", &opts(tmp.path())));
    assert!(message.contains("has dimensions [32, 32, 3, 5]"), "{message}");
    assert!(message.contains("but its data holds 6144 bytes"), "{message}");
}

#[test]
fn svhn_missing_lists_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let message = missing_err(load("svhn", &opts(tmp.path())));
    assert!(message.contains("missing train_32x32.mat, test_32x32.mat"), "{message}");
    assert!(
        message.contains(&tmp.path().join("svhn").display().to_string()),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Never panic on arbitrary bytes
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mat_parser_never_panics_on_mutations(
        cut in 0usize..20_000, flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 0..8),
        compress in any::<bool>(), big in any::<bool>(),
    ) {
        let mat = Mat { big_endian: big };
        let mut bytes = mat.file(&[svhn_x(&mat, 1), svhn_y_double(&mat, &[10.0])], compress);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = parse_mat(&bytes, Path::new("fuzz.mat"), &["X", "y"]);
    }

    #[test]
    fn mat_parser_never_panics_on_random_elements(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = Mat { big_endian: false }.file(&[], false);
        bytes.extend_from_slice(&body);
        let _ = parse_mat(&bytes, Path::new("fuzz.mat"), &["X", "y"]);
    }
}

const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Overwrites bytes of `bytes` at the given positions (modulo its length), then cuts it.
fn mutate(bytes: &mut Vec<u8>, flips: &[(usize, u8)], cut: usize) {
    for &(at, v) in flips {
        if !bytes.is_empty() {
            let n = bytes.len();
            bytes[at % n] = v;
        }
    }
    bytes.truncate(cut);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Damaged IDX and CIFAR files give errors (or, when the damage is only in pixel values,
    /// data), never a panic.
    #[test]
    fn idx_and_cifar_loaders_never_panic(
        which in 0usize..4, cut in 0usize..7000,
        flips in proptest::collection::vec((0usize..7000, any::<u8>()), 0..6),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        write_mnist(tmp.path(), false);
        let path = tmp.path().join(MNIST_FILES[which]);
        let mut bytes = std::fs::read(&path).unwrap();
        mutate(&mut bytes, &flips, cut);
        write(&path, &bytes);
        let _ = load("mnist", &opts(tmp.path()));

        let mut train = cifar_record(&[1, 2], 0);
        train.extend(cifar_record(&[3, 4], 1));
        mutate(&mut train, &flips, cut);
        write(&tmp.path().join("train.bin"), &train);
        write(&tmp.path().join("test.bin"), &cifar_record(&[0, 0], 2));
        let _ = load("cifar100", &opts(tmp.path()));
    }
}

// ---------------------------------------------------------------------------------------------
// Download helpers (no network here: checksum and extraction on local bytes)
// ---------------------------------------------------------------------------------------------

#[test]
fn checksum_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("abc.bin");
    write(&path, b"abc");
    // RFC 1321 test vector.
    assert_eq!(md5_file(&path).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    verify_checksum(&path, "900150983CD24FB0D6963F7D28E17F72").unwrap();
    match verify_checksum(&path, "00000000000000000000000000000000") {
        Err(Error::DatasetCorrupt { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("MD5 checksum mismatch"), "{message}");
            assert!(message.contains("found 900150983cd24fb0d6963f7d28e17f72"), "{message}");
        }
        other => panic!("expected DatasetCorrupt, got {other:?}"),
    }
    for kind in DatasetKind::ALL {
        for f in remote_files(kind) {
            assert_eq!(f.md5.len(), 32, "{}", f.url);
            assert!(f.md5.chars().all(|c| c.is_ascii_hexdigit()), "{}", f.url);
        }
    }
    assert!(remote_files(DatasetKind::Mnist)[0]
        .url
        .starts_with("https://ossci-datasets.s3.amazonaws.com/mnist/"));
}

#[test]
fn cifar_archive_extracts_and_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    let labels = write_cifar10(&staging.join("cifar-10-batches-bin"));
    let archive = tmp.path().join("cifar-10-binary.tar.gz");
    {
        let file = std::fs::File::create(&archive).unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        builder
            .append_dir_all("cifar-10-batches-bin", staging.join("cifar-10-batches-bin"))
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    let data = tmp.path().join("data");
    // 12 records of 3073 bytes, as written by write_cifar10.
    extract_tar_gz(&archive, &data, 12 * 3073).unwrap();
    let ds = load("cifar10", &opts(&data)).unwrap();
    assert_eq!(ds.train.labels, labels);

    // A corrupt archive is reported as such.
    let bad = tmp.path().join("bad.tar.gz");
    write(
        &bad,
        &gzip(b"this is not a tar archive at all, just text padded out to look long enough"),
    );
    match extract_tar_gz(&bad, &tmp.path().join("out"), 1000) {
        Err(Error::DatasetCorrupt { path, .. }) => assert_eq!(path, bad),
        other => panic!("expected DatasetCorrupt, got {other:?}"),
    }
}

#[test]
fn an_archive_inflating_past_its_canonical_contents_is_refused() {
    // The bound of the real archives: their data files' record layouts.
    let cifar10 = remote_files(DatasetKind::Cifar10)[0].extract;
    assert_eq!(cifar10, Some(6 * 10_000 * 3073), "5 train batches and the test batch");
    assert_eq!(remote_files(DatasetKind::Cifar100)[0].extract, Some(60_000 * 3074));

    // 8 MiB of zeros (8 KiB compressed) where 1000 bytes of contents are expected.
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("bomb.tar.gz");
    {
        let file = std::fs::File::create(&archive).unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::best()));
        let zeros = vec![0u8; 8 << 20];
        let mut header = tar::Header::new_gnu();
        header.set_size(zeros.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "cifar-10-batches-bin/data_batch_1.bin", zeros.as_slice())
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    assert!(std::fs::metadata(&archive).unwrap().len() < 100_000);
    let out = tmp.path().join("out");
    match extract_tar_gz(&archive, &out, 1000) {
        Err(Error::DatasetCorrupt { path, message }) => {
            assert_eq!(path, archive);
            assert!(message.contains("inflates past"), "{message}");
            assert!(message.contains("should come to 1000 bytes"), "{message}");
        }
        other => panic!("expected DatasetCorrupt, got {other:?}"),
    }
    let written = out.join("cifar-10-batches-bin/data_batch_1.bin");
    assert!(
        std::fs::metadata(&written).map_or(0, |m| m.len()) <= 1000 + (1 << 20),
        "extraction stopped at the bound"
    );
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
