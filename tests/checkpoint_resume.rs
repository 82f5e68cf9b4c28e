//! Checkpoints, interruption and resumption, the NaN guard, and TensorBoard event files read
//! by a real reader (Python's `tensorboard` package, installed by `.ci/run`).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use cafe_framework::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use cafe_framework::run::{resume_condense, run_condense, RunOptions};
use cafe_framework::synthetic::SyntheticSet;
use cafe_framework::Error;
use cafe_tests::{python_json, quiet, read_json, require_python_modules, run_config};
use candle_core::Device;

/// Tiny DM settings on `shapes` with a checkpoint and images logged every 2 iterations, then
/// `extra`.
fn config(out: &Path, extra: &[&str]) -> cafe_framework::config::RunConfig {
    let base = [
        "dataset=shapes",
        "ipc=2",
        "iterations=5",
        "batch_real=8",
        "eval.nets=1",
        "eval.epochs=2",
        "eval.test_limit=100",
        "arch.width=8",
        "checkpoint_every=2",
        "log_images_every=2",
    ];
    run_config(&[&base[..], extra].concat(), out)
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bytes_as_an_uninterrupted_one() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    for matcher in ["matcher=distribution", "matcher=cafe"] {
        let whole = dir.path().join(format!("whole-{matcher}"));
        let cut = dir.path().join(format!("cut-{matcher}"));
        let extra = [
            matcher,
            "scheduler=fixed",
            "scheduler.outer_loop=2",
            "scheduler.inner_loop=1",
        ];
        run_condense(&config(&whole, &extra), quiet()).unwrap();

        // The flag is already set: the run stops after its first iteration, with a checkpoint.
        static STOP: AtomicBool = AtomicBool::new(true);
        let err = run_condense(
            &config(&cut, &extra),
            RunOptions {
                interrupt: Some(&STOP),
                ..quiet()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::Interrupted { next_iteration: 1, .. }), "{err}");
        assert!(err.to_string().contains("--resume"), "{err}");
        assert!(
            !cut.join("synthetic.safetensors").exists(),
            "an interrupted run writes no final set"
        );
        let ck = Checkpoint::load(&cut.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
        assert_eq!(ck.state.next_iteration, 1);
        assert!(ck.velocity.is_some(), "the image optimiser's momentum is saved");

        resume_condense(&cut, quiet()).unwrap();
        let a = std::fs::read(whole.join("synthetic.safetensors")).unwrap();
        let b = std::fs::read(cut.join("synthetic.safetensors")).unwrap();
        assert!(a == b, "{matcher}: resumed run differs from the uninterrupted one");
        let (ra, rb) = (
            read_json(&whole.join("results.json")),
            read_json(&cut.join("results.json")),
        );
        assert_eq!(ra["evaluations"], rb["evaluations"]);
        let steps = |r: &serde_json::Value| r["condensation"]["per_iteration"].as_array().unwrap().len();
        assert_eq!(steps(&ra), 5);
        assert_eq!(
            steps(&rb),
            5,
            "the records of iterations before the interruption are kept"
        );
    }
}

#[test]
fn periodic_checkpoints_record_where_to_continue() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_condense(&config(&out, &[]), quiet()).unwrap();
    // 5 iterations, a checkpoint every 2: the last one was written after iteration 4.
    let ck = Checkpoint::load(&out.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
    assert_eq!(ck.state.next_iteration, 4);
    assert_eq!(ck.state.reports.len(), 4);
    assert_eq!(ck.images.dims(), &[20, 3, 16, 16]);
}

#[test]
fn resume_without_a_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = resume_condense(dir.path(), quiet()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    let out = dir.path().join("run");
    run_condense(&config(&out, &["checkpoint_every=0"]), quiet()).unwrap();
    let err = resume_condense(&out, quiet()).unwrap_err().to_string();
    assert!(err.contains("checkpoint"), "{err}");
}

#[test]
fn a_broken_checkpoint_or_synthetic_set_is_called_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join(CHECKPOINT_FILE);
    std::fs::write(&broken, b"\x01\x02").unwrap();
    let err = Checkpoint::load(&broken, &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("checkpoint {} is corrupt", broken.display())),
        "{err}"
    );
    assert!(err.contains("delete it") && err.contains("--force"), "{err}");
    assert!(!err.contains("dataset"), "{err}");

    let err = SyntheticSet::load(&broken, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.starts_with("synthetic set ") && err.contains("cafe-lab condense"),
        "{err}"
    );
    assert!(!err.contains("dataset"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = run_condense(
        &config(
            &out,
            &["lr_img=1e30", "arch.norm=none", "checkpoint_every=1", "iterations=20"],
        ),
        quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("non-finite") && err.contains("lr-img"), "{err}");
    assert!(
        !out.join("synthetic.safetensors").exists(),
        "no result is written from a diverged set"
    );
    if out.join(CHECKPOINT_FILE).exists() {
        assert!(err.contains("last good checkpoint"), "{err}");
        let ck = Checkpoint::load(&out.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
        let max = ck.images.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(max.is_finite(), "the kept checkpoint is finite");
    }
}

const READ_EVENTS: &str = r#"
import glob, json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
       "images": {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]},
       "tensors": {t: [e.tensor_proto.string_val[0].decode() for e in acc.Tensors(t)] for t in tags["tensors"]}}
print(json.dumps(out))
"#;

#[test]
fn tensorboard_event_files_read_back_with_tensorboards_own_reader() {
    if !require_python_modules(&["tensorboard"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_condense(
        &config(
            &out,
            &[
                "matcher=cafe",
                "scheduler=dynamic",
                "scheduler.max_outer_steps=2",
                "scheduler.max_inner_epochs=2",
                "scheduler.probe_per_class=4",
                "iterations=3",
            ],
        ),
        quiet(),
    )
    .unwrap();
    let events = python_json(READ_EVENTS, &out.join("tensorboard"));
    let scalars = &events["scalars"];
    for tag in [
        "loss/total",
        "loss/block_1",
        "loss/embedding",
        "loss/discriminant",
        "scheduler/outer_steps",
        "scheduler/inner_epochs",
        "probe/accuracy",
        "time/seconds_per_iteration",
        "eval/synthetic/convnet",
        "eval/random/convnet",
    ] {
        assert!(scalars.get(tag).is_some(), "missing scalar {tag}: {}", scalars);
    }
    // Three iterations, each capped at 2 outer steps of the dynamic scheduler.
    let outer: Vec<f64> = scalars["scheduler/outer_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert_eq!(outer, [2.0, 2.0, 2.0]);
    let results = read_json(&out.join("results.json"));
    let acc = results["evaluations"][0]["mean"].as_f64().unwrap();
    let logged = scalars["eval/synthetic/convnet"][0][1].as_f64().unwrap();
    assert!((acc - logged).abs() < 1e-6, "{acc} vs {logged}");
    // The synthetic grid: after iteration 2 and at the end (log_images_every=2, 3 iterations).
    let images = events["images"]["synthetic"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        images[0][2].as_i64().unwrap() > images[0][1].as_i64().unwrap(),
        "one row per class: taller than wide"
    );
    let config_text = events["tensors"]["config/text_summary"]
        .as_array()
        .or(events["tensors"]["config"].as_array())
        .unwrap();
    assert!(
        config_text[0].as_str().unwrap().contains("\"matcher\""),
        "{config_text:?}"
    );
}
