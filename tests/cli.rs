//! The CLI end to end on the embedded `shapes` dataset at tiny settings: outputs and their
//! formats, reproducibility, configuration layering, and clear errors for bad input.

use std::path::Path;

use cafe_framework::synthetic::SyntheticSet;
use cafe_tests::{cafe_lab, cafe_lab_result, read_json, tiny_dm_flags};
use candle_core::Device;

fn condense(out: &Path, extra: &[&str]) -> Result<(), String> {
    let out = out.to_str().unwrap();
    // Tiny condensation settings: seconds, not minutes.
    let mut args = tiny_dm_flags("1", "2", &[]);
    args.extend(["--out", out]);
    args.extend(extra);
    cafe_lab_result(&args)
}

#[test]
fn condense_writes_config_results_set_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    condense(&out, &["--seed", "4"]).unwrap();

    let config = read_json(&out.join("config.json"));
    assert_eq!(config["seed"], 4);
    assert_eq!(config["ipc"], 2);
    assert_eq!(config["matcher"]["name"], "distribution");
    assert_eq!(config["arch"]["width"], 8, "plugin configs are saved resolved");
    assert_eq!(config["iterations"], 3);
    assert_eq!(config["lr_img"], 1.0, "DM's default image learning rate is filled in");
    assert_eq!(config["init"], "real", "DM's default init is filled in");

    let results = read_json(&out.join("results.json"));
    let evals = results["evaluations"].as_array().unwrap();
    let sets: Vec<&str> = evals.iter().map(|e| e["set"].as_str().unwrap()).collect();
    assert_eq!(sets, ["synthetic", "random"]);
    for e in evals {
        assert_eq!(e["arch"], "convnet");
        let accs = e["accuracies"].as_array().unwrap();
        assert_eq!(accs.len(), 1);
        let a = accs[0].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "accuracy is a fraction: {a}");
        assert_eq!(e["mean"].as_f64().unwrap(), a);
        assert_eq!(e["std"].as_f64().unwrap(), 0.0);
        assert_eq!(e["test_images"], 100);
    }
    let cond = &results["condensation"];
    assert!(cond["seconds_per_iteration_median"].as_f64().unwrap() > 0.0);
    assert_eq!(cond["iterations"], 3);
    assert_eq!(
        cond["outer_steps_total"], 3,
        "the none scheduler takes one outer step per iteration"
    );
    assert_eq!(cond["inner_epochs_total"], 0);

    let syn = SyntheticSet::load(&out.join("synthetic.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(syn.images.dims(), &[20, 3, 16, 16]);
    assert_eq!(syn.ipc, 2);
    assert_eq!(syn.classes, 10);
    assert_eq!(syn.labels.to_vec1::<u32>().unwrap()[..4], [0, 0, 1, 1]);
    assert_eq!(syn.mean.len(), 3);

    let png = image::open(out.join("synthetic.png")).expect("synthetic.png decodes");
    // 10 rows (classes) of 2 images each, with gaps, scaled up: taller than wide.
    assert!(png.height() > png.width(), "{}x{}", png.width(), png.height());
    assert!(out.join("tensorboard").is_dir());
}

#[test]
fn one_seed_gives_a_byte_identical_synthetic_set() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    condense(&a, &["--seed", "9", "--init", "noise"]).unwrap();
    condense(&b, &["--seed", "9", "--init", "noise"]).unwrap();
    condense(&c, &["--seed", "10", "--init", "noise"]).unwrap();
    let read = |p: &Path| std::fs::read(p.join("synthetic.safetensors")).unwrap();
    assert!(read(&a) == read(&b), "same seed, different bytes");
    assert!(read(&a) != read(&c), "different seeds, same bytes");
    let ra = read_json(&a.join("results.json"));
    let rb = read_json(&b.join("results.json"));
    assert_eq!(ra["evaluations"], rb["evaluations"], "evaluation repeats too");
}

#[test]
fn a_non_empty_output_directory_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "precious").unwrap();
    let err = condense(dir.path(), &[]).unwrap_err();
    assert!(err.contains("not empty") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "precious"
    );
    condense(dir.path(), &["--force"]).unwrap();
}

