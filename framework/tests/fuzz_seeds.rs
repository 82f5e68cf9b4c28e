//! The seed corpus of the fuzz targets (`fuzz/seeds/<target>/`): valid inputs made by the
//! tests' own fixture writers and golden contents, plus copies of the repository's protocol
//! files and of the example run's set and configuration. The test checks that the committed
//! seeds made by the writers are still what the writers make, and that the copies are there
//! (they follow their originals only when `CAFE_WRITE_FUZZ_SEEDS=1`, or
//! `scripts/fuzz/seeds.sh`, writes the corpus again: a change to a protocol file elsewhere
//! does not break this test).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cafe_framework::fuzz::Target;
use cafe_framework::teacher::save_teacher;
use serde_json::Value;
use support::cifar::cifar_record;
use support::data::{gzip, zlib};
use support::golden;
use support::idx::{idx_images, idx_labels, mnist_pixel};
use support::mat::{svhn_x, svhn_y_double, svhn_y_u8, Mat};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn written(write: impl FnOnce(&Path)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write(&path);
    std::fs::read(path).unwrap()
}

fn golden_file(name: &str) -> Vec<u8> {
    std::fs::read(golden::golden_dir().join(name)).unwrap()
}

/// JSON without nulls (TOML has none), as a TOML document.
fn as_toml(value: &Value) -> String {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    toml::to_string(&strip(value)).unwrap()
}

/// Where a seed comes from.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    /// Made here by the tests' writers: the committed file must stay equal.
    Written,
    /// A copy of a file of the repository, refreshed only when the corpus is written again.
    Copied,
}

/// Every seed, by target and file name.
fn seeds() -> BTreeMap<(&'static str, String), (Origin, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut put = |origin: Origin, target: Target, name: &str, bytes: Vec<u8>| {
        out.insert((target.name(), name.to_string()), (origin, bytes));
    };
    use Origin::{Copied, Written};
    let set = written(|p| golden::synthetic_set().save(p).unwrap());
    let checkpoint = written(|p| golden::checkpoint().save(p).unwrap());
    let expert = written(|p| golden::expert().save(p).unwrap());
    let teacher = written(|p| save_teacher(&golden::teacher(), "shapes", p).unwrap());
    let real_set = std::fs::read(repo().join("experiments/dc-fmnist-ipc1-seed0/synthetic.safetensors")).unwrap();
    put(Written, Target::TensorFile, "set.safetensors", set.clone());
    put(
        Written,
        Target::TensorFile,
        "checkpoint.safetensors",
        checkpoint.clone(),
    );
    put(Written, Target::Checkpoint, "checkpoint.safetensors", checkpoint);
    put(
        Written,
        Target::Checkpoint,
        "unsorted.safetensors",
        golden_file("checkpoint_unsorted.safetensors"),
    );
    put(Written, Target::SyntheticSet, "set.safetensors", set);
    put(Copied, Target::SyntheticSet, "fmnist-ipc1.safetensors", real_set);
    put(Written, Target::Expert, "expert.safetensors", expert);
    put(
        Written,
        Target::Expert,
        "unsorted.safetensors",
        golden_file("expert_unsorted.safetensors"),
    );
    put(Written, Target::Teacher, "teacher.safetensors", teacher);
    put(
        Written,
        Target::Teacher,
        "unsorted.safetensors",
        golden_file("teacher_unsorted.safetensors"),
    );

    let pixels: Vec<u8> = (0..784).map(|k| mnist_pixel(0, k)).collect();
    let images = idx_images(1, 28, 28, &pixels);
    put(Written, Target::Idx, "images.idx", images.clone());
    put(Written, Target::Idx, "labels.idx", idx_labels(&[3, 0, 9]));
    put(Written, Target::Idx, "images.idx.gz", gzip(&images));
    put(Written, Target::Gzip, "images.idx.gz", gzip(&images));
    put(Written, Target::Gzip, "labels.idx.gz", gzip(&idx_labels(&[7, 1])));

    let mut cifar10 = cifar_record(&[3], 0);
    cifar10.extend(cifar_record(&[9], 1));
    put(Written, Target::Cifar, "cifar10.bin", cifar10);
    put(Written, Target::Cifar, "cifar100.bin", cifar_record(&[19, 99], 2));

    for (name, big_endian, compress) in [
        ("le.mat", false, false),
        ("le-compressed.mat", false, true),
        ("be.mat", true, false),
    ] {
        let mat = Mat { big_endian };
        put(
            Written,
            Target::Mat,
            name,
            mat.file(&[svhn_x(&mat, 1), svhn_y_double(&mat, &[10.0])], compress),
        );
    }
    let mat = Mat { big_endian: false };
    let mut variables = svhn_x(&mat, 1);
    variables.extend(svhn_y_u8(&mat, &[4]));
    put(Written, Target::Zlib, "x-and-y.zlib", zlib(&variables));

    let mut config: Value =
        serde_json::from_slice(&std::fs::read(repo().join("experiments/dc-fmnist-ipc1-seed0/config.json")).unwrap())
            .unwrap();
    // Written for the record, not a setting (ConfigBuilder::from_saved drops it too).
    config.as_object_mut().unwrap().remove("second_order_gradients");
    put(
        Copied,
        Target::ConfigToml,
        "dc-fmnist-ipc1.toml",
        as_toml(&config).into_bytes(),
    );
    put(
        Written,
        Target::ConfigToml,
        "small.toml",
        b"dataset = \"shapes\"\nipc = 2\nmatcher = \"distribution\"\n[eval]\nepochs = 10\nnets = 2\n".to_vec(),
    );
    put(
        Written, Target::ConfigSet,
        "assignments.txt",
        b"dataset=shapes\nipc=2\nmatcher.name=gradient\nmatcher.dis_metric=cos\narch.width=64\neval.lr=0.02\neval.archs=[\"convnet\",\"mlp\"]\n"
            .to_vec(),
    );
    for entry in std::fs::read_dir(repo().join("plugins/protocols")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        put(Copied, Target::Protocol, &name, std::fs::read(&path).unwrap());
    }
    out
}

