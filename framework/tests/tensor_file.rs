//! The tensor-file module: round trips, the same bytes for the same content (also across
//! processes, for every format), and lying or truncated files of every kind: each refused with
//! an error that names the file and what was wrong, without a panic and without allocating
//! more than the file holds.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cafe_framework::checkpoint::Checkpoint;
use cafe_framework::fuzz::ParamHolder;
use cafe_framework::synthetic::SyntheticSet;
use cafe_framework::teacher::{load_teacher, save_teacher, TeacherArch};
use cafe_framework::tensor_file::{Dtype, FileKind, TensorFile, TensorWriter, MAX_HEADER_LEN, MAX_RANK};
use cafe_framework::trajectory::{ExpertRecord, ExpertTrajectory};
use cafe_framework::{Error, ImageShape};
use candle_core::{Device, Tensor};
use support::alloc::{measure, CountingAlloc};
use support::golden;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// A safetensors file of `header` (JSON text, unpadded) and `data`.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `bytes` written to a file in a fresh folder.
fn file_of(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.safetensors");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// The message of the error that opening and reading every tensor of `bytes` as a synthetic
/// set file gives; checks that it is a `SyntheticCorrupt` naming the file, and that no single
/// allocation was larger than the file (plus the 64 KiB read buffer).
fn refused(bytes: &[u8]) -> String {
    let (_dir, path) = file_of(bytes);
    let (result, allocated) = measure(|| -> cafe_framework::Result<()> {
        let mut file = TensorFile::open(&path, FileKind::SyntheticSet)?;
        let names: Vec<String> = file.names().map(String::from).collect();
        for name in names {
            file.read_f32(&name)?;
        }
        Ok(())
    });
    assert!(
        allocated.largest <= bytes.len() + (64 << 10),
        "an allocation of {} bytes for a file of {}",
        allocated.largest,
        bytes.len()
    );
    match result {
        Err(Error::SyntheticCorrupt { path: p, message }) => {
            assert_eq!(p, path);
            message
        }
        other => panic!("expected SyntheticCorrupt, got {other:?}"),
    }
}

fn assert_says(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not say {part:?}");
    }
}

fn bits(t: &Tensor) -> (Vec<usize>, Vec<u32>) {
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (t.dims().to_vec(), values.iter().map(|v| v.to_bits()).collect())
}

// ---------------------------------------------------------------------------------------------
// Round trips and bytes
// ---------------------------------------------------------------------------------------------

#[test]
fn tensors_and_metadata_round_trip() {
    let dev = Device::Cpu;
    let matrix = Tensor::from_vec(vec![1.5f32, -2.0, f32::NAN, 0.0, -0.0, 7.0], (2, 3), &dev).unwrap();
    let scalar = Tensor::new(3.25f32, &dev).unwrap();
    let empty = Tensor::zeros((0, 3), candle_core::DType::F32, &dev).unwrap();
    let labels = Tensor::new(&[3u32, 0, u32::MAX], &dev).unwrap();
    let mut writer = TensorWriter::new("a test file");
    writer
        .f32("matrix", &matrix)
        .unwrap()
        .f32("scalar", &scalar)
        .unwrap()
        .f32("empty", &empty)
        .unwrap()
        .u32("labels", &labels)
        .unwrap()
        .metadata("b", "two")
        .metadata("a", "ünï \"q\"\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    writer.write(&path).unwrap();

    let mut file = TensorFile::open(&path, FileKind::Checkpoint).unwrap();
    assert_eq!(
        file.names().collect::<Vec<_>>(),
        ["empty", "labels", "matrix", "scalar"]
    );
    assert_eq!(file.metadata()["a"], "ünï \"q\"\n");
    assert_eq!(file.metadata()["b"], "two");
    assert_eq!(file.info("labels").unwrap().dtype, Dtype::U32);
    assert_eq!(bits(&file.tensor_f32("matrix", &dev).unwrap()), bits(&matrix));
    assert_eq!(bits(&file.tensor_f32("scalar", &dev).unwrap()), bits(&scalar));
    assert_eq!(file.tensor_f32("empty", &dev).unwrap().dims(), [0, 3]);
    assert_eq!(file.read_u32("labels").unwrap(), (vec![3], vec![3, 0, u32::MAX]));
    assert_eq!(file.read_labels("labels").unwrap().1, [3, 0, u32::MAX]);
    assert!(file.optional_f32("absent", &dev).unwrap().is_none());
    // Asking for the wrong type, or a tensor that is not there, names the tensor.
    let e = file.read_f32("labels").unwrap_err().to_string();
    assert_says(
        &e,
        &["checkpoint", "t.safetensors", "tensor 'labels' is U32, expected F32"],
    );
    let e = file.read_f32("nothing").unwrap_err().to_string();
    assert_says(&e, &["it holds no tensor 'nothing'"]);
}

#[test]
fn the_same_content_gives_the_same_bytes_in_any_order() {
    let dev = Device::Cpu;
    let a = Tensor::new(&[1f32, 2.0], &dev).unwrap();
    let b = Tensor::new(&[[3f32], [4.0]], &dev).unwrap();
    let l = Tensor::new(&[1u32, 0], &dev).unwrap();
    let mut one = TensorWriter::new("one");
    one.f32("b", &b).unwrap().u32("l", &l).unwrap().f32("a", &a).unwrap();
    one.metadata("z", "1").metadata("Z", "2").metadata("m", "3");
    let mut two = TensorWriter::new("two");
    two.metadata("m", "3").metadata("z", "1").metadata("Z", "2");
    two.f32("a", &a).unwrap().f32("b", &b).unwrap().u32("l", &l).unwrap();
    let bytes = one.to_bytes().unwrap();
    assert_eq!(bytes, two.to_bytes().unwrap());

    // The header: sorted keys, compact JSON padded with spaces to a multiple of 8, the data
    // f32 tensors before u32 ones (the layout of the safetensors crate).
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header.trim_end(),
        r#"{"__metadata__":{"Z":"2","m":"3","z":"1"},"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]},"b":{"data_offsets":[8,16],"dtype":"F32","shape":[2,1]},"l":{"data_offsets":[16,24],"dtype":"U32","shape":[2]}}"#
    );
    assert!(header[header.trim_end().len()..].bytes().all(|b| b == b' '));
}

