//! `cafe-lab report` and repeated runs end to end on the embedded `shapes` set: the statistics
//! pooled over runs, the errors for runs that do not compare, and the HTML page as a real
//! headless Chromium renders it (Debian's `chromium`, installed by .ci/run; without it that
//! test skips loudly, and fails under CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cafe_cli::report::{RANDOM_COLOUR, RUN_COLOURS};
use cafe_framework::metrics::{student_t_975, Summary};
use cafe_tests::{cafe_lab_result, find_on_path, missing_tool, read_json};

/// Tiny settings: a width-8 ConvNet, 3 iterations, 2 networks of 3 epochs, 200 test images.
const TINY: [&str; 16] = [
    "--iterations",
    "3",
    "--batch-real",
    "16",
    "--eval-nets",
    "2",
    "--eval-epochs",
    "3",
    "--test-limit",
    "200",
    "--set",
    "arch.width=8",
    "--set",
    "eval.whole_epochs=1",
    "-q",
    "--force",
];

/// The runs shared by the tests: `dm2` (2 repeated condensations, ipc 2, with the metrics) and
/// `dm1` (one, ipc 1, with a validation curve), made once.
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let run = |name: &str, extra: &[&str]| {
            let out = dir.join(name);
            let mut args: Vec<&str> = vec!["--out", out.to_str().unwrap()];
            args.extend(TINY);
            args.extend(extra);
            cafe_lab_result(&args).unwrap_or_else(|e| panic!("run {name}: {e}"));
        };
        run("dm2", &["--ipc", "2", "--runs", "2", "--metrics"]);
        run("dm1", &["--ipc", "1", "--eval-every", "1", "--val-per-class", "20"]);
        dir
    })
}

fn report(runs: &[&Path], out: &Path) -> Result<(), String> {
    let mut args = vec!["report", "-q", "--out", out.to_str().unwrap()];
    args.extend(runs.iter().map(|p| p.to_str().unwrap()));
    cafe_lab_result(&args)
}

