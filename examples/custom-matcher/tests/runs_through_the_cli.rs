//! The example's binary lists its own matcher beside the built-in ones and condenses with it.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custom-matcher"))
}

#[test]
fn the_external_matcher_is_listed_beside_the_built_in_ones() {
    let out = bin().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("moments"), "{text}");
    assert!(text.contains("distribution") && text.contains("gradient"), "{text}");
}

#[test]
fn the_external_matcher_condenses_through_the_whole_cli() {
    let dir = tempfile::tempdir().unwrap();
    let status = bin()
        .args([
            "--matcher",
            "moments",
            "--set",
            "matcher.variance_weight=0.5",
            "--ipc",
            "2",
            "--iterations",
            "3",
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
            "--quiet",
            "--out",
        ])
        .arg(dir.path().join("run"))
        .status()
        .unwrap();
    assert!(status.success());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/config.json")).unwrap()).unwrap();
    assert_eq!(config["matcher"]["name"], "moments");
    assert_eq!(config["matcher"]["variance_weight"], 0.5);
    assert!(dir.path().join("run/synthetic.safetensors").exists());
}