#[test]
fn the_writer_refuses_names_it_cannot_write() {
    let t = Tensor::new(&[1f32], &Device::Cpu).unwrap();
    let mut w = TensorWriter::new("expert 3");
    w.f32("x", &t).unwrap();
    let e = w.f32("x", &t).err().unwrap().to_string();
    assert_says(&e, &["expert 3", "'x' is given twice"]);
    let e = w.f32("__metadata__", &t).err().unwrap().to_string();
    assert_says(&e, &["metadata key"]);
    let e = w.f32_values("y", &[2, 2], &[1.0]).err().unwrap().to_string();
    assert_says(&e, &["shape [2, 2] but 1 values"]);
}

/// Writes every format's golden content to the folder in `CAFE_TENSOR_FILE_OUT`; run by
/// [`every_format_gives_the_same_bytes_in_two_processes`] in a second process, a no-op
/// otherwise.
#[test]
fn write_every_format_for_another_process() {
    if let Some(dir) = std::env::var_os("CAFE_TENSOR_FILE_OUT") {
        write_every_format(Path::new(&dir));
    }
}

fn write_every_format(dir: &Path) {
    golden::synthetic_set().save(&dir.join("set")).unwrap();
    golden::checkpoint().save(&dir.join("checkpoint")).unwrap();
    golden::expert().save(&dir.join("expert")).unwrap();
    save_teacher(&golden::teacher(), "shapes", &dir.join("teacher")).unwrap();
}

#[test]
fn every_format_gives_the_same_bytes_in_two_processes() {
    let here = tempfile::tempdir().unwrap();
    let again = tempfile::tempdir().unwrap();
    let there = tempfile::tempdir().unwrap();
    write_every_format(here.path());
    write_every_format(again.path());
    // The hash maps of another process are seeded differently: a header ordered by one would
    // differ there.
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "write_every_format_for_another_process",
            "--test-threads",
            "1",
        ])
        .env("CAFE_TENSOR_FILE_OUT", there.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for name in ["set", "checkpoint", "expert", "teacher"] {
        let bytes = std::fs::read(here.path().join(name)).unwrap();
        assert!(
            bytes == std::fs::read(again.path().join(name)).unwrap(),
            "{name}: two writes differ"
        );
        assert!(
            bytes == std::fs::read(there.path().join(name)).unwrap(),
            "{name}: two processes differ"
        );
    }
}

