//! End to end on real Fashion-MNIST (Debian package `dataset-fashion-mnist`, installed by
//! `.ci/run`): DM condenses a small set that trains a ConvNet well above chance, and its
//! matching loss falls. Skips, loudly, where the package is absent (fails under CI).

use cafe_tests::{cafe_lab_result, debian_fashion_mnist, read_json};

#[test]
fn dm_on_real_fashion_mnist_learns_a_set_that_trains_a_network() {
    let Some(data) = debian_fashion_mnist() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fmnist");
    cafe_lab_result(&[
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data.to_str().unwrap(),
        "--matcher",
        "distribution",
        "--scheduler",
        "none",
        "--ipc",
        "10",
        "--iterations",
        "40",
        "--batch-real",
        "32",
        "--eval-nets",
        "2",
        "--eval-epochs",
        "60",
        "--test-limit",
        "2000",
        "--set",
        "arch.width=32",
        "--seed",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let results = read_json(&out.join("results.json"));
    let synthetic = &results["evaluations"][0];
    let random = &results["evaluations"][1];
    assert_eq!(synthetic["set"], "synthetic");
    assert_eq!(random["set"], "random");
    let (s, r) = (synthetic["mean"].as_f64().unwrap(), random["mean"].as_f64().unwrap());
    eprintln!("fashion-mnist ipc 10: synthetic {s:.4}, random {r:.4}");
    // 10 classes: chance is 0.10. Ten real images per class train a ConvNet to ~0.6-0.7.
    assert!(s > 0.5, "the condensed set trains a network far above chance: {s}");
    assert!(
        s > r - 0.05,
        "DM initialised from real images must not fall behind them: {s} vs {r}"
    );
    let losses: Vec<f64> = results["condensation"]["per_iteration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["last_loss"].as_f64().unwrap())
        .collect();
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[losses.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(
        last < first,
        "the matching loss falls: first 10 mean {first}, last 10 mean {last}"
    );
}

#[test]
fn cafes_inner_loops_end_by_their_rule_on_real_data() {
    // With fresh probes and the reference's accumulated value (kaiwang960112/CAFE distill.py),
    // each inner loop of a network trained on S ends when its window fires (after 10 epochs on
    // real data: probe noise and the accumulator's start-up jump), not at a cap. With a probe
    // drawn once per iteration the windows stop moving once the network fits S.
    let Some(data) = debian_fashion_mnist() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cafe");
    cafe_lab_result(&[
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data.to_str().unwrap(),
        "--matcher",
        "cafe",
        "--ipc",
        "1",
        "--iterations",
        "1",
        "--batch-real",
        "16",
        "--set",
        "arch.width=16",
        "--set",
        "scheduler.max_outer_steps=4",
        "--set",
        "scheduler.max_inner_epochs=40",
        "--eval-nets",
        "1",
        "--eval-epochs",
        "2",
        "--test-limit",
        "100",
        "--no-baseline",
        "--seed",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let results = read_json(&out.join("results.json"));
    let c = &results["condensation"];
    assert_eq!(c["inner_loops_total"], 3, "{c}");
    assert_eq!(
        c["inner_loops_capped_total"], 0,
        "every inner loop ended by its rule: {c}"
    );
    assert_eq!(
        c["inner_epochs_total"], 30,
        "at its window's length, as in the reference: {c}"
    );
    let probes = c["per_iteration"][0]["probe_accuracies"].as_array().unwrap();
    assert_eq!(probes.len(), 4 + 30, "one probe after every outer step and inner epoch");
}
