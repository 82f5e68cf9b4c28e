//! The `.pt` reader on a file laid out byte for byte as `torch.save([x, y], "pair.pt")` writes
//! it (PyTorch 2.15; its `data.pkl` copied below), and on every way of damaging it: each
//! truncation of the pickle, flipped bytes, lying lengths, a memo that is read back many times,
//! a tensor larger than its storage. Each must give an error (or a valid
//! result), never a panic or an allocation the file does not pay for. (tests/pt_files.rs reads
//! files that PyTorch itself writes.)

use std::io::Write;

use super::archive::{PtFile, Values};
use super::layouts::{read_pt_set, Layout, PtSources};
use super::pickle;

/// `pair/data.pkl` of `torch.save([torch.arange(6.).reshape(1, 1, 2, 3), torch.tensor([0])])`.
const PAIR_PICKLE: &[u8] = b"\x80\x02]q\x00(ctorch._utils\n_rebuild_tensor_v2\nq\x01((X\x07\x00\x00\x00storageq\x02ctorch\nFloatStorage\nq\x03X\x01\x00\x00\x000q\x04X\x03\x00\x00\x00cpuq\x05K\x06tq\x06QK\x00(K\x01K\x01K\x02K\x03tq\x07(K\x06K\x06K\x03K\x01tq\x08\x89ccollections\nOrderedDict\nq\t)Rq\ntq\x0bRq\x0ch\x01((h\x02ctorch\nLongStorage\nq\rX\x01\x00\x00\x001q\x0eh\x05K\x01tq\x0fQK\x00K\x01\x85q\x10K\x01\x85q\x11\x89h\t)Rq\x12tq\x13Rq\x14e.";

fn storage0() -> Vec<u8> {
    (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect()
}

fn storage1() -> Vec<u8> {
    0i64.to_le_bytes().to_vec()
}

/// A zip archive as torch.save lays it out, with `pickle` as `pair/data.pkl`.
fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("pair/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("pair/byteorder", stored).unwrap();
    zip.write_all(b"little").unwrap();
    for (key, bytes) in storages {
        zip.start_file(format!("pair/data/{key}"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn pair_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let bytes = archive(PAIR_PICKLE, &[("0", storage0()), ("1", storage1())]);
    write(dir, "pair.pt", &bytes)
}

#[test]
fn reads_torch_saves_list_of_two_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let set = read_pt_set(&pair_file(&dir), &PtSources::default()).unwrap();
    assert_eq!(set.layout, Layout::ImagesLabelsList);
    assert_eq!(set.images.shape, vec![1, 1, 2, 3]);
    assert_eq!(set.images.values, Values::Float(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let labels = set.labels.unwrap();
    assert_eq!((labels.dtype, labels.values), ("int64", Values::Int(vec![0])));
}

#[test]
fn every_truncation_of_the_pickle_is_an_error() {
    for n in 0..PAIR_PICKLE.len() {
        assert!(pickle::parse(&PAIR_PICKLE[..n]).is_err(), "{n} bytes parsed");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    // Every byte of the pickle set to each of a few values that are opcodes or lengths.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..PAIR_PICKLE.len() {
        for v in [0x00u8, 0x01, 0x28, 0x2e, 0x51, 0x52, 0x68, 0x71, 0x7f, 0x8a, 0xff] {
            let mut p = PAIR_PICKLE.to_vec();
            p[i] = v;
            let bytes = archive(&p, &[("0", storage0()), ("1", storage1())]);
            let path = write(&dir, "flip.pt", &bytes);
            let _ = read_pt_set(&path, &PtSources::default());
        }
    }
}

#[test]
fn a_lying_length_is_refused_before_allocating() {
    // BINUNICODE claiming 4 GiB, BINBYTES8 claiming 2^60 bytes, LONG4 claiming 4 GiB.
    for p in [
        &b"\x80\x02X\xff\xff\xff\xffabc."[..],
        &b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x10abc."[..],
        &b"\x80\x02\x8b\xff\xff\xff\xff."[..],
    ] {
        let e = pickle::parse(p).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}

#[test]
fn a_memo_read_back_many_times_costs_one_object() {
    // A list, memoised, then appended to itself through BINGET 2000 times.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for _ in 0..2000 {
        p.extend_from_slice(b"h\x00a");
    }
    p.push(b'.');
    let parsed = pickle::parse(&p).unwrap();
    assert!(parsed.nodes.len() < 10, "{} nodes", parsed.nodes.len());
}

#[test]
fn a_tensor_larger_than_its_storage_is_refused() {
    // The images claim 6 floats; their storage holds 2.
    let dir = tempfile::tempdir().unwrap();
    let short = storage0()[..8].to_vec();
    let bytes = archive(PAIR_PICKLE, &[("0", short), ("1", storage1())]);
    let path = write(&dir, "short.pt", &bytes);
    let e = read_pt_set(&path, &PtSources::default()).unwrap_err().to_string();
    assert!(e.contains("should hold 6 float32 values"), "{e}");
}

#[test]
fn a_missing_storage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = archive(PAIR_PICKLE, &[("0", storage0())]);
    let path = write(&dir, "missing.pt", &bytes);
    let e = read_pt_set(&path, &PtSources::default()).unwrap_err().to_string();
    assert!(e.contains("storage '1' is not in the archive"), "{e}");
}

#[test]
fn not_a_zip_and_the_legacy_format_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = PtFile::open(&write(&dir, "legacy.pt", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."))
        .err()
        .unwrap();
    assert!(e.to_string().contains("legacy format"), "{e}");
    let e = PtFile::open(&write(&dir, "text.pt", b"hello")).err().unwrap();
    assert!(e.to_string().contains("not a PyTorch file"), "{e}");
    let e = PtFile::open(&write(&dir, "cut.pt", &archive(PAIR_PICKLE, &[])[..40]))
        .err()
        .unwrap();
    assert!(e.to_string().contains("zip"), "{e}");
}

#[test]
fn an_unexpected_layout_names_the_expected_ones() {
    // {'x': 1}
    let dir = tempfile::tempdir().unwrap();
    let bytes = archive(b"\x80\x02}q\x00X\x01\x00\x00\x00xK\x01s.", &[]);
    let e = read_pt_set(&write(&dir, "dict.pt", &bytes), &PtSources::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("keys [x]") && e.contains("DatasetCondensation"), "{e}");
}
