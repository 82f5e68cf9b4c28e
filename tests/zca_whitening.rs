//! ZCA whitening through the whole command line (MTT's `--zca`, mtt-distillation
//! `utils.py:137-165`): a whitened run saves `zca` in its config and its set's metadata, and
//! `evaluate --synthetic` alone re-evaluates it whitened, exactly as the run did; experts
//! remember how they were trained, and a store trained one way refuses a run of the other.

use std::path::Path;

use cafe_framework::dist::Solo;
use cafe_framework::run::run_condense;
use cafe_framework::run::run_experts;
use cafe_framework::synthetic::SyntheticSet;
use cafe_framework::trajectory::{expert_file, ExpertRecord, ExpertsConfig};
use cafe_tests::{cafe_lab_result, quiet, read_json, reevaluate, tiny_expert_store, tiny_mtt_config};

#[test]
fn a_whitened_run_carries_its_whitening_to_evaluation() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let common = [
        "--dataset",
        "shapes",
        "--ipc",
        "1",
        "--iterations",
        "2",
        // Pixels barely move, so that the two runs' pictures below can be compared.
        "--lr-img",
        "1e-9",
        "--set",
        "eval.epochs=5",
        "--set",
        "eval.nets=1",
        "--set",
        "eval.test_limit=200",
        "-q",
    ];
    let mut args = common.to_vec();
    args.extend(["--zca", "--out", run.to_str().unwrap()]);
    cafe_lab_result(&args).unwrap();
    assert_eq!(read_json(&run.join("config.json"))["zca"], 0.1);
    let set_file = run.join("synthetic.safetensors");
    let metadata = SyntheticSet::read_metadata(&set_file).unwrap();
    assert_eq!(metadata["preprocess"], "zca(eps=0.1)");
    assert!(run.join("synthetic.png").exists());

    // The file alone: whitened again, the same accuracies.
    assert_eq!(
        reevaluate(&set_file, &dir.path().join("again")),
        read_json(&run.join("results.json"))["evaluations"]
    );

    // The same run without whitening is another run: its real-initialised set differs.
    let plain = dir.path().join("plain");
    let mut args = common.to_vec();
    args.extend(["--out", plain.to_str().unwrap()]);
    cafe_lab_result(&args).unwrap();
    let plain_set = SyntheticSet::read_metadata(&plain.join("synthetic.safetensors")).unwrap();
    assert_eq!(plain_set["preprocess"], "normalise");
    assert_ne!(
        std::fs::read(&set_file).unwrap(),
        std::fs::read(plain.join("synthetic.safetensors")).unwrap()
    );
    // Both start from the same real images; the whitened set's picture is unwhitened, so the
    // two pictures nearly agree (rendered in whitened space they would not).
    let picture = |p: &Path| image::open(p.join("synthetic.png")).unwrap().to_rgb8().into_raw();
    let (a, b) = (picture(&run), picture(&plain));
    assert_eq!(a.len(), b.len());
    let mean_diff = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64;
    eprintln!("mean |whitened picture - plain picture| = {mean_diff:.2} / 255");
    assert!(mean_diff < 1.0, "{mean_diff}");
}

/// [`cafe_tests::TINY_MTT`] reading `experts`, one evaluation network, whitened when `zca`.
fn mtt_config(out: &Path, experts: &Path, zca: bool) -> cafe_framework::config::RunConfig {
    let whitening: &[&str] = if zca { &["zca=0.1"] } else { &[] };
    tiny_mtt_config(
        out,
        experts,
        &[&["eval.nets=1", "iterations=1"][..], whitening].concat(),
    )
}

#[test]
fn experts_remember_their_whitening_and_refuse_runs_of_the_other_kind() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain-experts");
    tiny_expert_store(&plain, 8);
    let err = run_condense(&mtt_config(&dir.path().join("a"), &plain, true), quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("per-channel normalisation (wanted ZCA whitening (eps 0.1))") && err.contains("--zca 0.1"),
        "{err}"
    );

    let whitened = dir.path().join("zca-experts");
    let flags = serde_json::json!({
        "dataset": "shapes",
        "zca": 0.1,
        "num_experts": 1,
        "train_epochs": 3,
        "batch_train": 128,
        "test_limit": 100,
        "augment": {"name": "none"},
        "seed": 3,
        "out": whitened,
    });
    let config = ExpertsConfig::from_overrides(&flags, &["arch.width=8".into()]).unwrap();
    run_experts(&config, true, &Solo).unwrap();
    let record = ExpertRecord::read(&expert_file(&whitened, 0)).unwrap();
    assert_eq!(record.zca, Some(0.1));
    assert_eq!(record.settings["zca"], 0.1);
    run_condense(&mtt_config(&dir.path().join("b"), &whitened, true), quiet()).unwrap();
    let err = run_condense(&mtt_config(&dir.path().join("c"), &whitened, false), quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ZCA whitening (eps 0.1) (wanted per-channel normalisation)"),
        "{err}"
    );
}
