//! The fair metrics against DD-Ranking's formulas worked by hand, the confidence interval
//! against Student's t, and the storage count of a set file.

use std::collections::HashMap;

use cafe_framework::metrics::ddranking::MetricInputs;
use cafe_framework::metrics::{
    augmentation_robust_score, hard_label_recovery, improvement_over_random, label_robust_score, normalise_score,
    storage_of_safetensors, student_t_975, FairMetrics, Summary,
};
use candle_core::{DType, Device, Tensor};

const E: f64 = std::f64::consts::E;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b} (tolerance {tol})");
}

/// DD-Ranking README.md:83-95, `hard_label.py:380-383`; `aug_robust.py:577-580`, worked on two
/// evaluation runs (accuracies as fractions):
///
/// | k | whole | syn | random | syn no aug | random no aug |
/// |---|-------|-----|--------|------------|---------------|
/// | 0 | 0.90  | 0.60 | 0.50  | 0.58       | 0.52          |
/// | 1 | 0.92  | 0.62 | 0.55  | 0.60       | 0.50          |
///
/// k = 0: HLR = 0.90 - 0.60 = 0.30; IOR = 0.60 - 0.50 = 0.10; alpha = 0.5 * 0.10 - 0.5 * 0.30 =
/// -0.10; LRS = (e^-0.10 - e^-1) / (e - e^-1) = (0.904837 - 0.367879) / 2.350402 = 0.228454.
/// Aug score 0.60 - 0.50 = 0.10, no-aug score 0.58 - 0.52 = 0.06, beta = 0.08,
/// ARS = (e^0.08 - e^-1) / (e - e^-1) = (1.083287 - 0.367879) / 2.350402 = 0.304377.
///
/// k = 1: HLR = 0.30; IOR = 0.07; alpha = 0.035 - 0.15 = -0.115; LRS = (0.891366 - 0.367879) /
/// 2.350402 = 0.222722. Scores 0.07 and 0.10, beta = 0.085, ARS = (1.088717 - 0.367879) /
/// 2.350402 = 0.306687.
#[test]
fn metrics_match_ddranking_formulas_worked_by_hand() {
    // The formulas one by one.
    close(hard_label_recovery(0.90, 0.60), 0.30, 1e-12);
    close(improvement_over_random(0.60, 0.50), 0.10, 1e-12);
    close(normalise_score(-1.0), 0.0, 1e-12);
    close(normalise_score(1.0), 1.0, 1e-12);
    close(
        normalise_score(-0.10),
        ((-0.10f64).exp() - (-1.0f64).exp()) / (E - 1.0 / E),
        1e-12,
    );
    close(label_robust_score(0.30, 0.10, 0.5), 0.228_453_638_308_364, 1e-12);
    close(
        augmentation_robust_score(0.60, 0.50, 0.58, 0.52, 0.5),
        0.304_376_659_236_254,
        1e-12,
    );
    // w = 1 ranks by IOR alone, w = 0 by -HLR alone.
    close(label_robust_score(0.30, 0.10, 1.0), normalise_score(0.10), 1e-12);
    close(label_robust_score(0.30, 0.10, 0.0), normalise_score(-0.30), 1e-12);

    // The per-network pairing, then mean and population std over the runs (`np.mean`,
    // `np.std`, `hard_label.py:411-416`).
    let inputs = MetricInputs {
        syn: vec![0.60, 0.62],
        syn_hard: Vec::new(),
        random: vec![0.50, 0.55],
        whole: vec![0.90, 0.92],
        syn_aug: vec![0.60, 0.62],
        random_aug: vec![0.50, 0.55],
        syn_plain: vec![0.58, 0.60],
        random_plain: vec![0.52, 0.50],
    };
    let m = FairMetrics::compute("convnet", "dsa", &inputs, 0.5, 0.5).unwrap();
    close(m.hard_label_recovery.values[0], 0.30, 1e-12);
    close(m.hard_label_recovery.values[1], 0.30, 1e-12);
    close(m.improvement_over_random.values[1], 0.07, 1e-12);
    close(m.label_robust_score.values[0], 0.228_453_638_308_364, 1e-12);
    close(m.label_robust_score.values[1], 0.222_722_162_624_886, 1e-12);
    close(
        m.label_robust_score.mean,
        (0.228_453_638_308_364 + 0.222_722_162_624_886) / 2.0,
        1e-12,
    );
    close(
        m.label_robust_score.std,
        (0.228_453_638_308_364 - 0.222_722_162_624_886) / 2.0,
        1e-12,
    );
    close(m.augmentation_robust_score.values[0], 0.304_376_659_236_254, 1e-12);
    close(m.augmentation_robust_score.values[1], 0.306_686_901_538_937, 1e-12);
    close(m.with_aug_score.mean, (0.10 + 0.07) / 2.0, 1e-12);
    close(m.without_aug_score.mean, (0.06 + 0.10) / 2.0, 1e-12);

    // A known whole-set accuracy (DD-Ranking's REAL_DATA_ACC_CACHE) stands for every run.
    let cached = MetricInputs {
        whole: vec![0.91],
        ..inputs.clone()
    };
    let m = FairMetrics::compute("convnet", "dsa", &cached, 0.5, 0.5).unwrap();
    close(m.hard_label_recovery.values[0], 0.31, 1e-12);
    close(m.hard_label_recovery.values[1], 0.29, 1e-12);

    // A set evaluated with learned soft labels or step size ("syn-any") recovers hard-label
    // accuracy through its own hard-label evaluation ("syn-hard", README.md:83), while IOR
    // still compares its own evaluation with random.
    let soft = MetricInputs {
        syn_hard: vec![0.40, 0.42],
        ..inputs.clone()
    };
    let m = FairMetrics::compute("convnet", "dsa", &soft, 0.5, 0.5).unwrap();
    close(m.hard_label_recovery.values[0], 0.90 - 0.40, 1e-12);
    close(m.improvement_over_random.values[0], 0.60 - 0.50, 1e-12);

    // Unpaired lists are refused.
    let unpaired = MetricInputs {
        random: vec![0.5],
        ..inputs
    };
    let e = FairMetrics::compute("convnet", "dsa", &unpaired, 0.5, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("random set has 1 accuracies"), "{e}");
}

