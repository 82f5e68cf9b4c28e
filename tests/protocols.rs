//! Published protocols (issue "Faithful by default"): each protocol file parses, resolves and
//! cites its reference; a matcher means its paper's protocol; the evaluation recipe follows the
//! reference's rules; a synthetic set carries its protocol and re-evaluates exactly as its run
//! did, from Rust and from Python.

use cafe_cli::{resolve_config, Cli, Command as CliCommand};
use cafe_framework::config::EvalMode;
use cafe_framework::config::RunConfig;
use cafe_framework::eval::EvalPlan;
use cafe_framework::protocol::{protocols, ProtocolSource};
use cafe_framework::run::{evaluation_base, resolve};
use cafe_framework::synthetic::SyntheticSet;
use cafe_tests::{cafe_lab_result, python_json, read_json, reevaluate, require_python_modules, tiny_dm_flags};
use candle_core::Device;
use clap::Parser;

/// The configuration the CLI resolves for `args` (condense flags), without running anything.
fn config_of(args: &[&str]) -> RunConfig {
    let cli = Cli::try_parse_from(std::iter::once("cafe-lab").chain(args.iter().copied())).unwrap();
    let a = match cli.command {
        None => cli.condense,
        Some(CliCommand::Condense(a)) => a,
        Some(other) => panic!("not a condense command: {other:?}"),
    };
    resolve_config(&a.common, &a).unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
}

/// (arch, epochs, augment) of every evaluation architecture.
fn recipes(args: &[&str]) -> Vec<(String, usize, String)> {
    EvalPlan::resolve(&config_of(args))
        .unwrap()
        .archs
        .into_iter()
        .map(|a| (a.name, a.recipe.epochs, a.augmentation.name))
        .collect()
}

fn recipe(arch: &str, epochs: usize, augment: &str) -> Vec<(String, usize, String)> {
    vec![(arch.to_string(), epochs, augment.to_string())]
}

#[test]
fn every_protocol_parses_resolves_and_cites_a_reference_line_for_each_setting() {
    cafe_plugins::link();
    let all = protocols().unwrap();
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["cafe", "cafe-dsa", "datm", "dc", "dm", "dsa", "mtt", "rded", "sre2l"]
    );
    // The decoupled protocols need their teacher's file to exist before any work; resolving
    // only checks that it is there (the run reads it).
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher.safetensors");
    std::fs::write(&teacher, b"resolve only checks the file exists").unwrap();
    let teacher = teacher.to_str().unwrap();
    for name in names {
        let config = if matches!(name, "rded" | "sre2l") {
            config_of(&["--protocol", name, "--teacher", teacher])
        } else {
            config_of(&["--protocol", name])
        };
        assert_eq!(config.protocol.as_deref(), Some(name));
        resolve(&config).unwrap_or_else(|e| panic!("protocol {name} does not resolve: {e}"));
    }
    // Every setting line carries, on its line or in the comment block right above it, a
    // reference `file.ext:line` (the whole point of the files).
    let cites = |s: &str| {
        s.split(|c: char| c.is_whitespace() || c == '(' || c == ',').any(|w| {
            (w.contains(".py:") || w.contains(".md:") || w.contains(".sh:") || w.contains(".yaml:"))
                && w.chars().any(|c| c.is_ascii_digit())
        })
    };
    for source in cafe_framework::inventory::iter::<ProtocolSource> {
        let mut comment_cites = false;
        let mut in_settings = false;
        for line in source.text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_settings = t.starts_with("[settings");
                comment_cites = false;
                continue;
            }
            if t.starts_with('#') {
                comment_cites |= cites(t);
                continue;
            }
            if in_settings && t.contains('=') {
                assert!(
                    comment_cites || cites(t),
                    "{}: the setting `{t}` cites no reference file and line",
                    source.file
                );
            }
            if t.is_empty() || !t.starts_with('#') {
                comment_cites = false;
            }
        }
    }
}

