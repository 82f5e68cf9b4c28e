//! `cafe-lab experts`: two tiny experts (ConvNet of width 8, 2 epochs) on the embedded `shapes`
//! set, and the store they leave: shapes, epochs, metadata, epoch 0 = a fresh network of the
//! expert's seed, resuming that skips finished experts and redoes an unfinished one, and
//! refusals of a store that does not fit.

use std::path::Path;

use cafe_cli::{execute, Cli};
use cafe_framework::dist::Solo;
use cafe_framework::registry::find;
use cafe_framework::run::run_experts;
use cafe_framework::trajectory::{
    expert_file, expert_rng, ExpertRecord, ExpertTrajectory, ExpertsConfig, TrajectoryKey, SUMMARY_FILE,
};
use cafe_framework::{Architecture, ImageShape};
use cafe_plugins as _;
use candle_core::{DType, Device, Tensor};
use clap::Parser;
use serde_json::json;

const SEED: u64 = 5;

fn config(out: &Path) -> ExpertsConfig {
    let flags = json!({
        "dataset": "shapes",
        "num_experts": 2,
        "train_epochs": 2,
        "batch_train": 128,
        "test_limit": 200,
        "seed": SEED,
        "out": out,
    });
    ExpertsConfig::from_overrides(&flags, &["arch.width=8".into()]).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn same(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values(x) == values(y))
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn experts_are_stored_resumed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let summary = run_experts(&config(&store), true, &Solo).unwrap();
    assert_eq!(summary.experts.len(), 2);
    assert!(summary.experts.iter().all(|e| e.trained));
    assert!(store.join(SUMMARY_FILE).exists());

    // A fresh network of the expert's seed: epoch 0 of the trajectory.
    let arch = find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({"width": 8}))
        .unwrap();
    let shape = ImageShape::new(3, 16, 16);
    let fresh = |k: usize| -> Vec<Tensor> {
        let net = arch
            .build(shape, 10, DType::F32, &Device::Cpu, &mut expert_rng(SEED, k))
            .unwrap();
        net.parameters().iter().map(|p| p.as_tensor().copy().unwrap()).collect()
    };
    let mut trajectories = Vec::new();
    for k in 0..2 {
        let path = expert_file(&store, k);
        let t = ExpertTrajectory::load(&path, &Device::Cpu).unwrap();
        let r = &t.record;
        assert_eq!(t.epochs(), 2);
        assert!(t.epoch(3).is_err(), "only epochs 0..=2 exist");
        assert_eq!((r.expert, r.seed, r.classes), (k, SEED, 10));
        assert_eq!((r.dataset.as_str(), r.arch.as_str()), ("shapes", "convnet"));
        assert_eq!(r.image_shape, shape);
        assert_eq!(r.arch_config["width"], 8);
        assert_eq!(r.arch_config["depth"], 3, "the full resolved config is stored");
        assert_eq!(r.settings["lr_teacher"], 0.01);
        assert_eq!(r.settings["augment"]["name"], "dsa");
        assert_eq!(r.settings["augment"]["strategy"], "color_crop_cutout_flip_scale_rotate");
        assert_eq!(r.cafe_lab_version, env!("CARGO_PKG_VERSION"));
        assert_eq!((r.train_loss.len(), r.test_accuracy.len(), r.test_images), (2, 2, 200));
        assert!(r.test_accuracy.iter().all(|a| (0.0..=1.0).contains(a)));
        let init = fresh(k);
        let shapes: Vec<Vec<usize>> = init.iter().map(|p| p.dims().to_vec()).collect();
        assert_eq!(r.parameter_shapes, shapes);
        for e in 0..=2 {
            let got: Vec<Vec<usize>> = t.epoch(e).unwrap().iter().map(|p| p.dims().to_vec()).collect();
            assert_eq!(got, shapes, "expert {k} epoch {e}");
        }
        assert!(
            same(t.epoch(0).unwrap(), &init),
            "expert {k}: epoch 0 is not the fresh network"
        );
        assert!(
            !same(t.epoch(1).unwrap(), t.epoch(0).unwrap()),
            "expert {k} did not train"
        );
        assert!(
            !same(t.epoch(2).unwrap(), t.epoch(1).unwrap()),
            "expert {k} epoch 2 did not train"
        );
        // The header alone reads the same record.
        assert_eq!(&ExpertRecord::read(&path).unwrap(), r);
        trajectories.push(t);
    }
    assert!(!same(
        trajectories[0].epoch(0).unwrap(),
        trajectories[1].epoch(0).unwrap()
    ));

    // Resuming a finished store trains nothing and leaves the files alone.
    let stamps: Vec<_> = (0..2).map(|k| modified(&expert_file(&store, k))).collect();
    let again = run_experts(&config(&store), true, &Solo).unwrap();
    assert!(again.experts.iter().all(|e| !e.trained));
    let accuracies = |s: &cafe_framework::trajectory::ExpertsSummary| -> Vec<f64> {
        s.experts.iter().map(|e| e.test_accuracy).collect()
    };
    assert_eq!(accuracies(&again), accuracies(&summary));
    assert_eq!(
        stamps,
        (0..2).map(|k| modified(&expert_file(&store, k))).collect::<Vec<_>>()
    );

    // An interrupted run leaves no file for its unfinished expert (each is written atomically
    // when done): that expert alone is trained again, to the same trajectory and the same
    // bytes (the file's header is sorted, not in a hash map's order).
    let first_bytes = std::fs::read(expert_file(&store, 1)).unwrap();
    std::fs::remove_file(expert_file(&store, 1)).unwrap();
    let resumed = run_experts(&config(&store), true, &Solo).unwrap();
    assert_eq!(
        resumed.experts.iter().map(|e| e.trained).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(modified(&expert_file(&store, 0)), stamps[0]);
    let redone = ExpertTrajectory::load(&expert_file(&store, 1), &Device::Cpu).unwrap();
    for e in 0..=2 {
        assert!(
            same(redone.epoch(e).unwrap(), trajectories[1].epoch(e).unwrap()),
            "epoch {e} of the retrained expert differs"
        );
    }
    assert!(
        std::fs::read(expert_file(&store, 1)).unwrap() == first_bytes,
        "the retrained expert's file differs byte for byte"
    );

    // The same store through the command line: same settings, nothing to train.
    let cli = Cli::try_parse_from([
        "cafe-lab",
        "experts",
        "--dataset",
        "shapes",
        "--num-experts",
        "2",
        "--train-epochs",
        "2",
        "--batch-train",
        "128",
        "--test-limit",
        "200",
        "--seed",
        "5",
        "--set",
        "arch.width=8",
        "--quiet",
        "--out",
        store.to_str().unwrap(),
    ])
    .unwrap();
    execute(cli).unwrap();
    assert_eq!(modified(&expert_file(&store, 0)), stamps[0]);

    // A store trained with other settings, or for another network, is refused.
    let mut other = config(&store);
    other.lr_teacher = 0.02;
    let err = run_experts(&other, true, &Solo).unwrap_err().to_string();
    assert!(err.contains("other settings"), "{err}");
    let wider = ExpertsConfig::from_overrides(
        &json!({"num_experts": 2, "train_epochs": 2, "seed": SEED, "out": store}),
        &["arch.width=16".into()],
    )
    .unwrap();
    let err = run_experts(&wider, true, &Solo).unwrap_err().to_string();
    assert!(err.contains("does not fit") && err.contains("\"width\":8"), "{err}");

    // What a trajectory matcher checks before it uses an expert.
    let record = &trajectories[0].record;
    let path = expert_file(&store, 0);
    record.check_fits(&path, &record.key()).unwrap();
    let other_data = TrajectoryKey {
        dataset: "cifar10".into(),
        image_shape: ImageShape::new(3, 32, 32),
        ..record.key()
    };
    let err = record.check_fits(&path, &other_data).unwrap_err().to_string();
    assert!(
        err.contains("dataset shapes (wanted cifar10)") && err.contains("3x16x16"),
        "{err}"
    );
    let other_shapes = TrajectoryKey {
        parameter_shapes: vec![vec![1]],
        ..record.key()
    };
    let err = record.check_fits(&path, &other_shapes).unwrap_err().to_string();
    assert!(err.contains("parameter shapes"), "{err}");
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("num_experts", json!(0)),
        ("train_epochs", json!(0)),
        ("lr_teacher", json!(-1.0)),
        ("momentum", json!(1.0)),
        ("batch_train", json!(0)),
    ] {
        let config = ExpertsConfig::from_overrides(&json!({ key: value, "out": dir.path() }), &[]).unwrap();
        assert!(run_experts(&config, true, &Solo).is_err(), "{key} = {value}");
    }
    assert!(
        ExpertsConfig::from_overrides(&json!({"epochs": 3}), &[]).is_err(),
        "unknown key"
    );
    assert!(
        ExpertsConfig::from_overrides(&json!({}), &["arch".into()]).is_err(),
        "no '='"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
