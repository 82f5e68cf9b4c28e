//! The download helpers without a network: MD5 checksums, and extraction of local archives
//! (a real one, a corrupt one, and one that inflates past its expected contents).

mod support;

use flate2::write::GzEncoder;
use flate2::Compression;

use cafe_framework::data::download::{extract_tar_gz, md5_file, remote_files, verify_checksum};
use cafe_framework::data::{load, DatasetKind};
use cafe_framework::Error;
use support::cifar::write_cifar10;
use support::data::{gzip, opts, write};

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