#[test]
fn a_matcher_means_its_papers_protocol() {
    let dm = config_of(&["--matcher", "distribution"]);
    assert_eq!(dm.protocol.as_deref(), Some("dm"));
    assert_eq!(dm.augment.name, "dsa", "main_DM.py:28: DM runs with DSA");
    assert_eq!(dm.augment.config["strategy"], "color_crop_cutout_flip_scale_rotate");
    assert_eq!((dm.iterations, dm.lr_img), (Some(20000), Some(1.0)));
    assert_eq!(dm.eval.epochs, Some(1000));
    assert_eq!(dm.eval.mode, Some(EvalMode::SS));
    assert_eq!(
        recipes(&["--matcher", "distribution"]),
        recipe("convnet", 1000, "dsa:color_crop_cutout_flip_scale_rotate")
    );
    assert_eq!(
        config_of(&[]).protocol.as_deref(),
        Some("dm"),
        "the default matcher is DM, so is the protocol"
    );

    let dc = config_of(&["--matcher", "gradient", "--dataset", "fashion-mnist"]);
    assert_eq!(dc.protocol.as_deref(), Some("dc"));
    assert_eq!(dc.scheduler.name, "fixed");
    assert_eq!(dc.augment.name, "none");
    assert_eq!(serde_json::to_value(dc.init).unwrap(), "noise");
    assert_eq!((dc.iterations, dc.batch_real, dc.eval.nets), (Some(1000), 256, 20));

    let cafe = config_of(&["--matcher", "cafe"]);
    assert_eq!(cafe.protocol.as_deref(), Some("cafe"));
    assert_eq!(cafe.scheduler.name, "dynamic");
    assert_eq!(cafe.scheduler.config["probe"], "fresh");
    assert_eq!(cafe.scheduler.config["probe_value"], "reference");
    assert_eq!(cafe.iterations, Some(2000));
    assert_eq!(cafe.lr_img_halve_at, [1200, 1600, 1800]);
    assert_eq!(serde_json::to_value(cafe.init).unwrap(), "noise");
    assert_eq!(recipes(&["--matcher", "cafe"]), recipe("convnet", 600, "none"));
}

#[test]
fn a_named_protocol_selects_a_variant_and_the_users_settings_still_win() {
    let dsa = config_of(&["--protocol", "dsa"]);
    assert_eq!(
        (dsa.matcher.name.as_str(), dsa.scheduler.name.as_str()),
        ("gradient", "fixed")
    );
    assert_eq!(
        serde_json::to_value(dsa.init).unwrap(),
        "real",
        "readme.md:110 --init real"
    );
    assert_eq!(
        recipes(&["--protocol", "dsa"]),
        recipe("convnet", 1000, "dsa:color_crop_cutout_flip_scale_rotate")
    );
    let dsa_noise = config_of(&["--protocol", "dsa", "--init", "noise", "--set", "augment.strategy=crop"]);
    assert_eq!(serde_json::to_value(dsa_noise.init).unwrap(), "noise");
    assert_eq!(dsa_noise.augment.config["strategy"], "crop");

    // A user's plugin replaces the protocol's along with its settings.
    let dm_plain = config_of(&["--matcher", "distribution", "--augment", "none"]);
    assert_eq!(dm_plain.augment.name, "none");
    assert!(dm_plain.augment.config.is_empty());
    assert_eq!(
        recipes(&["--matcher", "distribution", "--augment", "none"]),
        recipe("convnet", 1000, "none"),
        "main_DM.py's 1000 epochs stay"
    );

    let builtin = config_of(&["--protocol", "none", "--matcher", "distribution"]);
    assert_eq!(builtin.protocol.as_deref(), Some("none"));
    assert_eq!(builtin.augment.name, "none");
    assert_eq!(
        builtin.iterations, None,
        "the matcher's own default fills it at resolve"
    );

    let cafe_dsa = config_of(&["--protocol", "cafe-dsa"]);
    assert_eq!(
        (cafe_dsa.matcher.name.as_str(), cafe_dsa.augment.name.as_str()),
        ("cafe", "dsa")
    );
    assert_eq!(recipes(&["--protocol", "cafe-dsa"])[0].1, 1000);

    // MTT whitens CIFAR (readme.md:80, :88), nothing else; the user can turn it off or set eps.
    let zca = |args: &[&str]| config_of(args).zca;
    assert_eq!(zca(&["--protocol", "mtt", "--dataset", "cifar10"]), Some(0.1));
    assert_eq!(zca(&["--matcher", "trajectory", "--dataset", "cifar100"]), Some(0.1));
    assert_eq!(zca(&["--protocol", "mtt", "--dataset", "fashion-mnist"]), None);
    assert_eq!(
        zca(&["--protocol", "mtt", "--dataset", "cifar10", "--set", "zca=false"]),
        None
    );
    assert_eq!(zca(&["--protocol", "dm", "--set", "zca=true"]), Some(0.1));
    assert_eq!(
        zca(&["--protocol", "mtt", "--dataset", "cifar10", "--zca", "0.05"]),
        Some(0.05)
    );
    assert_eq!(zca(&["--protocol", "dc", "--dataset", "cifar10"]), None);

    let cli = Cli::try_parse_from(["cafe-lab", "--protocol", "mtt-someday"]).unwrap();
    let err = resolve_config(&cli.condense.common, &cli.condense).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("mtt-someday") && text.contains("dc, dm, dsa") && text.contains("none"),
        "{text}"
    );
}

