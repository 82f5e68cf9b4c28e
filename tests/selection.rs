//! Evaluation during condensation (`--eval-every`) and the choice of the kept set (`--select`):
//! the test set is read by the final evaluation only, best-val keeps the set of its iteration,
//! impossible splits are refused.

use std::path::Path;

use cafe_tests::{cafe_lab_result, quiet, read_json, tiny_expert_store, tiny_mtt_config};

/// Writes a small MNIST-format dataset (IDX files, 28x28, 10 classes) into `dir`: class c
/// lights rows 2c..2c+4 over noise; 30 training and 10 test images per class. With
/// `corrupt_test`, the test images are noise and the test labels rotated, so any accuracy on
/// that test set differs.
fn write_idx_dataset(dir: &Path, corrupt_test: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let image = |c: usize, i: usize, noise_only: bool| -> Vec<u8> {
        (0..28 * 28)
            .map(|k| {
                let (row, col) = (k / 28, k % 28);
                let noise = ((k * 7 + i * 13 + c * 31) % 50) as u8;
                let lit = !noise_only && row >= 2 * c && row < 2 * c + 4 && col > 3 && col < 24;
                if lit {
                    200 + noise
                } else {
                    noise
                }
            })
            .collect()
    };
    let write = |prefix: &str, per_class: usize, corrupt: bool| {
        let n = 10 * per_class;
        let mut images = Vec::new();
        for v in [2051u32, n as u32, 28, 28] {
            images.extend_from_slice(&v.to_be_bytes());
        }
        let mut labels = Vec::new();
        for v in [2049u32, n as u32] {
            labels.extend_from_slice(&v.to_be_bytes());
        }
        for i in 0..per_class {
            for c in 0..10 {
                images.extend(image(c, i, corrupt));
                labels.push(if corrupt { ((c + 1) % 10) as u8 } else { c as u8 });
            }
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    };
    write("train", 30, false);
    write("t10k", 10, corrupt_test);
}

/// The pixels of the set that run `r` kept.
fn images(root: &Path, r: &str) -> Vec<f32> {
    let t =
        candle_core::safetensors::load(root.join(r).join("synthetic.safetensors"), &candle_core::Device::Cpu).unwrap();
    t["images"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn condense(data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--dataset",
        "mnist",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ipc",
        "1",
        "--iterations",
        "5",
        "--batch-real",
        "8",
        "--eval-nets",
        "2",
        "--eval-epochs",
        "3",
        "--set",
        "arch.width=8",
        "--val-per-class",
        "5",
        "--no-baseline",
        "-q",
    ];
    args.extend(extra);
    cafe_lab_result(&args).unwrap_or_else(|e| panic!("condense: {e}"));
    read_json(&out.join("results.json"))
}

#[test]
fn the_test_set_is_read_by_the_final_evaluation_only() {
    // The same training set beside two different test sets: everything decided before the
    // final evaluation (the validation curve, the kept iteration, the kept set) must be the
    // same, and only the final test accuracies may differ.
    let tmp = tempfile::tempdir().unwrap();
    let (clean, corrupt) = (tmp.path().join("clean"), tmp.path().join("corrupt"));
    write_idx_dataset(&clean, false);
    write_idx_dataset(&corrupt, true);
    let flags = ["--eval-every", "1", "--select", "best-val"];
    let a = condense(&clean, &tmp.path().join("a"), &flags);
    let b = condense(&corrupt, &tmp.path().join("b"), &flags);
    assert_eq!(a["validation_curve"].as_array().unwrap().len(), 5);
    assert_eq!(a["validation_curve"], b["validation_curve"]);
    assert_eq!(a["selection"], b["selection"]);
    // The pixels (the files' metadata differ: they record each --data-dir).
    assert!(
        images(tmp.path(), "a") == images(tmp.path(), "b"),
        "the kept set depends on the test set"
    );
    let acc = |r: &serde_json::Value| r["evaluations"][0]["accuracies"].clone();
    assert_ne!(
        acc(&a),
        acc(&b),
        "the final evaluation did not read the test set at all"
    );
    assert_eq!(a["evaluations"][0]["test_images"], 100);
}

#[test]
fn best_val_keeps_the_set_of_its_iteration() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_idx_dataset(&data, false);
    let best = condense(
        &data,
        &tmp.path().join("best"),
        &["--eval-every", "1", "--select", "best-val"],
    );
    let curve = best["validation_curve"].as_array().unwrap();
    // The kept iteration is the first with the highest validation accuracy.
    let top = curve
        .iter()
        .map(|p| p["mean"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let first_top = curve.iter().find(|p| p["mean"].as_f64().unwrap() == top).unwrap();
    let sel = &best["selection"];
    assert_eq!(sel["rule"], "best-val");
    assert_eq!(sel["iteration"], first_top["iteration"]);
    assert_eq!(sel["validation_accuracy"].as_f64().unwrap(), top);
    assert_eq!(sel["val_per_class"], 5);
    assert_eq!(sel["val_images"], 50);
    // The kept set is the set of that iteration: a run stopped there (same seed, same split)
    // ends with the same pixels.
    let k = sel["iteration"].as_u64().unwrap().to_string();
    let stopped = condense(
        &data,
        &tmp.path().join("stopped"),
        &["--eval-every", "1", "--iterations", &k],
    );
    assert_eq!(stopped["selection"]["rule"], "final");
    assert_eq!(
        images(tmp.path(), "best"),
        images(tmp.path(), "stopped"),
        "best-val did not keep iteration {k}'s set"
    );
    // The curve is in TensorBoard too.
    let tb = std::fs::read_dir(tmp.path().join("best").join("tensorboard"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .any(|bytes| bytes.windows(19).any(|w| w == b"validation/accuracy"));
    assert!(tb, "no validation/accuracy scalar in the event file");
}

#[test]
fn impossible_validation_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tmp.path().join("o");
    let o = o.to_str().unwrap();
    let e = cafe_lab_result(&["--select", "best-val", "--out", o, "-q"]).unwrap_err();
    assert!(e.contains("--eval-every"), "{e}");
    // shapes has 500 training images per class.
    let e = cafe_lab_result(&[
        "--eval-every",
        "1",
        "--val-per-class",
        "500",
        "--ipc",
        "1",
        "--out",
        o,
        "-q",
        "--force",
    ])
    .unwrap_err();
    assert!(
        e.contains("class 'disk' of shapes has 500 training images") && e.contains("at most 499"),
        "{e}"
    );
    let e = cafe_lab_result(&[
        "--eval-every",
        "1",
        "--val-per-class",
        "495",
        "--ipc",
        "10",
        "--out",
        o,
        "-q",
        "--force",
    ])
    .unwrap_err();
    assert!(e.contains("fewer than ipc 10") && e.contains("at most 490"), "{e}");
    let e = cafe_lab_result(&["--eval-every", "1", "--val-per-class", "0", "--out", o, "-q", "--force"]).unwrap_err();
    assert!(e.contains("validation images"), "{e}");
}

/// Trajectory matching learns a step size and soft labels with the pixels: `best-val` keeps
/// them from the same iteration, and the metrics evaluate such a set with hard labels too.
#[test]
fn best_val_keeps_learned_extras_and_metrics_see_hard_labels() {
    use cafe_framework::run::run_condense;
    use cafe_framework::synthetic::{SyntheticSet, LEARNED_LABELS, LEARNED_LR};
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let run = |name: &str, extra: &[&str]| {
        let settings = [&["eval.nets=2", "eval.every=1", "eval.val_per_class=10"][..], extra].concat();
        let config = tiny_mtt_config(&dir.path().join(name), &experts, &settings);
        let results = run_condense(&config, quiet()).unwrap();
        let set = SyntheticSet::load(
            &dir.path().join(name).join("synthetic.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        (results, set)
    };
    let (best, best_set) = run(
        "best",
        &[
            "eval.select=best-val",
            "eval.metrics=true",
            "eval.whole_epochs=1",
            "eval.whole_nets=1",
        ],
    );
    let k = best.selection.as_ref().unwrap().iteration;
    let (_, stopped_set) = run("stopped", &[&format!("iterations={k}")]);
    let values = |s: &SyntheticSet, name: &str| {
        s.learned(name)
            .unwrap_or_else(|| panic!("no learned {name}"))
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for name in [LEARNED_LR, LEARNED_LABELS] {
        assert_eq!(
            values(&best_set, name),
            values(&stopped_set, name),
            "best-val did not keep iteration {k}'s {name}"
        );
    }
    let sets: Vec<&str> = best.evaluations.iter().map(|e| e.set.as_str()).collect();
    assert!(sets.contains(&"synthetic-hard"), "{sets:?}");
    let hard = best.evaluations.iter().find(|e| e.set == "synthetic-hard").unwrap();
    assert!(!hard.soft_labels && hard.lr == Some(0.01), "{hard:?}");
    let m = &best.metrics[0];
    let whole = m.whole_accuracy.mean;
    for (h, a) in m.hard_label_recovery.values.iter().zip(&hard.accuracies) {
        assert!(
            (h - (whole - a)).abs() < 1e-12,
            "HLR must come from the hard-label evaluation"
        );
    }
}
