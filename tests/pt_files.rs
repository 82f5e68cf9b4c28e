//! `cafe-lab evaluate --synthetic FILE.pt` on files that PyTorch itself writes, in each layout
//! the method repositories hand out (mtt-distillation / DATM, NCFM, DatasetCondensation): a
//! set cafe-lab condensed is saved by `torch.save` in every layout, and each file evaluated
//! under the same protocol must give the numbers of the run that made the set. Needs the venv
//! of `scripts/python/setup.sh` (PyTorch); without it the test says so and passes, except
//! under CI.

use std::path::Path;
use std::process::Command;

use cafe_tests::{cafe_lab_result, python_venv, read_json, tiny_dm_flags};
use serde_json::Value;

/// Writes the set in `argv[1]` (synthetic.safetensors) into folder `argv[2]` in every layout.
const WRITE_LAYOUTS: &str = r#"
import sys, os, numpy as np, torch
from safetensors.numpy import load_file
d = load_file(sys.argv[1]); out = sys.argv[2]
x = torch.from_numpy(d["images"]); y = torch.from_numpy(d["labels"].astype(np.int64))
mean = torch.from_numpy(d["mean"]).view(1, -1, 1, 1); std = torch.from_numpy(d["std"]).view(1, -1, 1, 1)
# mtt-distillation distill.py:242-243
os.makedirs(f"{out}/mtt"); torch.save(x, f"{out}/mtt/images_best.pt"); torch.save(y, f"{out}/mtt/labels_best.pt")
# DATM distill/DATM.py:402-404: learned soft-label logits (a leaf that required grad) and lr
os.makedirs(f"{out}/datm")
logits = (torch.nn.functional.one_hot(y, 10).float() * 5).requires_grad_(True)
torch.save(x, f"{out}/datm/images_best.pt"); torch.save(logits, f"{out}/datm/labels_best.pt")
torch.save(torch.tensor(0.02), f"{out}/datm/lr_best.pt")
# NCFM utils/ddp.py:99: raw pixels, rows as the ranks gathered them (here shuffled)
perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
torch.save([x[perm] * std + mean, y[perm]], f"{out}/data_20.pt")
# DatasetCondensation main.py:225: one [images, labels] pair per experiment, numpy accuracies
torch.save({"data": [[x, y], [x * 0, y]], "accs_all_exps": {"ConvNet": [np.float64(0.5), np.float64(0.25)]}},
           f"{out}/res_DM_shapes_ConvNet_2ipc.pt")
# images of another dataset's size
torch.save(torch.zeros(20, 3, 32, 32), f"{out}/images_big.pt")
"#;

fn synthetic(results: &Value) -> Vec<Value> {
    results["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["set"] == "synthetic")
        .map(|e| e["accuracies"].clone())
        .collect()
}

fn notes(results: &Value) -> String {
    results["notes"].to_string()
}

/// `evaluate --synthetic file` with the tiny run's evaluation settings and `extra`.
fn evaluate(file: &Path, out: &Path, extra: &[&str]) -> Result<Value, String> {
    let mut args = vec![
        "evaluate",
        "--synthetic",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    args.extend([
        "--eval-nets",
        "1",
        "--eval-epochs",
        "30",
        "--test-limit",
        "100",
        "--set",
        "arch.width=8",
        "--quiet",
    ]);
    cafe_lab_result(&args)?;
    Ok(read_json(&out.join("results.json")))
}

#[test]
fn pt_files_written_by_pytorch_evaluate_as_the_run_that_made_the_set() {
    let Some(python) = python_venv(&["torch", "safetensors", "numpy"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut flags: Vec<&str> = tiny_dm_flags("1", "30", &[]);
    flags.extend(["--out", run.to_str().unwrap()]);
    cafe_lab_result(&flags).unwrap();
    let made = read_json(&run.join("results.json"));
    let status = Command::new(&python)
        .args(["-c", WRITE_LAYOUTS])
        .arg(run.join("synthetic.safetensors"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let shapes = ["--dataset", "shapes"];

    // mtt-distillation: labels found beside the images, the same numbers.
    let mtt = evaluate(
        &dir.path().join("mtt/images_best.pt"),
        &dir.path().join("e-mtt"),
        &shapes,
    )
    .unwrap();
    assert_eq!(synthetic(&mtt), synthetic(&made));
    assert!(
        notes(&mtt).contains("one image tensor") && notes(&mtt).contains("labels_best.pt"),
        "{}",
        notes(&mtt)
    );
    assert!(notes(&mtt).contains("no learned step size"), "{}", notes(&mtt));

    // DatasetCondensation: experiment 0 by default, the same numbers; another on request.
    let res = dir.path().join("res_DM_shapes_ConvNet_2ipc.pt");
    let dc = evaluate(&res, &dir.path().join("e-dc"), &shapes).unwrap();
    assert_eq!(synthetic(&dc), synthetic(&made));
    assert!(notes(&dc).contains("2 experiments"), "{}", notes(&dc));
    let dc1 = evaluate(
        &res,
        &dir.path().join("e-dc1"),
        &["--dataset", "shapes", "--experiment", "1"],
    )
    .unwrap();
    assert!(!notes(&dc1).contains("2 experiments"), "{}", notes(&dc1));
    let e = evaluate(
        &res,
        &dir.path().join("e-dc2"),
        &["--dataset", "shapes", "--experiment", "2"],
    )
    .unwrap_err();
    assert!(e.contains("holds 2 experiments"), "{e}");

    // NCFM: raw pixels, rows put back in class order.
    let ncfm = evaluate(&dir.path().join("data_20.pt"), &dir.path().join("e-ncfm"), &shapes).unwrap();
    assert!(
        notes(&ncfm).contains("raw pixels") && notes(&ncfm).contains("class order"),
        "{}",
        notes(&ncfm)
    );
    assert_eq!(ncfm["storage"]["images_bytes"], made["storage"]["images_bytes"]);

    // DATM: soft labels and the learned step size read from the files beside the images.
    let datm = evaluate(
        &dir.path().join("datm/images_best.pt"),
        &dir.path().join("e-datm"),
        &shapes,
    )
    .unwrap();
    let ev = datm["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["set"] == "synthetic")
        .unwrap();
    assert_eq!(ev["soft_labels"], true);
    assert!((ev["lr"].as_f64().unwrap() - 0.02).abs() < 1e-6, "{ev}");
    assert!(
        notes(&datm).contains("lr_best.pt") && notes(&datm).contains("logits"),
        "{}",
        notes(&datm)
    );

    // What the files cannot say must be said, and wrong guesses are refused with the reason.
    let e = evaluate(&dir.path().join("mtt/images_best.pt"), &dir.path().join("e-x"), &[]).unwrap_err();
    assert!(e.contains("--dataset"), "{e}");
    let e = evaluate(&dir.path().join("mtt/labels_best.pt"), &dir.path().join("e-y"), &shapes).unwrap_err();
    assert!(e.contains("labels"), "{e}");
    let e = evaluate(&dir.path().join("images_big.pt"), &dir.path().join("e-z"), &shapes).unwrap_err();
    assert!(e.contains("3x32x32") && e.contains("3x16x16"), "{e}");
}
