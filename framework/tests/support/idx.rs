//! IDX fixtures (MNIST, Fashion-MNIST): image and label files, and a whole dataset folder.

use std::path::Path;

use super::data::{gzip, write};

/// An IDX image file: magic 2051, [n, rows, cols], then the pixels.
pub fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [2051u32, n, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// An IDX label file: magic 2049, [n], then the labels.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [2049u32, labels.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// Pixel `k` of MNIST fixture image `i` (distinct per image and position).
pub fn mnist_pixel(i: usize, k: usize) -> u8 {
    ((i * 37 + k * 11) % 256) as u8
}

/// Writes a full MNIST-style fixture (3 train images, 2 test images) into `dir`, gzipped or
/// plain. Returns (train labels, test labels).
pub fn write_mnist(dir: &Path, gz: bool) -> (Vec<u8>, Vec<u8>) {
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
