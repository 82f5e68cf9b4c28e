//! Shared helpers of cafe-lab's cross-crate tests: small in-memory datasets, tiny run settings,
//! CLI runs, and the one rule for tests that need a tool from outside Rust.

use std::path::{Path, PathBuf};

use cafe_framework::config::{ConfigBuilder, RunConfig};
use cafe_framework::data::{Dataset, ImageSet};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::run::RunOptions;
use cafe_framework::ImageShape;
use rand_free::normal_vec;

// Keep the plugins linked (CANDLE_NOTES 7).
use cafe_plugins as _;

/// A tiny labelled dataset of Gaussian blobs: class c has its mean shifted by c/classes.
pub fn blob_dataset(classes: usize, per_class: usize, shape: ImageShape, seed: u64) -> Dataset {
    let make = |n: usize, seed: u64| {
        let mut images = Vec::with_capacity(classes * n * shape.numel());
        let mut labels = Vec::new();
        let noise = normal_vec(classes * n * shape.numel(), seed);
        for c in 0..classes {
            for i in 0..n {
                let base = (c * n + i) * shape.numel();
                for k in 0..shape.numel() {
                    images.push(noise[base + k] * 0.5 + c as f32 / classes as f32);
                }
                labels.push(c as u32);
            }
        }
        ImageSet { images, labels, shape }
    };
    Dataset {
        name: "blobs".into(),
        train: make(per_class, seed),
        test: make(per_class.div_ceil(2), seed + 1),
        classes,
        class_names: (0..classes).map(|c| format!("class{c}")).collect(),
        mean: vec![0.0; shape.channels],
        std: vec![1.0; shape.channels],
        zca: None,
    }
}

mod rand_free {
    //! Box-Muller normals from our seeded generator, without extra dependencies.
    use rand::Rng as _;

    pub fn normal_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = super::rng_from_seed(seed);
        (0..n)
            .map(|_| {
                let u1: f64 = rng.random::<f64>().max(1e-12);
                let u2: f64 = rng.random();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
            })
            .collect()
    }
}

/// Runs the CLI library with `args` (without the program name); returns 0 on success, 1 on any
/// failure (the binary's own status, e.g. 130 when interrupted, is checked in cli/tests).
pub fn cafe_lab(args: &[&str]) -> i32 {
    let code = cafe_cli::run_from(std::iter::once("cafe-lab").chain(args.iter().copied()));
    // ExitCode has no accessor: only success can be told apart.
    if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    }
}

/// Parses the CLI and executes, returning the error text on failure.
pub fn cafe_lab_result(args: &[&str]) -> Result<(), String> {
    use clap::Parser;
    let cli = cafe_cli::Cli::try_parse_from(std::iter::once("cafe-lab").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    cafe_cli::execute(cli).map_err(|e| format!("{e:#}"))
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `cafe-lab evaluate --synthetic set_file --out out -q` with no other flag; returns the
/// `evaluations` of its results.json, for comparing with the run that made the set.
pub fn reevaluate(set_file: &Path, out: &Path) -> serde_json::Value {
    cafe_lab_result(&[
        "evaluate",
        "--synthetic",
        set_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ])
    .unwrap_or_else(|e| panic!("re-evaluating {}: {e}", set_file.display()));
    read_json(&out.join("results.json"))["evaluations"].clone()
}

/// Where the Debian package `dataset-fashion-mnist` puts the files, when installed; where not,
/// [`missing_tool`] says so (a failure under CI).
pub fn debian_fashion_mnist() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/share/datasets/fashion-mnist");
    if p.is_dir() {
        return Some(p);
    }
    missing_tool(
        "Fashion-MNIST (/usr/share/datasets/fashion-mnist)",
        "sudo apt-get install dataset-fashion-mnist",
    );
    None
}

/// True under CI: `CI` set to anything but empty, `0` or `false` (`.ci/run` exports `CI=1`;
/// hosted CI services set `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Called by a test that cannot run because `what` is missing from this machine. Under CI it
/// fails the test, naming `install`: CI must run every test, so a missing tool there is a
/// broken CI script, not a reason to skip. Elsewhere it prints `SKIPPED: ...` with the install
/// line and the test returns, so that the README's `cargo test --workspace --release` passes on
/// a fresh machine and says what it did not check.
pub fn missing_tool(what: &str, install: &str) {
    assert!(
        !in_ci(),
        "this test needs {what}, not found here, and CI (CI is set) runs every test: install with \
         `{install}` (.ci/run does)"
    );
    eprintln!("SKIPPED: this test needs {what}, not found here; install with `{install}`");
}

/// The first of `names` that is an executable file in a folder of `PATH`.
pub fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether `python3` runs and imports every one of `modules`; where not, [`missing_tool`] says
/// which is missing (the interpreter or the packages) and how to install it.
pub fn require_python_modules(modules: &[&str]) -> bool {
    let import = format!("import {}", modules.join(", "));
    match std::process::Command::new("python3").args(["-c", &import]).output() {
        Ok(out) if out.status.success() => true,
        Ok(_) => {
            missing_tool(
                &format!("Python's {}", modules.join(" and ")),
                &format!("python3 -m pip install {}", modules.join(" ")),
            );
            false
        }
        Err(_) => {
            missing_tool(
                "python3",
                &format!(
                    "sudo apt-get install python3 python3-pip && python3 -m pip install {}",
                    modules.join(" ")
                ),
            );
            false
        }
    }
}

/// The Python interpreter of the venv that `scripts/python/setup.sh` makes (the installed
/// `cafe_lab` wheel, pytest, PyTorch...): `$CAFE_LAB_PYTHON`, else `target/python-venv/bin/python`
/// at the workspace root, provided it imports every one of `modules`; where not,
/// [`missing_tool`] says how to make it (a failure under CI).
pub fn python_venv(modules: &[&str]) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("CAFE_LAB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-venv/bin/python"));
    let import = format!("import {}", modules.join(", "));
    let ok = std::process::Command::new(&python)
        .args(["-c", &import])
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        return Some(python);
    }
    missing_tool(
        &format!("a Python venv with {} ({})", modules.join(", "), python.display()),
        "scripts/python/setup.sh",
    );
    None
}

