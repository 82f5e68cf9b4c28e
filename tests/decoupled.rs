//! The decoupled methods on a shared frozen teacher: RDED's selection against scores computed by
//! hand, the teacher file (parameters and BatchNorm running statistics) round trip and its
//! refusals, `cafe-lab teacher` then SRe2L and RDED end to end on `shapes` with the hard- and
//! soft-label recipes and DD-Ranking's metrics of both, the same bytes from one seed, and an
//! interrupted SRe2L recovery (Adam's state in the checkpoint) resumed to the same bytes.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cafe_framework::data::{Dataset, ImageSet};
use cafe_framework::nn::ParamSource;
use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::run::{resume_condense, run_condense, RunOptions};
use cafe_framework::synthetic::{class_major_labels, SyntheticSet};
use cafe_framework::teacher::{load_teacher, save_teacher_with, Teacher, TeacherArch, TeacherInfo};
use cafe_framework::traits::matcher::PrepareContext;
use cafe_framework::{Architecture, Error, ImageShape, Matcher, Mode, Network, NetworkOutput, Result};
use cafe_tests::{cafe_lab, cafe_lab_result, quiet, read_json, run_config};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;

/// A teacher whose realism scores can be worked out by hand: for the mean pixel m of an image,
/// logits `[-w (m - 0.5)^2, -1]` with w = 4 (its one parameter).
struct MeanTeacher {
    w: Var,
}

impl Network for MeanTeacher {
    fn forward_from(&self, params: &mut ParamSource, x: &Tensor, _mode: Mode) -> Result<NetworkOutput> {
        let w = params.take(&self.w)?;
        let m = x.flatten_from(1)?.mean_keepdim(1)?;
        let z0 = (m.affine(1.0, -0.5)?.sqr()?.broadcast_mul(&w)? * -1.0)?;
        let z1 = Tensor::full(-1.0f32, z0.dims(), x.device())?;
        Ok(NetworkOutput {
            logits: Tensor::cat(&[&z0, &z1], 1)?,
            embedding: m,
            block_features: Vec::new(),
        })
    }

    fn parameters(&self) -> Vec<Var> {
        vec![self.w.clone()]
    }
}

fn info(arch: &str) -> TeacherInfo {
    TeacherInfo {
        arch: arch.into(),
        source: "test".into(),
        epochs: 0,
        train_images: 0,
        accuracy: 0.0,
    }
}

/// Two classes of six constant 1x4x4 images each.
fn constant_dataset() -> Dataset {
    let values = [
        [0.1f32, 0.55, 0.9, 0.2, 0.7, 0.35],
        [-0.1, -0.45, -0.9, -0.3, -0.65, -0.2],
    ];
    let shape = ImageShape::new(1, 4, 4);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (c, row) in values.iter().enumerate() {
        for v in row {
            images.extend(std::iter::repeat_n(*v, 16));
            labels.push(c as u32);
        }
    }
    let set = ImageSet { images, labels, shape };
    Dataset {
        name: "constant".into(),
        train: set.clone(),
        test: set,
        classes: 2,
        class_names: vec!["a".into(), "b".into()],
        mean: vec![0.0],
        std: vec![1.0],
        zca: None,
    }
}

