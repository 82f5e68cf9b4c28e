//! One condensation iteration of each method (DM, DC, DSA, CAFE, MTT) through the command
//! line, on the CPU and on the device, from the same seed on the embedded `shapes` set: every
//! random draw (initial images, real batches, augmentation, networks) is cafe-lab's own seeded
//! RNG, so both start from the same numbers and the synthetic sets after the iteration must
//! agree up to f32 rounding. Each run also evaluates its set on one tiny network, so the whole
//! command (condense, evaluate, write) is exercised on the device.

use std::path::Path;
use std::time::Instant;

use cafe_framework::synthetic::SyntheticSet;
use cafe_framework::trajectory::ExpertsConfig;
use cafe_framework::{Error, Result};
use candle_core::Device;
use clap::Parser;

use super::{rel_err, Report, Tolerance};
use crate::{execute, Cli};

/// Every run: one iteration, one tiny evaluation, a width-32 ConvNet.
const TINY: &[&str] = &[
    "--dataset",
    "shapes",
    "--iterations",
    "1",
    "--batch-real",
    "16",
    "--eval-nets",
    "1",
    "--eval-epochs",
    "1",
    "--test-limit",
    "50",
    "--seed",
    "5",
    "--set",
    "arch.width=32",
    "--quiet",
    "--force",
];

/// (name, flags) of each method; MTT's also name the expert store (added in [`check`]).
fn methods() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("dm", vec!["--matcher", "distribution", "--ipc", "2"]),
        ("dc", vec!["--matcher", "gradient", "--ipc", "1"]),
        ("dsa", vec!["--protocol", "dsa", "--ipc", "1"]),
        // One matching step (`fixed`, one outer step): CAFE's own scheduler trains the network
        // between steps (one iteration: 294 s on 2 busy CPU cores), beyond the part's 100 s.
        (
            "cafe",
            vec![
                "--matcher",
                "cafe",
                "--ipc",
                "1",
                "--scheduler",
                "fixed",
                "--set",
                "scheduler.outer_loop=1",
            ],
        ),
        (
            "mtt",
            vec![
                "--set",
                "matcher=trajectory",
                "--ipc",
                "1",
                "--set",
                "matcher.syn_steps=3",
                "--set",
                "matcher.max_start_epoch=1",
                "--set",
                "matcher.expert_epochs=1",
            ],
        ),
    ]
}

/// The tolerance on the synthetic images after one iteration: each step of image SGD moves
/// them by the learning rate times a gradient computed in f32 on either side, in another
/// order of summation; DC's cosine distance divides by gradient norms, which amplifies.
const TOLERANCE: Tolerance = Tolerance {
    value: 1e-3,
    why: "one image-SGD step from f32 gradients summed in another order",
};

fn condense(device: &str, flags: &[&str], out: &Path) -> Result<SyntheticSet> {
    let out_s = out.to_string_lossy().to_string();
    let mut args = vec!["cafe-lab", "condense", "--device", device, "--out", &out_s];
    args.extend(TINY);
    args.extend(flags);
    let cli = Cli::try_parse_from(&args).map_err(|e| Error::Other(format!("arguments {args:?}: {e}")))?;
    execute(cli).map_err(|e| Error::Other(format!("{e:#}")))?;
    SyntheticSet::load(&out.join("synthetic.safetensors"), &Device::Cpu)
}

/// Two experts of 2 epochs on `shapes` (width 32, no augmentation), trained on the CPU, for MTT.
fn experts(store: &Path) -> Result<()> {
    let flags = serde_json::json!({
        "dataset": "shapes",
        "num_experts": 2,
        "train_epochs": 2,
        "batch_train": 128,
        "test_limit": 50,
        "augment": {"name": "none"},
        "seed": 3,
        "out": store,
    });
    let config = ExpertsConfig::from_overrides(&flags, &["arch.width=32".to_string()])?;
    cafe_framework::run::run_experts(&config, true, &cafe_framework::dist::Solo)?;
    Ok(())
}

/// Each method on the CPU and on `device` (its name as `--device` takes it).
pub fn check(device: &str, report: &mut Report) {
    let started = Instant::now();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            report.failed("methods", "temporary folder", &Error::io("creating one", e), started);
            return;
        }
    };
    let store = dir.path().join("experts");
    let store_flag = format!("matcher.experts={}", store.display());
    let experts_ready = experts(&store);
    if let Err(e) = &experts_ready {
        report.failed("methods", "mtt experts (cpu)", e, started);
    }
    for (name, mut flags) in methods() {
        let started = Instant::now();
        if name == "mtt" {
            if experts_ready.is_err() {
                continue;
            }
            flags.extend(["--set", store_flag.as_str()]);
        }
        let outcome = (|| -> Result<f64> {
            let cpu = condense("cpu", &flags, &dir.path().join(format!("{name}-cpu")))?;
            let gpu = condense(device, &flags, &dir.path().join(format!("{name}-device")))?;
            rel_err(gpu.images.as_tensor(), cpu.images.as_tensor())
        })();
        let what = format!("{name}: synthetic set after 1 iteration");
        match outcome {
            Ok(err) => report.record("methods", &what, err, TOLERANCE, started),
            Err(e) => report.failed("methods", &what, &e, started),
        }
    }
}
