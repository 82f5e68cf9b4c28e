//! SVHN from MATLAB v5 MAT-file fixtures (plain, miCOMPRESSED, big-endian), the MAT reader
//! itself, and corrupted files.

mod support;

use std::path::Path;

use cafe_framework::data::mat::{parse_mat, MatData};
use cafe_framework::data::{load, DatasetKind, ImageSet};
use cafe_framework::ImageShape;
use support::data::{assert_close, corrupt_err, missing_err, norm, opts, write, zlib};
use support::mat::{svhn_pixel, svhn_x, svhn_y_double, svhn_y_u8, write_svhn, Mat};

// ---------------------------------------------------------------------------------------------
// SVHN / MAT v5

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