#[test]
fn the_evaluation_recipe_follows_the_references_rules() {
    let dc = ["--protocol", "dc", "--dataset"];
    // utils.py:438-439: only MNIST is augmented (crop_scale_rotate, then 1000 epochs).
    assert_eq!(
        recipes(&[&dc[..], &["fashion-mnist"]].concat()),
        recipe("convnet", 300, "none")
    );
    assert_eq!(
        recipes(&[&dc[..], &["mnist"]].concat()),
        recipe("convnet", 1000, "dc:crop_scale_rotate")
    );
    assert_eq!(
        recipes(&[&dc[..], &["cifar10"]].concat()),
        recipe("convnet", 300, "none")
    );
    // utils.py:441-442: crop_noise for ConvNetBN, and for no other BatchNorm network.
    assert_eq!(
        recipes(
            &[
                &dc[..],
                &["fashion-mnist", "--eval-archs", "convnetbn,alexnetbn,resnet18bn"]
            ]
            .concat()
        ),
        vec![
            ("convnetbn".to_string(), 1000, "dc:crop_noise".to_string()),
            ("alexnetbn".to_string(), 300, "none".to_string()),
            ("resnet18bn".to_string(), 300, "none".to_string()),
        ]
    );
    assert_eq!(
        recipes(&[&dc[..], &["mnist", "--eval-archs", "convnetbn"]].concat()),
        recipe("convnetbn", 1000, "dc:crop_noise"),
        "ConvNetBN's rule comes after MNIST's in get_daparam"
    );
    // CAFE: 600 without augmentation, 1000 with it (distill.py:189-193).
    assert_eq!(
        recipes(&["--protocol", "cafe", "--dataset", "mnist"]),
        recipe("convnet", 1000, "dc:crop_scale_rotate")
    );
    // Flags win over the rule.
    assert_eq!(
        recipes(&[&dc[..], &["mnist", "--eval-augment", "none", "--eval-epochs", "50"]].concat()),
        recipe("convnet", 50, "none")
    );
    // utils.py:463-466: mode S evaluates a BatchNorm model as its instance-norm twin; SS as is.
    assert_eq!(EvalMode::S.archs("convnetbn"), ["convnet"]);
    assert_eq!(EvalMode::S.archs("resnet18bn_ap"), ["resnet18"]);
    assert_eq!(EvalMode::S.archs("convnet"), ["convnet"]);
    assert_eq!(EvalMode::SS.archs("convnetbn"), ["convnetbn"]);
    assert_eq!(
        recipes(&["--protocol", "dc", "--arch", "convnetbn", "--dataset", "fashion-mnist"]),
        recipe("convnet", 300, "none")
    );
}

/// Tiny DM settings on the embedded set, two evaluation networks of 3 epochs, seed 5: a run
/// in seconds.
fn tiny() -> Vec<&'static str> {
    tiny_dm_flags("2", "3", &["--seed", "5"])
}