#[test]
fn repeated_runs_pool_every_network_of_every_run() {
    let dir = fixture().join("dm2");
    let r = read_json(&dir.join("results.json"));
    assert_eq!(r["command"], "repeat");
    assert_eq!(r["seeds"], serde_json::json!([0, 1]));
    let mut pooled = Vec::new();
    let mut means = Vec::new();
    for seed in ["seed0", "seed1"] {
        let child = read_json(&dir.join(seed).join("results.json"));
        let syn = child["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["set"] == "synthetic")
            .unwrap()
            .clone();
        pooled.extend(
            syn["accuracies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_f64().unwrap()),
        );
        means.push(syn["mean"].as_f64().unwrap());
        assert!(dir.join(seed).join("synthetic.safetensors").exists());
    }
    let agg = r["aggregate"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["set"] == "synthetic")
        .unwrap();
    assert_eq!(agg["n"], 4, "2 runs x 2 networks");
    let s = Summary::of(&pooled);
    let mean = pooled.iter().sum::<f64>() / 4.0;
    let sd = (pooled.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    assert!((agg["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!((agg["ci95_high"].as_f64().unwrap() - (mean + 3.182 * sd / 2.0)).abs() < 1e-9);
    assert!((student_t_975(3) - 3.182).abs() < 1e-12);
    assert!((agg["std"].as_f64().unwrap() - s.std).abs() < 1e-12);
    let run_means: Vec<f64> = agg["run_means"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(run_means, means);
    // The metrics pool each run's per-network values too; the storage is the set's bytes.
    let lrs = &r["metrics"][0]["label_robust_score"]["values"];
    assert_eq!(lrs.as_array().unwrap().len(), 4);
    assert_eq!(r["storage"]["images_bytes"], 20 * 3 * 16 * 16 * 4);
    assert_eq!(r["storage"]["labels_bytes"], 20 * 4);
    let md = std::fs::read_to_string(dir.join("evaluations.md")).unwrap();
    assert!(
        md.contains("over 2 runs (seeds 0, 1)") && md.contains("95 % CI"),
        "{md}"
    );
}

#[test]
fn repeat_and_metrics_flags_are_checked() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let e = cafe_lab_result(&["--runs", "2", "--seeds", "3,4", "--out", o]).unwrap_err();
    assert!(e.contains("cannot be used with"), "{e}");
    let e = cafe_lab_result(&["--seeds", "1,1", "--out", o]).unwrap_err();
    assert!(e.contains("each run needs its own seed"), "{e}");
    let e = cafe_lab_result(&["--runs", "0", "--out", o]).unwrap_err();
    assert!(e.contains("at least one"), "{e}");
    // The metrics compare with the random subset, and their weights are fractions.
    let e = cafe_lab_result(&["--metrics", "--no-baseline", "--out", o]).unwrap_err();
    assert!(e.contains("drop --no-baseline"), "{e}");
    let e = cafe_lab_result(&["--metrics", "--set", "eval.lrs_weight=1.5", "--out", o]).unwrap_err();
    assert!(e.contains("eval.lrs_weight") && e.contains("[0, 1]"), "{e}");
}

#[test]
fn report_refuses_runs_that_do_not_compare() {
    let fx = fixture();
    let out = tempfile::tempdir().unwrap();
    let rep = out.path().join("report");
    // A folder that is not a run.
    let empty = out.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = report(&[&fx.join("dm1"), &empty], &rep).unwrap_err();
    assert!(e.contains("no results.json"), "{e}");
    // The same folder twice.
    let e = report(&[&fx.join("dm1"), &fx.join("dm1")], &rep).unwrap_err();
    assert!(e.contains("given twice"), "{e}");
    // Another dataset: a copy of dm1 whose results say mnist.
    let other = out.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut r = read_json(&fx.join("dm1").join("results.json"));
    r["dataset"] = "mnist".into();
    std::fs::write(other.join("results.json"), r.to_string()).unwrap();
    let e = report(&[&fx.join("dm1"), &other], &rep).unwrap_err();
    assert!(
        e.contains("different datasets") && e.contains("shapes") && e.contains("mnist"),
        "{e}"
    );
    // Another evaluation recipe, another test set.
    r["dataset"] = "shapes".into();
    r["evaluations"][0]["epochs"] = 300.into();
    std::fs::write(other.join("results.json"), r.to_string()).unwrap();
    let e = report(&[&fx.join("dm1"), &other], &rep).unwrap_err();
    assert!(
        e.contains("different evaluation recipes") && e.contains("300 epochs"),
        "{e}"
    );
    r["evaluations"][0]["epochs"] = 3.into();
    r["evaluations"][0]["test_images"] = 100.into();
    std::fs::write(other.join("results.json"), r.to_string()).unwrap();
    let e = report(&[&fx.join("dm1"), &other], &rep).unwrap_err();
    assert!(e.contains("different test sets"), "{e}");
    assert!(
        !rep.join("report.html").exists(),
        "nothing is written for a refused report"
    );
}

/// Runs headless Chromium on `page` with `extra` (e.g. --dump-dom), as the machine's notes
/// advise: no sandbox (root), no GPU, no background networking (the network is closed), a
/// fresh profile, and virtual time so that the load handlers have run.
fn headless(browser: &Path, page: &Path, extra: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("starting chromium")
}

#[test]
fn report_page_renders_in_headless_chromium() {
    let fx = fixture();
    let out = tempfile::tempdir().unwrap();
    let rep = out.path().join("report");
    report(&[&fx.join("dm2"), &fx.join("dm1")], &rep).unwrap();
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("| dm2 | distribution | dm | 2 | 2 x 2 | convnet |"), "{md}");
    assert!(md.contains("| dm1 | distribution | dm | 1 | 1 x 2 | convnet |"), "{md}");
    let html = rep.join("report.html");
    // Debian's Chromium, or another Chromium-family browser on PATH.
    let Some(browser) = find_on_path(&["chromium", "chromium-browser", "google-chrome"]) else {
        return missing_tool(
            "a headless Chromium (`chromium` on PATH)",
            "sudo apt-get install chromium",
        );
    };

    // What the browser built: the DOM after the page's load handler ran.
    let dom = headless(&browser, &html, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    // 4 plots, 3 grids (2 seeds + 1), 2 table rows: each plot with a laid-out size, each grid
    // decoded as an image.
    assert!(
        dom.contains("rendered: 4 of 4 plots, 3 of 3 grids, 2 table rows"),
        "render check: {}",
        dom.split("render-check\">")
            .nth(1)
            .unwrap_or("missing")
            .split('<')
            .next()
            .unwrap_or("")
    );
    for text in [
        "validation accuracy during condensation",
        "test accuracy per architecture",
        "test accuracy per class",
        "matching loss",
        "random subset",
        "disk",
        "two-dots",
    ] {
        assert!(dom.contains(text), "the page shows no '{text}'");
    }

    // What it painted: the bars of each run and of the random baseline in their colours.
    let shot = out.path().join("shot.png");
    let s = headless(
        &browser,
        &html,
        &["--window-size=1280,2400", &format!("--screenshot={}", shot.display())],
    );
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&s.stderr));
    let img = image::open(&shot).unwrap().to_rgb8();
    let count = |c: plotters::style::RGBColor| {
        img.pixels()
            .filter(|p| (0..3).all(|k| (p.0[k] as i32 - [c.0, c.1, c.2][k] as i32).abs() <= 2))
            .count()
    };
    for (name, c) in [
        ("dm2", RUN_COLOURS[0]),
        ("dm1", RUN_COLOURS[1]),
        ("random", RANDOM_COLOUR),
    ] {
        let n = count(c);
        assert!(
            n > 500,
            "{name}'s colour covers {n} pixels of the screenshot: its bars were not painted"
        );
    }
}