#[test]
fn expert_and_teacher_files_written_now_load() {
    let dir = tempfile::tempdir().unwrap();
    write_every_format(dir.path());
    let expert = golden::expert();
    let loaded = ExpertTrajectory::load(&dir.path().join("expert"), &Device::Cpu).unwrap();
    assert_eq!(loaded.record, expert.record);
    for e in 0..=2 {
        let (a, b) = (loaded.epoch(e).unwrap(), expert.epoch(e).unwrap());
        assert_eq!(
            a.iter().map(bits).collect::<Vec<_>>(),
            b.iter().map(bits).collect::<Vec<_>>()
        );
    }
    let arch = golden::teacher_arch();
    let teacher = load_teacher(
        &teacher_arch(&arch),
        "shapes",
        &dir.path().join("teacher"),
        &Device::Cpu,
    )
    .unwrap();
    let params: Vec<_> = teacher.net.parameters().iter().map(|v| bits(v.as_tensor())).collect();
    assert_eq!(params, golden::teacher_params().iter().map(bits).collect::<Vec<_>>());
    let ck = Checkpoint::load(&dir.path().join("checkpoint"), &Device::Cpu).unwrap();
    assert_eq!(ck.state, golden::checkpoint().state);
}

fn teacher_arch(arch: &ParamHolder) -> TeacherArch<'_> {
    TeacherArch {
        arch,
        name: "params",
        shape: ImageShape::new(1, 2, 3),
        classes: 2,
    }
}

// ---------------------------------------------------------------------------------------------
// Lying and truncated files
// ---------------------------------------------------------------------------------------------

const ONE: &str = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;

#[test]
fn a_file_shorter_than_its_length_field() {
    for bytes in [&b""[..], b"\x08\0\0"] {
        let m = refused(bytes);
        assert_says(&m, &["shorter than the 8-byte length"]);
    }
}

#[test]
fn a_header_longer_than_the_file_or_than_the_cap() {
    let mut bytes = raw(ONE, &[0; 8]);
    let claimed = bytes.len() as u64; // 8 bytes more than follow the length field
    bytes[..8].copy_from_slice(&claimed.to_le_bytes());
    let m = refused(&bytes);
    assert_says(&m, &[&format!("header of {claimed} bytes"), "only", "truncated"]);
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let m = refused(&bytes);
    assert_says(&m, &["1099511627776", &MAX_HEADER_LEN.to_string()]);
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&bytes);
}

#[test]
fn truncated_or_padded_data() {
    let good = raw(ONE, &[0; 8]);
    let m = refused(&good[..good.len() - 3]);
    assert_says(&m, &["tensor 'a'", "[0, 8]", "past the 5 bytes of the data section"]);
    let mut long = good.clone();
    long.extend_from_slice(b"polyglot");
    let m = refused(&long);
    assert_says(&m, &["cover 8 bytes of data but 16 bytes follow"]);
}

#[test]
fn shapes_that_overflow_or_disagree_with_their_bytes() {
    let huge = 1u64 << 40;
    let m = refused(&raw(
        &format!(r#"{{"a":{{"dtype":"F32","shape":[{huge},{huge}],"data_offsets":[0,8]}}}}"#),
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a'", "overflow"]);
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a' is F32 [3], 12 bytes", "hold 8 bytes"]);
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a'", "invalid value"]);
    let dims = vec!["1"; MAX_RANK + 1].join(",");
    let m = refused(&raw(
        &format!(r#"{{"a":{{"dtype":"F32","shape":[{dims}],"data_offsets":[0,4]}}}}"#),
        &[0; 4],
    ));
    assert_says(&m, &["more than 32 dimensions"]);
}

#[test]
fn offsets_out_of_range_overlapping_or_with_gaps() {
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4096,4104]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["[4096, 4104]", "past the 8 bytes"]);
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["end lies before its start"]);
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        &[0; 12],
    ));
    assert_says(
        &m,
        &["tensor 'b' starts at byte 4", "overlaps 'a', which ends at byte 8"],
    );
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        &[0; 8],
    ));
    assert_says(
        &m,
        &["tensor 'a' starts at byte 4", "the first tensor must start at byte 0"],
    );
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
        &[0; 12],
    ));
    assert_says(
        &m,
        &[
            "tensor 'b' starts at byte 8",
            "leaves a gap after 'a', which ends at byte 4",
        ],
    );
    let m = refused(&raw(
        &format!(
            r#"{{"a":{{"dtype":"F32","shape":[2],"data_offsets":[{},{}]}}}}"#,
            u64::MAX - 7,
            u64::MAX
        ),
        &[0; 8],
    ));
    assert_says(&m, &["past the 8 bytes"]);
}

