//! Soft-label (knowledge-distillation) evaluation: the loss against DD-Ranking's `kl.py`
//! worked by hand, the teacher recorded, saved and loaded back exactly, clear errors.

use cafe_framework::train::kd_loss;
use cafe_tests::{cafe_lab_result, read_json};
use candle_core::{Device, Tensor};

/// DD-Ranking `ddranking/loss/kl.py:12-19`: KL(softmax(t / T) || softmax(s / T)), batchmean.
/// Student logits (0, 0) give q = (1/2, 1/2). Teacher logits (ln 3, 0):
/// - T = 1: p = (3/4, 1/4), KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.304099 - 0.173287 = 0.130812;
/// - T = 2: p = (sqrt 3, 1) / (sqrt 3 + 1) = (0.633975, 0.366025),
///   KL = 0.633975 ln(1.267949) + 0.366025 ln(0.732051) = 0.150506 - 0.114165 = 0.036341;
///   times T^2 = 4 with `scale_loss`: 0.145363.
#[test]
fn kd_loss_matches_ddranking_kl_worked_by_hand() {
    let dev = Device::Cpu;
    let s = Tensor::new(&[[0.0f32, 0.0], [0.0, 0.0]], &dev).unwrap();
    let t = Tensor::new(&[[3f32.ln(), 0.0], [3f32.ln(), 0.0]], &dev).unwrap();
    let value = |temp: f64, scale: bool| kd_loss(&s, &t, temp, scale).unwrap().to_scalar::<f32>().unwrap() as f64;
    let by_hand_t1 = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
    assert!((value(1.0, false) - by_hand_t1).abs() < 1e-6, "{}", value(1.0, false));
    assert!((by_hand_t1 - 0.130_812).abs() < 1e-6);
    let p = 3f64.sqrt() / (3f64.sqrt() + 1.0);
    let by_hand_t2 = p * (2.0 * p).ln() + (1.0 - p) * (2.0 * (1.0 - p)).ln();
    assert!((by_hand_t2 - 0.036_341).abs() < 1e-6, "{by_hand_t2}");
    assert!((value(2.0, false) - by_hand_t2).abs() < 1e-6);
    assert!((value(2.0, true) - 0.145_363).abs() < 1e-5);
    // A student that already agrees has nothing to learn.
    assert!(kd_loss(&t, &t, 3.0, false).unwrap().to_scalar::<f32>().unwrap().abs() < 1e-6);
}

fn condense(out: &std::path::Path, extra: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--ipc",
        "2",
        "--iterations",
        "2",
        "--batch-real",
        "8",
        "--eval-nets",
        "2",
        "--eval-epochs",
        "10",
        "--test-limit",
        "200",
        "--set",
        "arch.width=8",
        "--kd",
        "--kd-temperature",
        "2",
        "--set",
        "eval.kd_teacher_epochs=1",
        "-q",
    ];
    args.extend(extra);
    cafe_lab_result(&args)?;
    Ok(read_json(&out.join("results.json")))
}

#[test]
fn teacher_is_recorded_saved_and_loaded_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let a = condense(&tmp.path().join("a"), &[]).unwrap();
    let t = &a["kd"]["teacher"];
    assert_eq!(t["arch"], "convnet");
    assert_eq!(t["source"], "trained");
    assert_eq!(t["epochs"], 1);
    assert_eq!(t["train_images"], 5000);
    let acc = t["accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.2 && acc <= 1.0,
        "a teacher trained on shapes should beat chance: {acc}"
    );
    assert_eq!(a["kd"]["temperature"], 2.0);
    let kd = |r: &serde_json::Value, set: &str| {
        r["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["set"] == set)
            .unwrap_or_else(|| panic!("no {set} evaluation"))
            .clone()
    };
    assert_eq!(kd(&a, "synthetic-kd")["accuracies"].as_array().unwrap().len(), 2);
    assert_eq!(kd(&a, "synthetic-kd")["epochs"], 10);
    kd(&a, "random-kd");
    // Loaded back, the same teacher: the same test accuracy and the same students.
    let file = tmp.path().join("a").join("teacher.safetensors");
    let b = condense(&tmp.path().join("b"), &["--kd-teacher", file.to_str().unwrap()]).unwrap();
    assert_eq!(b["kd"]["teacher"]["accuracy"], a["kd"]["teacher"]["accuracy"]);
    assert_eq!(b["kd"]["teacher"]["source"], file.display().to_string());
    assert_eq!(
        kd(&b, "synthetic-kd")["accuracies"],
        kd(&a, "synthetic-kd")["accuracies"]
    );
    assert!(
        !tmp.path().join("b").join("teacher.safetensors").exists(),
        "a loaded teacher is not re-saved"
    );

    // A teacher of another architecture, a missing file, a bad temperature.
    let e = condense(
        &tmp.path().join("c"),
        &["--kd-teacher", file.to_str().unwrap(), "--eval-archs", "mlp"],
    )
    .unwrap_err();
    assert!(e.contains("it is a convnet; this run needs a mlp teacher"), "{e}");
    let e = condense(
        &tmp.path().join("d"),
        &["--kd-teacher", "/nonexistent/teacher.safetensors"],
    )
    .unwrap_err();
    assert!(e.contains("no such file"), "{e}");
    let e = condense(&tmp.path().join("e"), &["--kd-temperature", "0"]).unwrap_err();
    assert!(e.contains("positive finite"), "{e}");
}
