//! The `cafe-lab` binary as a person meets it: progress output, Ctrl-C (SIGINT) writing a
//! checkpoint that `--resume` continues (exit status 130), refusals of bad settings before any
//! work, and the notes on settings accepted although they do not do what they seem to say.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cafe_lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cafe-lab"))
}

const TINY: &[&str] = &[
    "--ipc",
    "2",
    "--batch-real",
    "8",
    "--eval-nets",
    "1",
    "--eval-epochs",
    "2",
    "--test-limit",
    "50",
    "--set",
    "arch.width=8",
];

#[test]
fn progress_goes_to_stderr_as_plain_lines_off_a_terminal_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = cafe_lab()
        .args(TINY)
        .args(["--iterations", "3", "--out"])
        .arg(dir.path().join("a"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("condense 1/3") && err.contains("condense 3/3"), "{err}");
    assert!(err.contains("eval synthetic on convnet 1/1"), "{err}");
    assert!(!err.contains('\r'), "no bar redraws in a log: {err}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| convnet |"),
        "the result table goes to stdout: {table}"
    );

    let out = cafe_lab()
        .args(TINY)
        .args(["--iterations", "2", "--quiet", "--out"])
        .arg(dir.path().join("b"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let child = cafe_lab()
        .args(TINY)
        .args(["--iterations", "100000", "--checkpoint-every", "0", "--out"])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until condensation is under way (the config is written first), then interrupt.
    let start = Instant::now();
    while !run.join("config.json").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(130),
        "an interrupted run exits with 128 + SIGINT, as shells expect: {err}"
    );
    assert!(
        err.contains("interrupted before iteration") && err.contains("--resume"),
        "{err}"
    );
    assert!(run.join("checkpoint.safetensors").exists(), "{err}");
    assert!(!run.join("results.json").exists());

    // Resume with fewer remaining iterations would change the config: resume reads it from the
    // run directory, so shorten it there to keep the test quick.
    let config_path = run.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let ck_next = next_iteration(&run);
    config["iterations"] = serde_json::json!(ck_next + 2);
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    let out = cafe_lab().args(["--quiet", "--resume"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["condensation"]["iterations"], ck_next + 2);
}

fn next_iteration(run: &Path) -> usize {
    let ck =
        cafe_framework::checkpoint::Checkpoint::load(&run.join("checkpoint.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(ck.state.next_iteration >= 1);
    ck.state.next_iteration
}

#[test]
fn bad_plugin_settings_are_refused_naming_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--matcher", "gradient", "--set", "matcher.dis_metric=euclid"],
            &["euclid", "ours", "mse", "cos"],
        ),
        (
            &["--augment", "dsa", "--set", "augment.strategy=color_blur"],
            &["blur", "color", "rotate"],
        ),
        (
            &["--scheduler", "dynamic", "--set", "scheduler.lambda_2=1.5"],
            &["lambda_2", "[0, 1]"],
        ),
        (&["--eval-mode", "Q"], &["eval.mode", "M (MLP"]),
        (&["--eval-augment", "dc", "--augment", "dc"], &["differentiable"]),
    ];
    for (i, (args, phrases)) in cases.iter().enumerate() {
        let started = Instant::now();
        let out = cafe_lab()
            .args(TINY)
            .args(["--iterations", "1"])
            .args(*args)
            .arg("--out")
            .arg(dir.path().join(i.to_string()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        for p in *phrases {
            assert!(err.contains(p), "{args:?}: '{p}' not in: {err}");
        }
        assert!(!dir.path().join(i.to_string()).join("synthetic.safetensors").exists());
        assert!(started.elapsed() < Duration::from_secs(20), "refused before any work");
    }
}

#[test]
fn a_typo_in_cafe_conv_is_refused_naming_the_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let out = cafe_lab()
        .env("CAFE_CONV", "winogrd")
        .args(TINY)
        .args(["--iterations", "1", "--out"])
        .arg(dir.path().join("a"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "CAFE_CONV=winogrd was accepted");
    assert!(
        err.contains("CAFE_CONV") && err.contains("auto, winograd, im2col"),
        "{err}"
    );
    assert!(!dir.path().join("a").join("synthetic.safetensors").exists());
}

#[test]
fn a_batch_real_above_the_class_size_is_clamped_with_a_note_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = cafe_lab()
        .args(TINY)
        .args(["--iterations", "1", "--batch-real", "100000", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // shapes holds 500 training images in each class.
    let note = "batch_real 100000 is more than the 500 images of each class";
    assert_eq!(err.matches(note).count(), 1, "said once: {err}");
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(name)).unwrap()).unwrap()
    };
    assert_eq!(
        json("config.json")["batch_real"],
        500,
        "the value in effect is recorded"
    );
    assert!(json("results.json")["notes"][0].as_str().unwrap().contains(note));
}

#[test]
fn zero_iterations_evaluate_the_initialisation_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = cafe_lab()
        .args(TINY)
        .args(["--iterations", "0", "--no-baseline", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("note: 0 iterations: nothing is condensed"), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Note: 0 iterations"), "the table says it too: {table}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert!(
        results["notes"][0]
            .as_str()
            .unwrap()
            .contains("initialisation (random real images)"),
        "{results}"
    );
    assert_eq!(results["condensation"]["iterations"], 0);
}

#[test]
fn a_binary_without_mpi_refuses_to_be_one_of_several_ranks() {
    // What mpirun puts in the environment of each of 2 ranks: without the `mpi` feature, each
    // would run the whole command into the same folder.
    if cfg!(feature = "mpi") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = cafe_lab()
        .args(TINY)
        .args(["--iterations", "1", "--out"])
        .arg(dir.path().join("x"))
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no MPI support") && err.contains("--features mpi"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists(), "a refused rank wrote output");
}