#[test]
fn duplicate_names_and_keys() {
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a' appears twice"]);
    let m = refused(&raw(
        r#"{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["metadata key 'k' appears twice"]);
    let m = refused(&raw(
        r#"{"__metadata__":{},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["\"__metadata__\" appears twice"]);
}

#[test]
fn headers_that_are_not_the_json_of_a_tensor_file() {
    let mut bytes = raw(ONE, &[0; 8]);
    bytes[10] = 0xff;
    assert_says(&refused(&bytes), &["not UTF-8", "offset 2"]);
    assert_says(&refused(&raw("not json at all", &[])), &["not the JSON object"]);
    assert_says(&refused(&raw("[1, 2]", &[])), &["not the JSON object"]);
    let m = refused(&raw(
        r#"{"__metadata__":{"k":5},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["metadata 'k'", "expected a string"]);
    let m = refused(&raw(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a'", "unknown field `extra`"]);
    let m = refused(&raw(r#"{"a":{"dtype":"F32","shape":[2]}}"#, &[0; 8]));
    assert_says(&m, &["tensor 'a'", "missing field `data_offsets`"]);
}

#[test]
fn deeply_nested_json_is_refused_without_deep_recursion() {
    let deep = |open: &str, close: &str| format!("{}{}", open.repeat(10_000), close.repeat(10_000));
    let headers = [
        deep("[", "]"),
        format!(r#"{{"a":{}}}"#, deep("[", "]")),
        format!(
            r#"{{"a":{{"dtype":"F32","shape":{},"data_offsets":[0,0]}}}}"#,
            deep("[", "]")
        ),
        format!(r#"{{"__metadata__":{{"k":{}}}}}"#, deep(r#"{"k":"#, "}")),
        format!(r#"{{"a":{{"extra":{}}}}}"#, deep("[", "]")),
    ];
    // A thread with a small stack: parsing must not recurse with the nesting.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            for header in headers {
                let m = refused(&raw(&header, &[]));
                assert!(m.contains("not the JSON object"), "{m}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn unknown_and_unexpected_dtypes() {
    let m = refused(&raw(
        r#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["unknown dtype 'F33'", "F32"]);
    // A valid dtype where f32 is read.
    let m = refused(&raw(
        r#"{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert_says(&m, &["tensor 'a' is I32, expected F32"]);
    // i64 labels outside u32.
    let (_dir, path) = file_of(&raw(
        r#"{"l":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
        &(-1i64).to_le_bytes(),
    ));
    let e = TensorFile::open(&path, FileKind::SyntheticSet)
        .unwrap()
        .read_labels("l")
        .unwrap_err()
        .to_string();
    assert_says(&e, &["label 0 of 'l' is -1"]);
}

// ---------------------------------------------------------------------------------------------
// Each format: the right error, and a missing tensor named
// ---------------------------------------------------------------------------------------------

/// The golden file `name`'s bytes with tensor `tensor` renamed (same length, so the header
/// stays valid and only the name is missing).
fn renamed(bytes: &[u8], tensor: &str, to: &str) -> Vec<u8> {
    assert_eq!(tensor.len(), to.len());
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let from = format!("\"{tensor}\":");
    assert!(header.contains(&from), "{tensor} not in {header}");
    let header = header.replacen(&from, &format!("\"{to}\":"), 1);
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

fn written(write: impl FnOnce(&Path)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write(&path);
    std::fs::read(path).unwrap()
}

#[test]
fn a_synthetic_set_missing_a_tensor_or_broken_is_called_a_synthetic_set() {
    let set = written(|p| golden::synthetic_set().save(p).unwrap());
    let (_dir, path) = file_of(&renamed(&set, "labels", "lab_ls"));
    let e = SyntheticSet::load(&path, &Device::Cpu).err().unwrap();
    assert!(matches!(e, Error::SyntheticCorrupt { .. }), "{e:?}");
    assert_says(&e.to_string(), &["synthetic set", "missing tensor 'labels'"]);
    // The header alone: a broken set is a synthetic set, not a dataset file.
    let (_dir, path) = file_of(&set[..set.len() - 1]);
    let e = SyntheticSet::read_metadata(&path).unwrap_err();
    assert!(matches!(e, Error::SyntheticCorrupt { .. }), "{e:?}");
    let text = e.to_string();
    assert_says(&text, &["synthetic set", "lying.safetensors", "cafe-lab condense"]);
    assert!(!text.contains("dataset file"), "{text}");
}

#[test]
fn a_checkpoint_missing_a_tensor() {
    let ck = written(|p| golden::checkpoint().save(p).unwrap());
    let (_dir, path) = file_of(&renamed(&ck, "images", "imagex"));
    let e = Checkpoint::load(&path, &Device::Cpu).err().unwrap();
    assert!(matches!(e, Error::CheckpointCorrupt { .. }), "{e:?}");
    assert_says(&e.to_string(), &["it has no 'images' tensor"]);
    let (_dir, path) = file_of(&renamed(&ck, "learned.lr", "learned.lx"));
    let e = Checkpoint::load(&path, &Device::Cpu).err().unwrap();
    assert_says(&e.to_string(), &["it names learned tensor 'lr' but does not hold it"]);
}

#[test]
fn an_expert_missing_a_tensor_or_claiming_too_much() {
    let expert = written(|p| golden::expert().save(p).unwrap());
    let (_dir, path) = file_of(&renamed(&expert, "epoch_0001.param_000", "epoch_0001.param_00x"));
    let e = ExpertTrajectory::load(&path, &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::ExpertCorrupt { .. }), "{e:?}");
    assert_says(
        &e.to_string(),
        &[
            "expert trajectory",
            "holds no tensor epoch_0001.param_000",
            "cafe-lab experts",
        ],
    );
    // Epoch 0 alone is still there.
    assert_eq!(
        ExpertTrajectory::load_through(&path, &Device::Cpu, 0).unwrap().epochs(),
        0
    );
    // A record claiming 2^60 epochs, or none of its parameters: refused, nothing allocated
    // from the claim.
    let mut record = golden::expert().record;
    record.epochs = 1 << 60;
    let (_dir, path) = file_of(&claiming(&record));
    let (e, allocated) = measure(|| ExpertTrajectory::load(&path, &Device::Cpu).unwrap_err());
    assert_says(
        &e.to_string(),
        &["holds no tensor epoch_0003.param_000", "1152921504606846976 epochs"],
    );
    assert!(allocated.largest < 1 << 20, "{allocated:?}");
    // usize::MAX epochs: `epochs + 1` overflowed before (a panic with overflow checks).
    record.epochs = usize::MAX;
    let (_dir, path) = file_of(&claiming(&record));
    let e = ExpertTrajectory::load(&path, &Device::Cpu).unwrap_err();
    assert_says(&e.to_string(), &["holds no tensor epoch_0003.param_000"]);
    record.epochs = 2;
    record.parameter_shapes.clear();
    let (_dir, path) = file_of(&claiming(&record));
    let e = ExpertTrajectory::load(&path, &Device::Cpu).unwrap_err();
    assert_says(&e.to_string(), &["lists no parameters"]);
    let mut garbled = written(|p| golden::expert().save(p).unwrap());
    let at = garbled.windows(7).position(|w| w == b"\"epochs").unwrap();
    garbled[at + 1] = b'E';
    let (_dir, path) = file_of(&garbled);
    let e = ExpertRecord::read(&path).unwrap_err();
    assert!(matches!(e, Error::ExpertCorrupt { .. }), "{e:?}");
}

/// The golden expert's tensors with `record` as metadata (only the record's metadata
/// changes; the tensors are those of two epochs).
fn claiming(record: &ExpertRecord) -> Vec<u8> {
    let expert = golden::expert();
    let mut w = TensorWriter::new("expert");
    for e in 0..=2 {
        for (p, t) in expert.epoch(e).unwrap().iter().enumerate() {
            w.f32(format!("epoch_{e:04}.param_{p:03}"), t).unwrap();
        }
    }
    let json = serde_json::to_value(record).unwrap();
    for (key, value) in json.as_object().unwrap() {
        let text = match value {
            serde_json::Value::String(s) if ["dataset", "arch", "cafe_lab_version"].contains(&key.as_str()) => {
                s.clone()
            }
            other => other.to_string(),
        };
        w.metadata(key.clone(), text);
    }
    w.metadata("format", "cafe-lab expert trajectory 1");
    w.to_bytes().unwrap()
}

#[test]
fn a_teacher_missing_a_parameter_or_not_a_teacher() {
    let teacher = written(|p| save_teacher(&golden::teacher(), "shapes", p).unwrap());
    let arch = golden::teacher_arch();
    let (_dir, path) = file_of(&renamed(&teacher, "param.0001", "param.000x"));
    let e = load_teacher(&teacher_arch(&arch), "shapes", &path, &Device::Cpu)
        .err()
        .unwrap();
    assert_says(&e.to_string(), &["it has no parameter 1; the network has 3"]);
    // A synthetic set where a teacher should be.
    let (_dir, path) = file_of(&written(|p| golden::synthetic_set().save(p).unwrap()));
    let e = load_teacher(&teacher_arch(&arch), "shapes", &path, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, Error::TeacherCorrupt { .. }), "{e:?}");
    assert_says(&e.to_string(), &["teacher", "'format' metadata", "--kd"]);
    let (_dir, path) = file_of(&teacher[..100]);
    let e = load_teacher(&teacher_arch(&arch), "shapes", &path, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, Error::TeacherCorrupt { .. }), "{e:?}");
}
