//! The `cafe_lab` Python package: pytest over the installed wheel (python/tests), from the
//! venv that `scripts/python/setup.sh` builds (`.ci/run` runs it before the tests). Without that
//! venv this test prints how to make it and passes, except under CI.

use std::path::Path;
use std::process::Command;

use cafe_tests::python_venv;

#[test]
fn the_python_package_passes_its_tests() {
    let Some(python) = python_venv(&["cafe_lab", "pytest", "torch", "numpy"]) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
        .current_dir(&root)
        .output()
        .expect("running pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // pytest's summary line, for the cargo test log.
    eprintln!(
        "{}",
        text.lines()
            .rev()
            .find(|l| l.contains("passed") || l.contains("failed"))
            .unwrap_or("")
    );
    assert!(out.status.success(), "pytest failed:\n{text}");
}
