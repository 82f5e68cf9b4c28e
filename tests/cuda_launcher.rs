//! The CUDA launcher's error paths (scripts/cuda/launch.sh) without a GPU and without the CUDA
//! build: `scripts/cuda/test_launcher.sh --fake` packs a small C program that needs the same
//! eight libraries as the CUDA binary (the driver's, cudart, cuBLAS, cuBLASLt, cuRAND, NVRTC,
//! cuDNN, NCCL; the driver, cuDNN and NCCL as link_stub.py's stubs), then checks that the
//! launcher names each missing library with its pip package, finds NVIDIA's pip layout,
//! spots a partial cuDNN, and refuses a damaged pack. The real binary's runs (a CPU run through
//! the launcher, `--device cuda` failing cleanly on the stub driver) need the pack of
//! scripts/cuda/build.sh: `scripts/cuda/test_launcher.sh` without `--fake`.

use std::path::Path;
use std::process::Command;

use cafe_tests::{find_on_path, missing_tool};

#[test]
fn the_launcher_names_what_is_missing_and_finds_pip_libraries() {
    for (tool, package) in [
        ("bash", "bash"),
        ("cc", "gcc"),
        ("strip", "binutils"),
        ("objdump", "binutils"),
        ("xz", "xz-utils"),
        ("sha256sum", "coreutils"),
        ("ldd", "libc-bin"),
        ("python3", "python3"),
    ] {
        if find_on_path(&[tool]).is_none() {
            return missing_tool(tool, &format!("apt-get install {package}"));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/cuda/test_launcher.sh"))
        .arg("--fake")
        .current_dir(&root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("launcher test PASSED"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
