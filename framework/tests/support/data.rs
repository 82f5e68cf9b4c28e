//! Helpers of the dataset tests: writing fixture files, compressing them, the load options
//! that point at them, the expected normalised value of a byte, and the two load errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use cafe_framework::data::{Dataset, LoadOptions};
use cafe_framework::Error;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn opts(dir: &Path) -> LoadOptions {
    LoadOptions {
        data_dir: Some(dir.to_path_buf()),
        download: false,
        seed: 0,
        zca: None,
    }
}

pub fn norm(v: u8, mean: f32, std: f32) -> f32 {
    (v as f32 / 255.0 - mean) / std
}

pub fn assert_close(a: f32, b: f32, what: &str) {
    assert!((a - b).abs() <= 1e-5, "{what}: {a} != {b}");
}

pub fn corrupt_err(result: cafe_framework::Result<Dataset>) -> (PathBuf, String) {
    match result {
        Err(Error::DatasetCorrupt { path, message }) => (path, message),
        Err(other) => panic!("expected DatasetCorrupt, got {other:?}"),
        Ok(_) => panic!("expected DatasetCorrupt, the load succeeded"),
    }
}

pub fn missing_err(result: cafe_framework::Result<Dataset>) -> String {
    match result {
        Err(Error::DatasetMissing { message, .. }) => message,
        Err(other) => panic!("expected DatasetMissing, got {other:?}"),
        Ok(_) => panic!("expected DatasetMissing, the load succeeded"),
    }
}