/// RDED's set for `factor` and `ipc` on [`constant_dataset`] with [`MeanTeacher`].
fn rded_set(factor: usize, ipc: usize) -> Vec<f32> {
    let ds = constant_dataset();
    let teacher = Arc::new(Teacher {
        net: Box::new(MeanTeacher {
            w: Var::new(&[4.0f32], &Device::Cpu).unwrap(),
        }),
        info: info("mean"),
    });
    let arch = find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({"width": 8, "depth": 1}))
        .unwrap();
    let mut matcher = find::<dyn Matcher>("rded")
        .unwrap()
        .instantiate(&json!({"factor": factor, "num_crop": 2, "mipc": 6}))
        .unwrap();
    let labels = class_major_labels(2, ipc, &Device::Cpu).unwrap();
    let initial = Tensor::zeros((2 * ipc, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let ctx = PrepareContext {
        dataset: &ds,
        arch: arch.as_ref(),
        arch_name: "convnet",
        arch_config: &json!({}),
        images: &initial,
        labels: &labels,
        ipc,
        iterations: 0,
        device: &Device::Cpu,
        seed: 5,
        teacher: Some(&teacher),
    };
    matcher.prepare(&ctx).unwrap();
    let set = matcher.initialise(&ctx).unwrap().expect("rded makes its set");
    set.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn rded_keeps_the_crops_the_teacher_scores_most_realistic_and_stitches_them() {
    cafe_plugins::link();
    let close = |got: &[f32], want: &[f32]| {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-6, "pixel {i}: {g} vs {w}\n{got:?}");
        }
    };
    // Factor 1: a crop of a constant image resized back is the image, m = v. Scores
    // -log softmax(z)[c] (python, math.exp/log):
    //   class 0: 0.55 -> 0.3160, 0.35 -> 0.3383, 0.7 -> 0.3589, 0.2 -> 0.4235, 0.1, 0.9 -> 0.5293
    //   class 1: -0.9 -> 0.0011, -0.65 -> 0.0136, -0.45 -> 0.0710, -0.3 -> 0.1907, ...
    // Two per class, best first: not the brightest images of class 0, the ones nearest 0.5.
    let want: Vec<f32> = [0.55f32, 0.35, -0.9, -0.65].iter().flat_map(|v| [*v; 16]).collect();
    close(&rded_set(1, 2), &want);
    // Factor 2: each crop is resized to 2x2 and scored centred on a zero 4x4 canvas, m = v / 4:
    //   class 0: 0.9 -> 0.4040, 0.7 -> 0.4455, 0.55 -> 0.4838, 0.35 -> 0.5462, ...
    //   class 1: -0.9 -> 0.2867, -0.65 -> 0.3851, -0.45 -> 0.4738, -0.3 -> 0.5448, ...
    // The best four of a class fill one image, row by row (slot k = the k-th best).
    #[rustfmt::skip]
    let quad = |a: f32, b: f32, c: f32, d: f32| vec![
        a, a, b, b,
        a, a, b, b,
        c, c, d, d,
        c, c, d, d,
    ];
    let mut want = quad(0.9, 0.7, 0.55, 0.35);
    want.extend(quad(-0.9, -0.65, -0.45, -0.3));
    close(&rded_set(2, 1), &want);
}