#[test]
fn summary_has_students_t_interval() {
    // [0.1, 0.2, 0.3]: mean 0.2, sample sd 0.1, t(0.975, 2) = 4.303, half width
    // 4.303 * 0.1 / sqrt(3) = 0.248434; population std sqrt(0.02 / 3) = 0.081650.
    let s = Summary::of(&[0.1, 0.2, 0.3]);
    assert_eq!(s.n, 3);
    close(s.mean, 0.2, 1e-12);
    close(s.std, (0.02f64 / 3.0).sqrt(), 1e-12);
    close(s.ci95_low, 0.2 - 0.248_433_820_832_296, 1e-9);
    close(s.ci95_high, 0.2 + 0.248_433_820_832_296, 1e-9);
    close(s.ci95_half_width(), 0.248_433_820_832_296, 1e-9);
    // One value: no spread, no interval.
    assert!(Summary::of(&[0.5]).ci95_low.is_nan());
    // Table values of t(0.975, df) (scipy.stats.t.ppf) past the exact table.
    for (df, t) in [
        (1, 12.706),
        (30, 2.042),
        (31, 2.0395),
        (40, 2.0211),
        (60, 2.0003),
        (100, 1.9840),
        (1000, 1.9623),
    ] {
        close(student_t_975(df), t, 5e-4);
    }
}

#[test]
fn storage_counts_images_labels_and_extras_not_dataset_constants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.safetensors");
    let dev = Device::Cpu;
    let mut tensors = HashMap::new();
    tensors.insert(
        "images".to_string(),
        Tensor::zeros((20, 3, 16, 16), DType::F32, &dev).unwrap(),
    );
    tensors.insert("labels".to_string(), Tensor::zeros(20, DType::U32, &dev).unwrap());
    tensors.insert("mean".to_string(), Tensor::zeros(3, DType::F32, &dev).unwrap());
    tensors.insert("std".to_string(), Tensor::zeros(3, DType::F32, &dev).unwrap());
    tensors.insert("lr".to_string(), Tensor::zeros(1, DType::F32, &dev).unwrap());
    tensors.insert(
        "soft_labels".to_string(),
        Tensor::zeros((20, 10), DType::F32, &dev).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let s = storage_of_safetensors(&path).unwrap();
    assert_eq!(s.images_bytes, 20 * 3 * 16 * 16 * 4);
    assert_eq!(s.labels_bytes, 20 * 4);
    assert_eq!(s.extras_bytes["lr"], 4);
    assert_eq!(s.extras_bytes["soft_labels"], 20 * 10 * 4);
    assert!(!s.extras_bytes.contains_key("mean"));
    assert_eq!(s.total_bytes, 20 * 3 * 16 * 16 * 4 + 80 + 4 + 800);
    // Not a set file: a clear error naming it.
    std::fs::write(dir.path().join("bad.safetensors"), b"nonsense").unwrap();
    let e = storage_of_safetensors(&dir.path().join("bad.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.safetensors"), "{e}");
}
