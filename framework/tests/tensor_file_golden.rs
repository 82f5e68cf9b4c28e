//! Files written by earlier cafe-lab versions: the synthetic set's bytes stay exactly those of
//! its golden file, and older checkpoint, expert and teacher files (unsorted headers) still load
//! to the values they were written from. `support/golden.rs` says how the files were made.

mod support;

use std::path::{Path, PathBuf};

use cafe_framework::checkpoint::Checkpoint;
use cafe_framework::synthetic::SyntheticSet;
use cafe_framework::teacher::{load_teacher, save_teacher, TeacherArch};
use cafe_framework::trajectory::{ExpertRecord, ExpertTrajectory};
use cafe_framework::ImageShape;
use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};
use support::golden;

/// SHA-256 of `golden/synthetic_set.safetensors`.
const SYNTHETIC_SET_SHA256: &str = "626cee447d2d611e79e94956f5862c04c57078a892dad17f21f7ba26455b8e0e";

/// The golden file `name`; with `CAFE_WRITE_GOLDEN` set, first (re)written by `write`.
fn golden_file(name: &str, write: impl FnOnce(&Path)) -> PathBuf {
    let path = golden::golden_dir().join(name);
    if std::env::var_os("CAFE_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden::golden_dir()).unwrap();
        write(&path);
    }
    path
}

/// The bits of every value (NaN compares equal to itself this way).
fn bits(t: &Tensor) -> (Vec<usize>, Vec<u32>) {
    let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (t.dims().to_vec(), values.iter().map(|v| v.to_bits()).collect())
}

#[test]
fn synthetic_set_bytes_are_those_of_the_golden_file() {
    let set = golden::synthetic_set();
    let path = golden_file("synthetic_set.safetensors", |p| set.save(p).unwrap());
    let want = std::fs::read(&path).unwrap();
    // The file's digest when it was written by the code before `tensor_file.rs` (commit
    // f9c9bac): regenerating the file cannot quietly move the target.
    let digest: String = Sha256::digest(&want).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, SYNTHETIC_SET_SHA256, "{} was rewritten", path.display());
    assert!(
        set.to_safetensors().unwrap() == want,
        "the synthetic set's bytes changed from {}",
        path.display()
    );
    let loaded = SyntheticSet::load(&path, &Device::Cpu).unwrap();
    assert_eq!(bits(loaded.images.as_tensor()), bits(set.images.as_tensor()));
    assert_eq!(loaded.labels.to_vec1::<u32>().unwrap(), [0, 0, 1, 1]);
    assert_eq!((loaded.ipc, loaded.classes), (2, 2));
    assert_eq!(loaded.shape, ImageShape::new(1, 2, 3));
    assert_eq!((&loaded.mean[..], &loaded.std[..]), (&[0.5][..], &[0.25][..]));
    assert_eq!(loaded.metadata, set.metadata);
    let mut names: Vec<&str> = set.learned.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    assert_eq!(
        loaded.learned.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        names,
        "learned extras load in name order"
    );
    for l in &loaded.learned {
        assert_eq!(bits(l.var.as_tensor()), bits(set.learned(&l.name).unwrap().as_tensor()));
    }
    assert_eq!(SyntheticSet::read_metadata(&path).unwrap(), set.metadata);
    // And saved again, the loaded set gives the same bytes.
    assert!(loaded.to_safetensors().unwrap() == want);
}

#[test]
fn an_older_checkpoint_loads() {
    let ck = golden::checkpoint();
    let path = golden_file("checkpoint_unsorted.safetensors", |p| ck.save(p).unwrap());
    let loaded = Checkpoint::load(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.state, ck.state);
    assert_eq!(bits(&loaded.images), bits(&ck.images));
    assert_eq!(
        bits(loaded.velocity.as_ref().unwrap()),
        bits(ck.velocity.as_ref().unwrap())
    );
    assert_eq!(loaded.learned.len(), 2);
    for (a, b) in loaded.learned.iter().zip(&ck.learned) {
        assert_eq!(a.name, b.name);
        assert_eq!(bits(&a.value), bits(&b.value));
        assert_eq!(a.velocity.as_ref().map(bits), b.velocity.as_ref().map(bits));
    }
}

#[test]
fn an_older_expert_file_loads() {
    let expert = golden::expert();
    let path = golden_file("expert_unsorted.safetensors", |p| expert.save(p).unwrap());
    assert_eq!(ExpertRecord::read(&path).unwrap(), expert.record);
    let loaded = ExpertTrajectory::load(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.record, expert.record);
    assert_eq!(loaded.epochs(), 2);
    for e in 0..=2 {
        let (a, b) = (loaded.epoch(e).unwrap(), expert.epoch(e).unwrap());
        assert_eq!(
            a.iter().map(bits).collect::<Vec<_>>(),
            b.iter().map(bits).collect::<Vec<_>>()
        );
    }
    let through = ExpertTrajectory::load_through(&path, &Device::Cpu, 1).unwrap();
    assert_eq!(through.epochs(), 1);
}

#[test]
fn an_older_teacher_file_loads() {
    let teacher = golden::teacher();
    let path = golden_file("teacher_unsorted.safetensors", |p| {
        save_teacher(&teacher, "shapes", p).unwrap()
    });
    let arch = golden::teacher_arch();
    let loaded = load_teacher(
        &TeacherArch {
            arch: &arch,
            name: "params",
            shape: ImageShape::new(1, 2, 3),
            classes: 2,
        },
        "shapes",
        &path,
        &Device::Cpu,
    )
    .unwrap();
    let mut info = teacher.info.clone();
    info.source = path.display().to_string();
    assert_eq!(loaded.info, info);
    let params: Vec<_> = loaded.net.parameters().iter().map(|v| bits(v.as_tensor())).collect();
    assert_eq!(params, golden::teacher_params().iter().map(bits).collect::<Vec<_>>());
}
