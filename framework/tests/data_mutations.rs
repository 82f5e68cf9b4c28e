//! Damaged dataset files never panic the loaders: mutated and random MAT-files, IDX and CIFAR
//! files (proptest). The coverage-guided and mutational fuzzing of every parser is in
//! `fuzz/` and `tests/fuzz_smoke.rs`.

mod support;

use std::path::Path;

use proptest::prelude::*;

use cafe_framework::data::load;
use cafe_framework::data::mat::parse_mat;
use support::cifar::cifar_record;
use support::data::{opts, write};
use support::idx::write_mnist;
use support::mat::{svhn_x, svhn_y_double, Mat};

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
