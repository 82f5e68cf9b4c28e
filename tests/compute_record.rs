//! What computed a run, as results.json records it (`compute`), and the `--precision` setting
//! of GPU convolutions on the CPU: FP32 recorded, TF32 refused with a clear error (the CPU has
//! no TF32; recording it would misreport the run), unknown names refused naming the valid ones.

use cafe_tests::{cafe_lab_result, read_json, tiny_dm_flags};

#[test]
fn a_cpu_run_records_its_device_convolutions_and_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = tiny_dm_flags("1", "1", &["--precision", "fp32"]);
    args.extend(["--out", out.to_str().unwrap()]);
    cafe_lab_result(&args).unwrap();
    let compute = &read_json(&out.join("results.json"))["compute"];
    assert_eq!(compute["device"], "cpu", "{compute}");
    assert_eq!(compute["precision"], "fp32", "{compute}");
    let conv = compute["convolutions"].as_str().unwrap();
    assert!(conv.starts_with("cpu (CAFE_CONV="), "{conv}");
    assert!(compute.get("gpu").is_none(), "no GPU fields on the CPU: {compute}");
    // The default precision stays out of config.json, so that the files of runs made before
    // the setting existed repeat byte for byte.
    let config = read_json(&out.join("config.json"));
    assert!(config.get("precision").is_none(), "{config}");
}

#[test]
fn tf32_on_the_cpu_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = tiny_dm_flags("1", "1", &["--precision", "TF32"]);
    args.extend(["--out", out.to_str().unwrap()]);
    let e = cafe_lab_result(&args).unwrap_err();
    assert!(e.contains("tf32") && e.contains("--device cuda"), "{e}");
    assert!(!out.join("results.json").exists(), "nothing written");
}

#[test]
fn an_unknown_precision_is_refused_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = tiny_dm_flags("1", "1", &["--precision", "tf16"]);
    let out = dir.path().join("run");
    args.extend(["--out", out.to_str().unwrap()]);
    let e = cafe_lab_result(&args).unwrap_err();
    assert!(e.contains("tf16") && e.contains("fp32") && e.contains("tf32"), "{e}");
}
