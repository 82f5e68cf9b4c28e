//! DATM's and TESLA's options of the trajectory matcher through the whole command line, on the
//! embedded `shapes` set with tiny experts (`cafe_tests::tiny_expert_store`):
//! - the difficulty-aligned window (`sequential_generation`) grows the start epoch's upper bound
//!   as DATM computes it, and results.json shows it per iteration (`record`);
//! - above the loss `threshold` no optimiser steps (DATM.py:556-561): the pixels, the step size
//!   and the soft labels all stay where they were; a threshold never reached changes no byte;
//! - `pix_init = samples_predicted_correctly` starts from real images the first expert
//!   classifies correctly, with the mean logits of the experts that do as soft labels;
//! - TESLA's `teacher_label` keeps the target parameters' logits of the last iteration.
//!
//! The `datm` protocol's per-ipc variants: tests/protocols.rs.

use std::path::Path;

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::run::run_condense;
use cafe_framework::synthetic::{SyntheticSet, LEARNED_LABELS, LEARNED_LR};
use cafe_framework::trajectory::{expert_files, ExpertTrajectory};
use cafe_framework::{Architecture, Mode};
use cafe_tests::{quiet, read_json, tiny_expert_store, tiny_mtt_config};
use candle_core::{Device, Tensor};
use serde_json::json;

fn run(out: &Path, experts: &Path, extra: &[&str]) -> serde_json::Value {
    let config = tiny_mtt_config(out, experts, &[&["eval.nets=1", "iterations=6"][..], extra].concat());
    run_condense(&config, quiet()).unwrap();
    read_json(&out.join("results.json"))
}

fn records(results: &serde_json::Value, key: &str) -> Vec<f64> {
    results["condensation"]["per_iteration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"][key].as_f64().unwrap())
        .collect()
}

fn set(dir: &Path) -> SyntheticSet {
    SyntheticSet::load(&dir.join("synthetic.safetensors"), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn the_window_grows_and_the_threshold_skips_whole_steps() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    // Upper bound 1 + int((3 - 1) * it / 4), capped at 3: 1, 1, 2, 2, 3, 3.
    let window = [
        "matcher.sequential_generation=true",
        "matcher.current_max_start_epoch=1",
        "matcher.max_start_epoch=3",
        "matcher.expansion_end_epoch=4",
    ];
    let grown = run(&dir.path().join("grown"), &experts, &window);
    assert_eq!(records(&grown, "upper_bound"), [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
    let starts = records(&grown, "start_epoch");
    assert!(
        starts.iter().zip(records(&grown, "upper_bound")).all(|(s, u)| *s < u),
        "{starts:?}"
    );
    assert_eq!(starts[..2], [0.0, 0.0], "the first iterations start at epoch 0");

    // A threshold below every loss: no step at all, the set is its initialisation.
    let frozen = dir.path().join("frozen");
    let r = run(&frozen, &experts, &["matcher.threshold=1e-9"]);
    let per = r["condensation"]["per_iteration"].as_array().unwrap();
    assert!(per
        .iter()
        .all(|p| p["skipped_steps"] == 1 && p["record"]["skipped"] == 1.0));
    let start = dir.path().join("start");
    run(&start, &experts, &["iterations=0"]);
    let (a, b) = (set(&frozen), set(&start));
    assert_eq!(
        values(a.images.as_tensor()),
        values(b.images.as_tensor()),
        "the pixels moved"
    );
    assert_eq!(a.learned_lr().unwrap(), Some(f64::from(0.01f32)), "the step size moved");
    assert_eq!(
        values(a.learned(LEARNED_LABELS).unwrap()),
        values(b.learned(LEARNED_LABELS).unwrap()),
        "the soft labels moved"
    );

    // A threshold no loss reaches changes nothing: the same tensors as without one (the set's
    // metadata records its config, threshold included).
    let plain = dir.path().join("plain");
    run(&plain, &experts, &[]);
    let high = dir.path().join("high");
    let r = run(&high, &experts, &["matcher.threshold=1e9"]);
    assert!(r["condensation"]["per_iteration"][0].get("skipped_steps").is_none());
    let (a, b) = (set(&plain), set(&high));
    assert_eq!(values(a.images.as_tensor()), values(b.images.as_tensor()));
    for name in [LEARNED_LR, LEARNED_LABELS] {
        assert_eq!(
            values(a.learned(name).unwrap()),
            values(b.learned(name).unwrap()),
            "{name}"
        );
    }
}

/// The first expert's network at its last epoch, and its predictions on `images`.
fn expert_predictions(experts: &Path, images: &Tensor) -> (Vec<u32>, Tensor) {
    let arch: Box<dyn Architecture> = find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({"width": 8}))
        .unwrap();
    let net = arch
        .build(
            cafe_framework::ImageShape::new(3, 16, 16),
            10,
            candle_core::DType::F32,
            &Device::Cpu,
            &mut rng_from_seed(0),
        )
        .unwrap();
    let files = expert_files(experts).unwrap();
    let params = ExpertTrajectory::load_epoch(&files[0], &Device::Cpu, None).unwrap();
    let logits = net.logits_with(&params, images, Mode::Eval).unwrap();
    (logits.argmax(1).unwrap().to_vec1::<u32>().unwrap(), logits)
}

#[test]
fn datm_initialises_with_correctly_predicted_images_and_their_mean_logits() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let out = dir.path().join("init");
    run(
        &out,
        &experts,
        &[
            "iterations=0",
            "matcher.pix_init=\"samples_predicted_correctly\"",
            "ipc=2",
        ],
    );
    let syn = set(&out);
    let labels = syn.labels.to_vec1::<u32>().unwrap();
    let (predicted, _) = expert_predictions(&experts, syn.images.as_tensor());
    assert_eq!(
        predicted, labels,
        "every initial image is one the first expert classifies correctly"
    );
    // Soft labels: each image's logits average those of the experts that classify it correctly,
    // so their argmax is its class.
    let soft = syn
        .learned(LEARNED_LABELS)
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    assert_eq!(soft, labels);
    // Not the engine's random draw.
    let engine = dir.path().join("engine");
    run(&engine, &experts, &["iterations=0", "ipc=2"]);
    assert_ne!(values(set(&engine).images.as_tensor()), values(syn.images.as_tensor()));
}

#[test]
fn tesla_teacher_labels_are_the_target_parameters_predictions() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let out = dir.path().join("tesla");
    let settings = [
        "matcher.soft_labels=false",
        "matcher.teacher_label=true",
        "matcher.unroll=\"tesla\"",
    ];
    let r = run(&out, &experts, &settings);
    assert!(r["evaluations"][0]["soft_labels"].as_bool().unwrap());
    let syn = set(&out);
    assert!(syn.learned(LEARNED_LR).is_some());
    assert_eq!(syn.learned(LEARNED_LABELS).unwrap().dims(), [10, 10]);
    // Both options at once are refused.
    let config = tiny_mtt_config(&dir.path().join("both"), &experts, &["matcher.teacher_label=true"]);
    let err = run_condense(&config, quiet()).unwrap_err().to_string();
    assert!(err.contains("teacher_label"), "{err}");
}