#[test]
fn a_teacher_file_keeps_batch_norm_statistics_and_refuses_what_does_not_fit() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let shape = ImageShape::new(3, 16, 16);
    let config = json!({"width": 8, "depth": 2, "activation": "relu", "norm": "batchnorm", "pooling": "avgpooling"});
    let bn = find::<dyn Architecture>("convnetbn")
        .unwrap()
        .instantiate(&config)
        .unwrap();
    let net = bn
        .build(shape, 4, DType::F32, &Device::Cpu, &mut rng_from_seed(1))
        .unwrap();
    // Move the running statistics away from PyTorch's initial 0 and 1.
    let x = Tensor::randn(0.5f32, 2.0, (8, 3, 16, 16), &Device::Cpu).unwrap();
    net.logits(&x, Mode::Train).unwrap();
    let want = net
        .logits(&x, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let teacher = Teacher {
        net,
        info: info("convnetbn"),
    };
    let file = dir.path().join("t.safetensors");
    save_teacher_with(&teacher, "shapes", Some(&config), &file).unwrap();
    let target = |config| TeacherArch {
        arch: bn.as_ref(),
        name: "convnetbn",
        config,
        shape,
        classes: 4,
    };
    let back = load_teacher(&target(Some(&config)), "shapes", &file, &Device::Cpu, "teacher").unwrap();
    let got = back
        .net
        .logits(&x, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(got, want, "evaluation-mode outputs after the round trip");

    let refused = |arch: &TeacherArch, dataset: &str, file: &Path| -> String {
        load_teacher(arch, dataset, file, &Device::Cpu, "teacher")
            .err()
            .expect("refused")
            .to_string()
    };
    let e = refused(&target(Some(&config)), "mnist", &file);
    assert!(e.contains("trained on shapes, this run is on mnist"), "{e}");
    let wider = json!({"width": 16, "depth": 2, "activation": "relu", "norm": "batchnorm", "pooling": "avgpooling"});
    let e = refused(&target(Some(&wider)), "shapes", &file);
    assert!(e.contains("settings") && e.contains("cafe-lab teacher"), "{e}");
    // A file without running statistics (as written before they were kept): the instance-norm
    // ConvNet has parameters of the same shapes and no BatchNorm layer.
    let plain = find::<dyn Architecture>("convnet")
        .unwrap()
        .instantiate(&json!({"width": 8, "depth": 2}))
        .unwrap();
    let old = Teacher {
        net: plain
            .build(shape, 4, DType::F32, &Device::Cpu, &mut rng_from_seed(2))
            .unwrap(),
        info: info("convnetbn"),
    };
    let old_file = dir.path().join("old.safetensors");
    save_teacher_with(&old, "shapes", None, &old_file).unwrap();
    let e = refused(&target(None), "shapes", &old_file);
    assert!(
        e.contains("no running statistics") && e.contains("train the teacher again"),
        "{e}"
    );
}

/// `cafe-lab teacher` on `shapes`: a ConvNetBN of width 8 trained 2 epochs, into `file`.
fn tiny_teacher(file: &Path) {
    let code = cafe_lab(&[
        "teacher",
        "--dataset",
        "shapes",
        "--epochs",
        "2",
        "--test-limit",
        "100",
        "--set",
        "arch.width=8",
        "--out",
        file.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "cafe-lab teacher failed");
}

/// A decoupled method's tiny run on `shapes` against `teacher`, with `extra` flags, into `out`.
fn decoupled_run(matcher: &str, teacher: &Path, out: &Path, extra: &[&str]) -> std::result::Result<(), String> {
    let mut flags = vec![
        "--matcher",
        matcher,
        "--dataset",
        "shapes",
        "--arch",
        "convnetbn",
        "--set",
        "arch.width=8",
        "--teacher",
        teacher.to_str().unwrap(),
        "--ipc",
        "1",
        "--eval-nets",
        "1",
        "--eval-epochs",
        "2",
        "--set",
        "eval.kd_recipe.epochs=2",
        "--test-limit",
        "100",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    flags.extend(extra);
    cafe_lab_result(&flags)
}

#[test]
fn sre2l_and_rded_run_end_to_end_on_a_shared_teacher_with_both_recipes() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher.safetensors");
    tiny_teacher(&teacher);
    let metrics = ["--metrics", "--set", "eval.whole_accuracy=0.9"];
    for (matcher, extra) in [
        ("sre2l", vec!["--iterations", "3"]),
        ("rded", vec!["--set", "matcher.mipc=20"]),
    ] {
        let a = dir.path().join(format!("{matcher}-a"));
        let flags: Vec<&str> = extra.iter().copied().chain(metrics).collect();
        decoupled_run(matcher, &teacher, &a, &flags).unwrap_or_else(|e| panic!("{matcher}: {e}"));
        let r = read_json(&a.join("results.json"));
        let sets: Vec<&str> = r["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["set"].as_str().unwrap())
            .collect();
        for set in [
            "synthetic",
            "random",
            "synthetic-kd",
            "random-kd",
            "synthetic-kd-noaug",
            "random-kd-noaug",
        ] {
            assert!(sets.contains(&set), "{matcher}: no '{set}' evaluation in {sets:?}");
        }
        let kd = r["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["set"] == "synthetic-kd")
            .unwrap();
        // The protocol's soft-label recipe: its augmentation (mix over crop_flip), E epochs.
        assert!(kd["augment"].as_str().unwrap().starts_with("mix"), "{kd}");
        assert_eq!(kd["epochs"], 2);
        assert_eq!(r["kd"]["teacher"]["source"], teacher.display().to_string());
        let labels: Vec<&str> = r["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["labels"].as_str().unwrap_or("hard"))
            .collect();
        assert_eq!(
            labels,
            ["hard", "soft"],
            "{matcher}: the hard- and the soft-label metrics"
        );
        // The references' rules: SRe2L's relabel teacher in training mode (relabel_cifar.py
        // never calls .eval()), RDED's best test accuracy past 80 % (validation/main.py:176-190).
        let config = read_json(&a.join("config.json"));
        let mode = config["eval"]["kd_teacher_mode"].as_str().unwrap_or("eval");
        assert_eq!(mode, if matcher == "sre2l" { "train" } else { "eval" }, "{matcher}");
        let report = kd["report"].as_str().unwrap_or("final");
        assert_eq!(
            report,
            if matcher == "rded" { "best_test" } else { "final" },
            "{matcher}"
        );
        if matcher == "rded" {
            let notes = r["notes"].as_array();
            assert!(
                notes.is_none_or(|n| n.is_empty()),
                "no 0-iteration note: {}",
                r["notes"]
            );
        }
        // One seed, the same pixels (the files differ in the configuration they record).
        let b = dir.path().join(format!("{matcher}-b"));
        decoupled_run(matcher, &teacher, &b, &extra).unwrap();
        let pixels = |d: &Path| {
            SyntheticSet::load(&d.join("synthetic.safetensors"), &Device::Cpu)
                .unwrap()
                .images_detached()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert!(pixels(&a) == pixels(&b), "{matcher}: one seed gave two sets");
    }
    // RDED takes no gradient step; a teacher of other settings, or none, is refused up front.
    let e = decoupled_run("rded", &teacher, &dir.path().join("r"), &["--iterations", "2"]).unwrap_err();
    assert!(e.contains("no gradient step"), "{e}");
    let e = decoupled_run("sre2l", &teacher, &dir.path().join("w"), &["--set", "arch.width=16"]).unwrap_err();
    assert!(e.contains("settings"), "{e}");
    let missing = dir.path().join("none.safetensors");
    let e = decoupled_run("sre2l", &missing, &dir.path().join("m"), &[]).unwrap_err();
    assert!(e.contains("cafe-lab teacher --dataset shapes --arch convnetbn"), "{e}");
    assert!(!dir.path().join("m").exists(), "a refused run leaves no folder");
}

#[test]
fn an_interrupted_recovery_resumes_to_the_same_bytes() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher.safetensors");
    tiny_teacher(&teacher);
    let settings = |out: &Path| {
        let t = format!("teacher=\"{}\"", teacher.display());
        run_config(
            &[
                "protocol=sre2l",
                "dataset=shapes",
                "arch=convnetbn",
                "arch.width=8",
                t.as_str(),
                "ipc=1",
                "iterations=4",
                "checkpoint_every=1",
                "eval.nets=1",
                "eval.epochs=1",
                "eval.kd=false",
                "eval.test_limit=50",
            ],
            out,
        )
    };
    let whole = dir.path().join("whole");
    run_condense(&settings(&whole), quiet()).unwrap();
    static STOP: AtomicBool = AtomicBool::new(true);
    let cut = dir.path().join("cut");
    let err = run_condense(
        &settings(&cut),
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
    assert!(
        a == b,
        "the resumed recovery differs (Adam's moments and step count must be checkpointed)"
    );
}

/// `eval.kd_teacher_mode = "train"` (SRe2L's relabel): the teacher labels with each batch's
/// BatchNorm statistics, not its running ones, and its running statistics do not move.
#[test]
fn a_teacher_in_train_mode_labels_with_batch_statistics_and_keeps_its_running_ones() {
    use cafe_framework::train::{BatchLoss, TeacherLoss};
    cafe_plugins::link();
    let arch: Box<dyn Architecture> = find::<dyn Architecture>("convnetbn")
        .unwrap()
        .instantiate(&json!({"width": 8}))
        .unwrap();
    let net = arch
        .build(
            ImageShape::new(1, 16, 16),
            4,
            DType::F32,
            &Device::Cpu,
            &mut rng_from_seed(0),
        )
        .unwrap();
    let x = Tensor::randn(0f32, 1.0, (6, 1, 16, 16), &Device::Cpu)
        .unwrap()
        .affine(3.0, 1.0)
        .unwrap();
    let student = Tensor::zeros((6, 4), DType::F32, &Device::Cpu).unwrap();
    let idx = Tensor::arange(0u32, 6, &Device::Cpu).unwrap();
    let running = |n: &dyn Network| -> Vec<f32> {
        n.batch_norms()
            .iter()
            .flat_map(|b| {
                let s = b.running_stats().unwrap();
                let mut v = s.mean.to_vec1::<f32>().unwrap();
                v.extend(s.var.to_vec1::<f32>().unwrap());
                v
            })
            .collect()
    };
    let before = running(net.as_ref());
    let loss = |mode| {
        TeacherLoss {
            net: net.as_ref(),
            temperature: 4.0,
            mode,
        }
        .loss(&student, &x, &idx)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
    };
    let (train, eval) = (loss(Mode::Train), loss(Mode::Eval));
    assert_ne!(train, eval, "the batch's statistics and the running ones label alike");
    assert_eq!(
        running(net.as_ref()),
        before,
        "labelling moved the teacher's running statistics"
    );
}
