//! The candle patch (`vendor/candle-core`, see its `CAFE_LAB_PATCH.md`) is in effect and is the
//! documented one: the workspace resolves candle-core from `vendor/` and from nowhere else; the
//! vendored tree is the registry's crate plus `vendor/candle-core.patch`; the backward pass that
//! runs is the patched one; and on a ConvNet its gradients, first and second order, equal those of
//! candle's own accumulation (`CANDLE_GRAD_ZERO_FILL=1`).
//!
//! candle reads `CANDLE_GRAD_ZERO_FILL` once per process and `CANDLE_GRAD_DO_NOT_DETACH` once per
//! thread, so each setting runs in a child process: this test binary again, running only
//! [`child_writes_its_gradients`], which does nothing unless [`CHILD_OUT`] is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::train::cross_entropy;
use cafe_framework::{Architecture, ImageShape, Mode, Rng};
use cafe_tests::missing_tool;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde_json::{json, Value};

/// Set by the parent to the file a child writes its gradients to.
const CHILD_OUT: &str = "CAFE_LAB_CANDLE_PATCH_CHILD_OUT";
/// Set by the parent to `first` or `second`: which gradients the child computes.
const CHILD_ORDER: &str = "CAFE_LAB_CANDLE_PATCH_CHILD_ORDER";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The machine's target triple, as rustc states it (`host: ...` of `rustc -vV`).
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("running {} -vV: {e}", rustc.to_string_lossy()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// `cargo metadata` of the workspace for this machine's platform, offline: the graph cargo
/// resolved for this very build, whose packages are all here (without the platform filter cargo
/// wants the manifests of Windows-only packages too, which were never downloaded).
#[test]
fn the_workspace_resolves_candle_core_from_vendor_only() {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host_triple(),
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running {} metadata: {e}", cargo.to_string_lossy()));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let candles: Vec<&Value> = metadata["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .filter(|p| p["name"] == "candle-core")
        .collect();
    let vendored = root.join("vendor/candle-core/Cargo.toml").canonicalize().unwrap();
    let resolved: Vec<String> = candles
        .iter()
        .map(|p| {
            let field = |key: &str| p[key].as_str().unwrap_or("?").to_string();
            format!("{} from {}", field("version"), field("manifest_path"))
        })
        .collect();
    let from_vendor = |p: &Value| {
        p["source"].is_null()
            && p["manifest_path"]
                .as_str()
                .and_then(|m| Path::new(m).canonicalize().ok())
                .is_some_and(|m| m == vendored)
    };
    assert!(
        candles.len() == 1 && from_vendor(candles[0]),
        "candle-core must come from {} alone (the [patch.crates-io] of Cargo.toml), but cargo \
         resolved {}. A candle bump the patch does not match leaves the patch unused \
         (cargo only warns) and builds the unpatched crate: port the patch to the new version \
         (vendor/candle-core/CAFE_LAB_PATCH.md, scripts/candle-patch/check.sh --write)",
        vendored.display(),
        resolved.join(", ")
    );
}

/// `scripts/candle-patch/check.sh --offline` rebuilds the vendored tree from the registry's
/// `.crate` (from cargo's cache or `target/candle-patch/`, never downloaded here) and the patch,
/// and compares: about a second. Without the `.crate`, it skips loudly (fails under CI, where
/// `.ci/run` runs the script first, which downloads and checks it).
#[test]
fn the_vendored_tree_is_the_registry_crate_plus_the_patch() {
    let script = workspace_root().join("scripts/candle-patch/check.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--offline")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(2) => {
            let line = |key: &str| {
                stderr
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .unwrap_or("(see check.sh)")
                    .to_string()
            };
            missing_tool(&line("missing: "), &line("install: "));
        }
        _ => panic!(
            "{} --offline failed:\n{}{stderr}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// Gradients of one child process: each tensor's values as f32 bit patterns, so that the sign of
/// a zero survives the trip.
type Gradients = BTreeMap<String, Vec<u32>>;

/// Runs [`child_writes_its_gradients`] in a fresh process of this test binary, with candle's
/// zero fill on or off and gradients of the given order.
fn child(order: &str, zero_fill: bool) -> Gradients {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gradients.json");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_writes_its_gradients",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_OUT, &file)
    .env(CHILD_ORDER, order);
    if zero_fill {
        cmd.env("CANDLE_GRAD_ZERO_FILL", "1");
    } else {
        cmd.env_remove("CANDLE_GRAD_ZERO_FILL");
    }
    if order == "second" {
        cmd.env("CANDLE_GRAD_DO_NOT_DETACH", "1");
    } else {
        cmd.env_remove("CANDLE_GRAD_DO_NOT_DETACH");
    }
    let out = cmd.output().expect("starting the child test process");
    assert!(
        out.status.success() && file.exists(),
        "child ({order} order, zero fill {zero_fill}) failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&file).unwrap()).expect("the child writes JSON")
}

/// `loss = sum(x * -0)` for `x = [1, 2]`: its gradient is `-0` per element. The patched
/// backward stores that first gradient as it is (`-0`); candle's own adds it to a zero tensor,
/// and `+0 + -0 = +0`. So the sign bit tells which backward ran, in this very binary.
fn zero_sign_probe() -> Vec<u32> {
    let x = Var::from_vec(vec![1f32, 2.0], 2, &Device::Cpu).unwrap();
    let minus_zero = Tensor::new(&[-0f32, -0.0], &Device::Cpu).unwrap();
    let grads = (x.as_tensor() * minus_zero)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    bits(grads.get(&x).expect("x has a gradient"))
}

fn bits(t: &Tensor) -> Vec<u32> {
    let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    values.into_iter().map(f32::to_bits).collect()
}

fn uniform(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Not a test of its own: the child process of the tests below. It computes, for the default
/// ConvNet (width 128, depth 3, instance norm, ReLU, average pooling; its 3x3 convolutions take
/// both the Winograd and the im2col path) on 16 random 3x32x32 images in f32, the gradients of
/// the cross-entropy w.r.t. every parameter and the input pixels; with order `second` also the
/// gradient of `S = sum_p <dL/dp, q_p>` (DC's kind of loss) w.r.t. the pixels and the
/// parameters. Plus [`zero_sign_probe`]. Without [`CHILD_OUT`] it returns at once.
#[test]
fn child_writes_its_gradients() {
    let Some(out) = std::env::var_os(CHILD_OUT) else {
        return;
    };
    let second = std::env::var(CHILD_ORDER).as_deref() == Ok("second");
    cafe_plugins::link();
    let mut grads = Gradients::new();
    grads.insert("zero_sign_probe".into(), zero_sign_probe());

    let input = ImageShape::new(3, 32, 32);
    let arch = find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({}))
        .unwrap();
    let net = arch
        .build(input, 10, DType::F32, &Device::Cpu, &mut rng_from_seed(11))
        .unwrap();
    let mut rng = rng_from_seed(12);
    let x = Var::from_tensor(&uniform(&input.batch_dims(16), &mut rng)).unwrap();
    let labels: Vec<u32> = (0..16).map(|_| rng.random_range(0..10)).collect();
    let labels = Tensor::new(labels, &Device::Cpu).unwrap();
    let loss = cross_entropy(&net.logits(&x, Mode::Train).unwrap(), &labels).unwrap();
    let first = loss.backward().unwrap();
    let params = net.parameters();
    grads.insert("first/x".into(), bits(first.get(&x).expect("dL/dx")));
    for (i, p) in params.iter().enumerate() {
        grads.insert(format!("first/p{i:02}"), bits(first.get(p).expect("dL/dp")));
    }
    if second {
        let mut s = Tensor::new(0f32, &Device::Cpu).unwrap();
        for p in &params {
            let q = uniform(p.dims(), &mut rng);
            s = (s + (first.get(p).unwrap() * q).unwrap().sum_all().unwrap()).unwrap();
        }
        let second = s.backward().unwrap();
        grads.insert("second/x".into(), bits(second.get(&x).expect("dS/dx")));
        for (i, p) in params.iter().enumerate() {
            if let Some(g) = second.get(p) {
                grads.insert(format!("second/p{i:02}"), bits(g));
            }
        }
    }
    std::fs::write(out, serde_json::to_vec(&grads).unwrap()).unwrap();
}

/// How close the patched and the zero-filled gradients must be: element-wise
/// `|a - b| <= rel * max|a| + abs`, `max|a|` over the tensor.
#[derive(Clone, Copy)]
struct Tolerance {
    rel: f64,
    abs: f64,
}

/// First order: exactly equal. candle's accumulation computes `0 + g` for a node's first
/// gradient, which IEEE 754 rounds to `g` itself (every finite `g`), and adds the later ones in
/// the same order as the patch: one walk of the same graph, with the same kernels, whose
/// reductions run in an order fixed by the shapes. Compared as numbers (`==`, for which
/// `-0 == +0`): the sign of an exact zero is the one thing allowed to differ, and it is counted.
const EXACT: Tolerance = Tolerance { rel: 0.0, abs: 0.0 };

/// Second order: equal up to the order of summation. With `CANDLE_GRAD_DO_NOT_DETACH` the first
/// backward is recorded, and candle's `0 + g` is then an `Add` node of that record: the second
/// backward walks a different graph, and contributions to a node can be summed in another
/// order. `rel` 1e-5 of the tensor's largest value is about 80 f32 ulps of it; `abs` 1e-6 covers
/// tensors whose exact value is 0 (the biases in front of instance norm, whose computed
/// gradients are rounding noise of about 1e-7 that even changes sign between the two modes).
/// Seen: at most 1.5e-6 on a tensor whose largest value is 2.7 (6e-7 of it), 1e-7 on the
/// pixels (largest 0.15).
const SUMMATION_ORDER: Tolerance = Tolerance { rel: 1e-5, abs: 1e-6 };

/// The patched and the zero-filled backward must give the same gradients (see [`EXACT`] and
/// [`SUMMATION_ORDER`]). The probe shows that the two children really ran different backward
/// passes, and that the default one is the patch (an unpatched candle-core fails here).
fn compare(order: &str, tolerance: Tolerance) {
    let patched = child(order, false);
    let zero_filled = child(order, true);
    assert!(
        patched["zero_sign_probe"].iter().all(|&b| b == (-0f32).to_bits()),
        "the default backward added the first gradient to zeros (+0 + -0 = +0): this binary runs \
         an unpatched candle-core, not vendor/candle-core"
    );
    assert!(
        zero_filled["zero_sign_probe"].iter().all(|&b| b == 0f32.to_bits()),
        "CANDLE_GRAD_ZERO_FILL=1 did not restore candle's accumulation"
    );
    assert_eq!(
        patched.keys().collect::<Vec<_>>(),
        zero_filled.keys().collect::<Vec<_>>(),
        "the same tensors get gradients"
    );
    let (mut values, mut unequal, mut signed_zeros) = (0, 0, 0);
    // The largest difference, and the largest share of its bound one used.
    let (mut largest, mut share) = (0f64, 0f64);
    for (name, a) in patched.iter().filter(|(name, _)| *name != "zero_sign_probe") {
        let b = &zero_filled[name];
        assert_eq!(a.len(), b.len(), "{name}");
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&x| f32::from_bits(x)).collect(),
            b.iter().map(|&x| f32::from_bits(x)).collect(),
        );
        let scale = a.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
        let bound = tolerance.rel * scale + tolerance.abs;
        for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
            assert!(x.is_finite() && y.is_finite(), "{order} order, {name}[{i}]: {x}, {y}");
            let d = (f64::from(x) - f64::from(y)).abs();
            assert!(
                d <= bound,
                "{order} order, {name}[{i}]: patched {x:e}, zero-filled {y:e}, beyond {bound:e} \
                 (largest |value| of {name}: {scale:e})"
            );
            unequal += usize::from(x != y);
            signed_zeros += usize::from(x == y && x.to_bits() != y.to_bits());
            largest = largest.max(d);
            if bound > 0.0 {
                share = share.max(d / bound);
            }
        }
        values += a.len();
    }
    eprintln!(
        "{order} order: {values} gradient values, {unequal} unequal (largest difference {largest:.1e}, \
         {share:.2} of its bound), {signed_zeros} zeros of the other sign"
    );
    assert!(
        values > 100_000,
        "the ConvNet's gradients were compared ({values} values)"
    );
}

#[test]
fn convnet_gradients_equal_candles_own_accumulation() {
    compare("first", EXACT);
}

#[test]
fn convnet_second_order_gradients_equal_candles_own_accumulation() {
    compare("second", SUMMATION_ORDER);
}