#[test]
fn unknown_plugin_names_are_answered_with_the_valid_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = condense(&dir.path().join("x"), &["--matcher", "gradint"]).unwrap_err();
    assert!(
        err.contains("unknown matcher 'gradint'") && err.contains("distribution"),
        "{err}"
    );
    let err = condense(&dir.path().join("y"), &["--arch", "convnet9"]).unwrap_err();
    assert!(
        err.contains("unknown architecture") && err.contains("convnetbn"),
        "{err}"
    );
    let err = condense(&dir.path().join("z"), &["--dataset", "imagenet"]).unwrap_err();
    assert!(err.contains("imagenet") && err.contains("fashion-mnist"), "{err}");
}

#[test]
fn impossible_settings_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let err = condense(&out, &["--ipc", "0"]).unwrap_err();
    assert!(err.contains("ipc") && err.contains("at least 1"), "{err}");
    let err = condense(&out, &["--ipc", "501"]).unwrap_err();
    assert!(err.contains("ipc") && err.contains("500"), "{err}");
    let err = condense(&out, &["--lr-img", "-1"]).unwrap_err();
    assert!(err.contains("lr_img") && err.contains("positive"), "{err}");
    let err = condense(&out, &["--set", "matcher.nonsense=3"]).unwrap_err();
    assert!(err.contains("nonsense"), "{err}");
    // An untrained network is no evaluation (issue 13, item 8).
    let err = condense(&dir.path().join("e"), &["--eval-epochs", "0"]).unwrap_err();
    assert!(
        err.contains("eval.epochs = 0") && err.contains("at least 1 epoch"),
        "{err}"
    );
}

#[test]
fn an_io_error_states_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let once = |err: &str, cause: &str| {
        assert_eq!(err.matches(cause).count(), 1, "'{cause}' not exactly once in: {err}");
    };
    let missing = dir.path().join("nonexistent.toml");
    let err = condense(&dir.path().join("a"), &["--config", missing.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("reading config file") && err.contains("nonexistent.toml"),
        "{err}"
    );
    once(&err, "(os error 2)");

    let err = cafe_lab_result(&[
        "evaluate",
        "--synthetic",
        dir.path().join("nonexistent.safetensors").to_str().unwrap(),
        "--out",
        dir.path().join("b").to_str().unwrap(),
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("nonexistent.safetensors"), "{err}");
    once(&err, "(os error 2)");

    // An output folder below a plain file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let err = condense(&file.join("run"), &[]).unwrap_err();
    assert!(err.contains("creating output directory"), "{err}");
    once(&err, "(os error 20)");
}

#[test]
fn a_setting_of_the_wrong_type_is_named_with_the_layer_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("run.toml");
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    // Without the tiny flags of `condense`, which would override the file's values.
    let file_err = |text: &str| {
        std::fs::write(&toml, text).unwrap();
        cafe_lab_result(&["--config", toml.to_str().unwrap(), "--out", out, "--quiet"]).unwrap_err()
    };
    let err = file_err("ipc = \"ten\"\n");
    assert!(err.contains("invalid setting ipc = \"ten\""), "{err}");
    assert!(err.contains("expected usize"), "{err}");
    assert!(err.contains(&format!("set by --config {}", toml.display())), "{err}");
    assert!(!err.contains("merged settings"), "{err}");

    let err = file_err("[eval]\nepochs = \"many\"\n");
    assert!(err.contains("invalid setting eval.epochs = \"many\""), "{err}");
    assert!(err.contains("run.toml"), "{err}");
    let err = file_err("lr_img_halve_at = [10, \"x\"]\n");
    assert!(err.contains("lr_img_halve_at[1]"), "{err}");
    let err = file_err("[eval]\nepoch = 3\n");
    assert!(err.contains("eval.epoch") && err.contains("`epochs`"), "{err}");

    // The file's bad value, overridden by --set, is no error; a bad --set is named as such.
    std::fs::write(&toml, "ipc = \"ten\"\n").unwrap();
    let mut b = cafe_framework::config::ConfigBuilder::default();
    b.merge_toml_file(&toml).unwrap();
    b.set("ipc=3").unwrap();
    assert_eq!(b.build().unwrap().ipc, 3);
    let err = condense(Path::new(out), &["--set", "eval.epochs=ten"]).unwrap_err();
    assert!(err.contains("invalid setting eval.epochs = \"ten\""), "{err}");
    assert!(err.contains("set by --set eval.epochs=ten"), "{err}");
}