/// The seeds folder of the repository.
fn seeds_dir() -> PathBuf {
    repo().join("fuzz").join("seeds")
}

#[test]
fn the_committed_seeds_are_what_the_writers_make() {
    let seeds = seeds();
    for target in Target::ALL {
        assert!(
            seeds.keys().any(|(t, _)| *t == target.name()),
            "no seed for {}",
            target.name()
        );
    }
    let write = std::env::var_os("CAFE_WRITE_FUZZ_SEEDS").is_some();
    if write {
        let _ = std::fs::remove_dir_all(seeds_dir());
    }
    for ((target, name), (origin, bytes)) in &seeds {
        let path = seeds_dir().join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        let committed = std::fs::read(&path);
        match origin {
            Origin::Written => assert!(
                committed.is_ok_and(|c| c == *bytes),
                "{} differs from what the writers make: run scripts/fuzz/seeds.sh",
                path.display()
            ),
            Origin::Copied => assert!(
                committed.is_ok(),
                "{} is missing: run scripts/fuzz/seeds.sh",
                path.display()
            ),
        }
    }
}

#[test]
fn every_seed_is_accepted_by_its_target() {
    // A seed that its target refuses explores only the refusal: each must parse (config and
    // protocol seeds stop at the first plugin or protocol lookup here, where no plugins are
    // linked; tests/fuzz_smoke.rs runs them with the plugins).
    let scratch = tempfile::tempdir().unwrap();
    for ((target, name), (_, bytes)) in seeds() {
        let target = Target::from_name(target).unwrap();
        let result = target.run(&bytes, scratch.path());
        let plugin_lookup = match &result {
            Err(cafe_framework::Error::UnknownPlugin { .. }) => true,
            Err(cafe_framework::Error::InvalidSetting { setting, .. }) => setting == "protocol",
            _ => false,
        };
        assert!(result.is_ok() || plugin_lookup, "{}/{name}: {result:?}", target.name());
    }
}