/// What `python3 -c script arg` prints, parsed as JSON (for reading our files with another
/// library's own reader); a failure shows Python's error output.
pub fn python_json(script: &str, arg: &Path) -> serde_json::Value {
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(arg)
        .output()
        .expect("running python3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("python3 printed no JSON: {e}"))
}

/// DM on `shapes` shrunk to seconds, as CLI flags: 2 images per class, 3 iterations of 8 real
/// images per class, a width-8 ConvNet, `eval_nets` evaluation networks of `eval_epochs` epochs
/// on 100 test images, quiet; `extra` goes before `--quiet`. A test adds `--out`.
pub fn tiny_dm_flags(eval_nets: &'static str, eval_epochs: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut flags = vec![
        "--dataset",
        "shapes",
        "--ipc",
        "2",
        "--iterations",
        "3",
        "--batch-real",
        "8",
        "--eval-nets",
        eval_nets,
        "--eval-epochs",
        eval_epochs,
        "--test-limit",
        "100",
        "--set",
        "arch.width=8",
    ];
    flags.extend(extra);
    flags.push("--quiet");
    flags
}

/// The run configuration of `settings` (`--set` strings, applied in order) writing to `out`.
pub fn run_config(settings: &[&str], out: &Path) -> RunConfig {
    let mut b = ConfigBuilder::default();
    for s in settings {
        b.set(s).unwrap_or_else(|e| panic!("setting {s}: {e}"));
    }
    b.set(&format!("out=\"{}\"", out.display())).unwrap();
    b.build().unwrap()
}

/// [`TINY_MTT`] and then `extra`, reading the expert store `experts`, writing to `out`.
pub fn tiny_mtt_config(out: &Path, experts: &Path, extra: &[&str]) -> RunConfig {
    let experts = format!("matcher.experts=\"{}\"", experts.display());
    let settings: Vec<&str> = TINY_MTT
        .iter()
        .chain(extra)
        .copied()
        .chain([experts.as_str()])
        .collect();
    run_config(&settings, out)
}

/// Run options for a test: no progress output.
pub fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// Two tiny experts on the embedded `shapes` set (ConvNet of the given width, 3 epochs of SGD
/// without augmentation, seed 3) in `out`: the store the trajectory-matching tests condense with.
pub fn tiny_expert_store(out: &Path, width: usize) {
    let flags = serde_json::json!({
        "dataset": "shapes",
        "num_experts": 2,
        "train_epochs": 3,
        "batch_train": 128,
        "test_limit": 100,
        "augment": {"name": "none"},
        "seed": 3,
        "out": out,
    });
    let config = cafe_framework::trajectory::ExpertsConfig::from_overrides(&flags, &[format!("arch.width={width}")])
        .expect("valid expert settings");
    cafe_framework::run::run_experts(&config, true, &cafe_framework::dist::Solo).expect("tiny experts train");
}

/// MTT's protocol on `shapes` shrunk to seconds (4 iterations of 3 student steps on a width-8
/// ConvNet, soft labels learned, 3 evaluation epochs on 100 test images), as `--set` strings;
/// a test adds `matcher.experts`, `out` and its own settings.
pub const TINY_MTT: [&str; 13] = [
    "dataset=shapes",
    "matcher=trajectory",
    "ipc=1",
    "iterations=4",
    "arch.width=8",
    "matcher.syn_steps=3",
    "matcher.max_start_epoch=2",
    "matcher.expert_epochs=1",
    "matcher.soft_labels=true",
    "matcher.lr_lr=0.001",
    "eval.epochs=3",
    "eval.test_limit=100",
    "seed=4",
];
