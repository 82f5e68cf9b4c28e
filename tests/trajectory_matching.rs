//! Trajectory matching through the whole command line, on the embedded `shapes` set with tiny
//! experts (ConvNet of width 8, 3 epochs): the set learns a step size and soft labels, saves
//! them, says so in its metadata, and evaluation trains with them (a re-evaluation from the
//! file alone reproduces the run's); an interrupted run resumes to the same bytes (the learned
//! extras and their momenta are in the checkpoint); a missing or unfitting expert store is
//! refused with what to do, and leaves no run folder behind.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use cafe_framework::run::{resume_condense, run_condense, RunOptions};
use cafe_framework::synthetic::{SyntheticSet, LEARNED_LABELS, LEARNED_LR};
use cafe_framework::Error;
use cafe_tests::{quiet, read_json, reevaluate, tiny_expert_store, tiny_mtt_config};
use candle_core::Device;

/// [`cafe_tests::TINY_MTT`] with one evaluation network and a checkpoint every 2 iterations, then `extra`.
fn config(out: &Path, experts: &Path, extra: &[&str]) -> cafe_framework::config::RunConfig {
    tiny_mtt_config(
        out,
        experts,
        &[&["eval.nets=1", "checkpoint_every=2"][..], extra].concat(),
    )
}

#[test]
fn mtt_learns_a_step_size_and_soft_labels_that_evaluation_uses() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let run = dir.path().join("run");
    let results = run_condense(&config(&run, &experts, &[]), quiet()).unwrap();

    let set_file = run.join("synthetic.safetensors");
    let syn = SyntheticSet::load(&set_file, &Device::Cpu).unwrap();
    let lr = syn.learned_lr().unwrap().expect("the set carries its step size");
    assert!(lr != 0.01, "the step size moved from lr_teacher: {lr}");
    let logits = syn.learned(LEARNED_LABELS).expect("the set carries its soft labels");
    assert_eq!(logits.dims(), [10, 10]);
    let m = &syn.metadata;
    assert_eq!(m["protocol"], "mtt");
    assert_eq!(m["learned"], format!("{LEARNED_LR},{LEARNED_LABELS}"));
    assert_eq!(m["eval_lr_source"], "learned");
    assert_eq!(m["eval_lr"].parse::<f64>().unwrap(), lr);
    assert_eq!(m["eval_targets"], "soft_labels");
    assert_eq!(m["eval_augment"], "dsa:color_crop_cutout_flip_scale_rotate");

    let synthetic = &results.evaluations[0];
    assert_eq!(synthetic.set, "synthetic");
    assert_eq!(synthetic.lr, Some(lr), "networks train with the learned step size");
    assert!(synthetic.soft_labels, "networks train on the learned soft labels");
    let random = &results.evaluations[1];
    assert_eq!((random.lr, random.soft_labels), (Some(0.01), false));

    // The file alone re-evaluates exactly as the run did.
    assert_eq!(
        reevaluate(&set_file, &dir.path().join("again")),
        read_json(&run.join("results.json"))["evaluations"]
    );
}

#[test]
fn an_interrupted_mtt_run_resumes_to_the_same_bytes() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let whole = dir.path().join("whole");
    let cut = dir.path().join("cut");
    run_condense(&config(&whole, &experts, &[]), quiet()).unwrap();
    static STOP: AtomicBool = AtomicBool::new(true);
    let err = run_condense(
        &config(&cut, &experts, &[]),
        RunOptions {
            interrupt: Some(&STOP),
            ..quiet()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Interrupted { next_iteration: 1, .. }), "{err}");
    resume_condense(&cut, quiet()).unwrap();
    let a = std::fs::read(whole.join("synthetic.safetensors")).unwrap();
    let b = std::fs::read(cut.join("synthetic.safetensors")).unwrap();
    assert!(a == b, "the resumed run differs from the uninterrupted one");
}

#[test]
fn a_missing_or_unfitting_expert_store_is_refused_with_what_to_do() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let err = run_condense(&config(&dir.path().join("a"), &missing, &[]), quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cafe-lab experts") && err.contains("no-such-store"),
        "{err}"
    );

    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let err = run_condense(&config(&dir.path().join("b"), &experts, &["arch.width=16"]), quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit") && err.contains("architecture"), "{err}");

    let refused = dir.path().join("c");
    let err = run_condense(&config(&refused, &experts, &["matcher.max_start_epoch=5"]), quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("epoch 5") && err.contains("--train-epochs"), "{err}");
    // Refused before its first iteration, the run leaves nothing behind (no config.json, no
    // tensorboard/): the corrected retry needs no --force.
    assert!(
        !refused.exists(),
        "a refused run left {:?}",
        std::fs::read_dir(&refused).map(|d| d.count())
    );
    run_condense(&config(&refused, &experts, &["matcher.max_start_epoch=2"]), quiet()).unwrap();
}