#[test]
fn a_missing_dataset_says_where_it_looked_and_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let err = cafe_lab_result(&[
        "baseline",
        "--dataset",
        "cifar10",
        "--data-dir",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
        "--quiet",
    ])
    .unwrap_err();
    assert!(err.contains("no-such-dir"), "names the place it looked: {err}");
    assert!(err.contains("--download"), "says how to get the data: {err}");
}

#[test]
fn toml_config_then_flags_then_set_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("run.toml");
    std::fs::write(
        &toml,
        "ipc = 3\nseed = 77\n[eval]\nnets = 1\n[arch]\nname = \"convnet\"\nwidth = 4\n",
    )
    .unwrap();
    let out = dir.path().join("o");
    condense(&out, &["--config", toml.to_str().unwrap(), "--set", "ipc=1"]).unwrap();
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["seed"], 77, "from the file");
    assert_eq!(config["ipc"], 1, "--set beats the file and the --ipc flag");
    assert_eq!(
        config["arch"]["width"], 8,
        "--set arch.width=8 from the tiny flags beats the file"
    );
}

#[test]
fn evaluate_and_baseline_commands_write_results() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    condense(&run, &["--no-baseline"]).unwrap();
    let results = read_json(&run.join("results.json"));
    assert_eq!(
        results["evaluations"].as_array().unwrap().len(),
        1,
        "--no-baseline skips the random set"
    );

    let syn = run.join("synthetic.safetensors");
    let ev = dir.path().join("ev");
    let common = [
        "--dataset",
        "shapes",
        "--eval-nets",
        "2",
        "--eval-epochs",
        "1",
        "--test-limit",
        "50",
        "--set",
        "arch.width=8",
        "--quiet",
        "--no-baseline",
    ];
    let mut args = vec![
        "evaluate",
        "--synthetic",
        syn.to_str().unwrap(),
        "--out",
        ev.to_str().unwrap(),
    ];
    args.extend(common);
    cafe_lab_result(&args).unwrap();
    let r = read_json(&ev.join("results.json"));
    assert_eq!(r["evaluations"][0]["accuracies"].as_array().unwrap().len(), 2);
    assert_eq!(r["ipc"], 2);

    let bl = dir.path().join("bl");
    let mut args = vec!["baseline", "--ipc", "3", "--out", bl.to_str().unwrap()];
    args.extend(common);
    cafe_lab_result(&args).unwrap();
    let r = read_json(&bl.join("results.json"));
    assert_eq!(r["evaluations"][0]["set"], "random");
    assert_eq!(r["evaluations"][0]["train_images"], 30);

    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let e2 = dir.path().join("e2");
    let mut args = vec![
        "evaluate",
        "--synthetic",
        bad.to_str().unwrap(),
        "--out",
        e2.to_str().unwrap(),
    ];
    args.extend(common);
    let err = cafe_lab_result(&args).unwrap_err();
    assert!(
        err.contains("bad.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );
}

#[test]
fn networks_trained_side_by_side_give_the_sequential_accuracies() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    condense(&run, &["--no-baseline"]).unwrap();
    let syn = run.join("synthetic.safetensors");
    let accuracies = |parallel: usize| {
        let out = dir.path().join(format!("parallel{parallel}"));
        let set = format!("eval.parallel={parallel}");
        cafe_lab_result(&[
            "evaluate",
            "--synthetic",
            syn.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--dataset",
            "shapes",
            "--eval-nets",
            "3",
            "--eval-epochs",
            "3",
            "--eval-augment",
            "dsa",
            "--test-limit",
            "200",
            "--set",
            "arch.width=8",
            "--set",
            &set,
            "--quiet",
            "--no-baseline",
        ])
        .unwrap();
        read_json(&out.join("results.json"))["evaluations"][0]["accuracies"].clone()
    };
    let sequential = accuracies(1);
    assert_eq!(sequential.as_array().unwrap().len(), 3);
    assert_eq!(
        accuracies(3),
        sequential,
        "parallel training must not change any network"
    );
}

#[test]
fn list_and_help_succeed() {
    assert_eq!(cafe_lab(&["list"]), 0);
    assert_eq!(cafe_lab(&["--help"]), 0);
    assert_ne!(cafe_lab(&["--no-such-flag"]), 0);
}