#[test]
fn a_synthetic_set_carries_its_protocol_and_reevaluates_exactly_as_its_run_did() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = tiny();
    args.extend(["--out", run.to_str().unwrap()]);
    cafe_lab_result(&args).unwrap();
    let set = run.join("synthetic.safetensors");
    let syn = SyntheticSet::load(&set, &Device::Cpu).unwrap();
    let m = &syn.metadata;
    for (key, value) in [
        ("format", "cafe-lab synthetic set 1"),
        ("protocol", "dm"),
        ("dataset", "shapes"),
        ("ipc", "2"),
        ("matcher", "distribution"),
        ("scheduler", "none"),
        ("augment", "dsa"),
        ("augment_strategy", "color_crop_cutout_flip_scale_rotate"),
        ("eval_archs", "convnet"),
        ("eval_epochs", "3"),
        ("eval_augment", "dsa:color_crop_cutout_flip_scale_rotate"),
        ("eval_lr", "0.01"),
        ("eval_batch", "256"),
        ("cafe_lab_version", env!("CARGO_PKG_VERSION")),
    ] {
        assert_eq!(m.get(key).map(String::as_str), Some(value), "metadata {key}: {m:?}");
    }
    let saved: serde_json::Value = serde_json::from_str(&m["config"]).unwrap();
    assert_eq!(saved["seed"], 5);
    assert!(saved.get("out").is_none(), "where the run wrote is not part of the set");

    // No flag at all: the same dataset, evaluation and seeds, so the same accuracies.
    let again = dir.path().join("again");
    assert_eq!(
        reevaluate(&set, &again),
        read_json(&run.join("results.json"))["evaluations"],
        "re-evaluation must reproduce the run"
    );
    assert_eq!(read_json(&again.join("results.json"))["dataset"], "shapes");

    // Flags still override the saved recipe.
    let other = dir.path().join("other");
    cafe_lab_result(&[
        "evaluate",
        "--synthetic",
        set.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--eval-epochs",
        "1",
        "--eval-augment",
        "none",
        "--no-baseline",
        "-q",
    ])
    .unwrap();
    let r = read_json(&other.join("results.json"));
    assert_eq!(r["evaluations"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            r["evaluations"][0]["epochs"].as_u64(),
            r["evaluations"][0]["augment"].as_str()
        ),
        (Some(1), Some("none"))
    );

    // Without --out, the results go beside the set.
    cafe_lab_result(&["evaluate", "--synthetic", set.to_str().unwrap(), "--no-baseline", "-q"]).unwrap();
    assert!(run.join("evaluate-seed5").join("results.json").is_file());

    // One seed, one file: the metadata's order does not change the bytes.
    let twin = dir.path().join("twin");
    let mut args = tiny();
    args.extend(["--out", twin.to_str().unwrap()]);
    cafe_lab_result(&args).unwrap();
    assert!(std::fs::read(&set).unwrap() == std::fs::read(twin.join("synthetic.safetensors")).unwrap());
}

