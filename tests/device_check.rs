//! `cafe-lab device-check` with the CPU as the device: no GPU needed, so it runs everywhere
//! and checks the checker itself (it found that a gradient the CPU computes as zero, a conv
//! bias before instance norm, made the relative error explode, and that CAFE's own scheduler
//! made one "iteration" take minutes). The device side then computes what the reference computes
//! (f64 to the bit, f32 within its rounding), so every comparison must pass, and the JSON and
//! markdown reports must be written with every check in them. On a GPU machine
//! scripts/cuda/device_check.sh runs the same command with `--device cuda`.

use cafe_tests::{cafe_lab, read_json};

#[test]
fn the_cpu_against_itself_passes_every_op_network_and_method_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("check");
    let code = cafe_lab(&[
        "device-check",
        "--device",
        "cpu",
        "--parts",
        "ops,network,methods",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = read_json(&out.join("device_check.json"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["compute"]["device"], "cpu");
    let checks = report["checks"].as_array().unwrap();
    // 5 geometries x 3 modes x 4 results, 3 modes x 2 network checks, 5 methods.
    assert_eq!(checks.len(), 5 * 3 * 4 + 3 * 2 + 5, "{report:#}");
    for c in checks {
        assert!(c["passed"].as_bool().unwrap(), "{c}");
        let err = c["rel_err"].as_f64().unwrap();
        if c["name"].as_str().unwrap().contains(" f64") || c["part"] == "methods" {
            assert_eq!(err, 0.0, "the same computation on the same CPU: {c}");
        }
    }
    let md = std::fs::read_to_string(out.join("device_check.md")).unwrap();
    assert!(md.contains("| ops | convnet layer 1 f64: forward |"), "{md}");
    assert!(md.contains("DC second order"), "{md}");
    assert!(
        md.contains("| methods | mtt: synthetic set after 1 iteration |"),
        "{md}"
    );
}

#[test]
fn unknown_parts_are_refused() {
    assert_ne!(
        cafe_lab(&["device-check", "--device", "cpu", "--parts", "ops,speed"]),
        0
    );
}