#[test]
fn a_set_without_metadata_still_evaluates_with_a_note_of_what_was_assumed() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = tiny();
    args.extend(["--out", run.to_str().unwrap(), "--no-baseline"]);
    cafe_lab_result(&args).unwrap();
    let mut syn = SyntheticSet::load(&run.join("synthetic.safetensors"), &Device::Cpu).unwrap();
    syn.metadata.clear();
    let bare = dir.path().join("bare.safetensors");
    syn.save(&bare).unwrap();

    let (_, note) = evaluation_base(&bare).unwrap();
    let note = note.expect("a note for a file without metadata");
    assert!(
        note.contains("bare.safetensors") && note.contains("no cafe-lab metadata"),
        "{note}"
    );
    let (_, none) = evaluation_base(&run.join("synthetic.safetensors")).unwrap();
    assert!(none.is_none());

    let out = dir.path().join("ev");
    cafe_lab_result(&[
        "evaluate",
        "--synthetic",
        bare.to_str().unwrap(),
        "--dataset",
        "shapes",
        "--set",
        "arch.width=8",
        "--eval-nets",
        "1",
        "--eval-epochs",
        "1",
        "--test-limit",
        "50",
        "--no-baseline",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ])
    .unwrap();
    let config = read_json(&out.join("config.json"));
    assert_eq!(
        config["protocol"], "dm",
        "the defaults (and their protocol) were assumed"
    );

    // A missing file is refused before any dataset is looked for.
    let err = cafe_lab_result(&[
        "evaluate",
        "--synthetic",
        dir.path().join("missing.safetensors").to_str().unwrap(),
        "--dataset",
        "cifar10",
        "--data-dir",
        dir.path().join("no-data").to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(err.contains("missing.safetensors") && !err.contains("cifar"), "{err}");
}

#[test]
fn the_metadata_reads_back_from_pythons_safetensors() {
    if !require_python_modules(&["safetensors", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = tiny();
    args.extend(["--out", run.to_str().unwrap(), "--no-baseline"]);
    cafe_lab_result(&args).unwrap();
    let script = "import sys, json\nfrom safetensors import safe_open\n\
                  with safe_open(sys.argv[1], framework='numpy') as f:\n    \
                  m = f.metadata(); x = f.get_tensor('images')\n\
                  print(json.dumps({'meta': m, 'shape': list(x.shape)}))";
    let read = python_json(script, &run.join("synthetic.safetensors"));
    assert_eq!(read["shape"], serde_json::json!([20, 3, 16, 16]));
    assert_eq!(read["meta"]["protocol"], "dm");
    assert_eq!(read["meta"]["eval_epochs"], "3");
    let config: serde_json::Value = serde_json::from_str(read["meta"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["dataset"], "shapes");
}

/// Counts its calls and changes nothing: one call per training batch.
struct CountingAugmenter(std::sync::atomic::AtomicUsize);

impl cafe_framework::Augmenter for CountingAugmenter {
    fn augment(
        &self,
        x: &candle_core::Tensor,
        _seed: u64,
        _siamese: bool,
    ) -> cafe_framework::Result<candle_core::Tensor> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(x.clone())
    }
    fn is_differentiable(&self) -> bool {
        false
    }
}

#[test]
fn evaluation_trains_epochs_plus_one_as_the_reference_loop_does() {
    // DatasetCondensation utils.py:351 `for ep in range(Epoch+1)`: E + 1 epochs; here one batch
    // per epoch (20 images, batch 256), so the augmenter runs E + 1 times per network.
    use cafe_framework::eval::{
        evaluate_set, ArchPlan, Augmentation, EvalJob, OptimizerKind, Report, Schedule, TrainRecipe, TrainingSet,
    };
    use cafe_framework::synthetic::class_major_labels;
    use std::sync::Arc;
    let ds = cafe_tests::blob_dataset(10, 4, cafe_framework::ImageShape::new(1, 8, 8), 1);
    let arch = cafe_framework::registry::find::<dyn cafe_framework::Architecture>("convnet")
        .unwrap()
        .instantiate(&serde_json::json!({"width": 4, "depth": 1}))
        .unwrap();
    let counter = Arc::new(CountingAugmenter(Default::default()));
    let images = ds
        .train
        .to_tensor(&(0..20).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
        .0;
    let labels = class_major_labels(10, 2, &Device::Cpu).unwrap();
    let plan = ArchPlan {
        name: "convnet".into(),
        arch: Arc::from(arch),
        augmentation: Augmentation {
            augmenter: counter.clone(),
            name: "counting".into(),
        },
        recipe: TrainRecipe {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch: 256,
            epochs: 6,
            nets: 2,
            parallel: 1,
            schedule: Schedule::ReferenceStep,
            optimizer: OptimizerKind::Sgd,
            report: Report::Final,
        },
    };
    let job = EvalJob {
        arch: &plan,
        classes: 10,
        shape: ds.train.shape,
        test: &ds.test,
        test_limit: None,
        device: &Device::Cpu,
        seed: 0,
        on_network: None,
        comm: &cafe_framework::dist::Solo,
        interrupt: None,
    };
    let ev = evaluate_set(&job, &TrainingSet::labelled("s", &images, &labels)).unwrap();
    assert_eq!(ev.epochs, 6);
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::Relaxed),
        2 * 7,
        "2 networks x (6 + 1) epochs"
    );
}

#[test]
fn the_datm_protocol_resolves_its_configs_per_ipc() {
    let of = |ipc: &str| config_of(&["--protocol", "datm", "--dataset", "cifar10", "--ipc", ipc]);
    // configs/CIFAR-10/ConvIN/IPC1.yaml: lr_y 5, threshold 1.1, no window, max start 4, lr_img 100.
    let one = of("1");
    let m = &one.matcher.config;
    assert_eq!(
        (m["lr_labels"].as_f64(), m["threshold"].as_f64()),
        (Some(5.0), Some(1.1))
    );
    assert_eq!(
        (m["max_start_epoch"].as_u64(), m["sequential_generation"].as_bool()),
        (Some(4), Some(false))
    );
    assert_eq!(
        (m["pix_init"].as_str(), m["soft_labels"].as_bool()),
        (Some("samples_predicted_correctly"), Some(true))
    );
    assert_eq!(
        (one.lr_img, one.iterations, one.zca),
        (Some(100.0), Some(10000), Some(0.1))
    );
    // configs/CIFAR-10/ConvIN/IPC10.yaml: the window grows from 10 to 20 by iteration 1000.
    let ten = of("10");
    let m = &ten.matcher.config;
    assert_eq!(
        (
            m["current_max_start_epoch"].as_u64(),
            m["max_start_epoch"].as_u64(),
            m["expansion_end_epoch"].as_u64()
        ),
        (Some(10), Some(20), Some(1000))
    );
    assert_eq!(
        (m["sequential_generation"].as_bool(), m["lr_labels"].as_f64()),
        (Some(true), Some(2.0))
    );
    // configs/CIFAR-100/ConvIN/IPC50.yaml: the one config that initialises from random real images.
    let c = config_of(&["--protocol", "datm", "--dataset", "cifar100", "--ipc", "50"]);
    assert_eq!(c.matcher.config["pix_init"], "run");
    assert_eq!(c.matcher.config["min_start_epoch"], 20);
}
