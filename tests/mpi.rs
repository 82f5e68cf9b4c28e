//! cafe-lab under `mpirun` with real processes (the `mpi` feature, rsmpi over Open MPI): a DM
//! condensation with its evaluation on 1, 2 and 3 ranks gives the same synthetic set, byte for
//! byte, and the same accuracies; experts shared out among 2 ranks are the files one process
//! writes; a rank killed mid-run ends the job, and its last checkpoint resumes on another world
//! size to the bytes of an uninterrupted run. (A binary without MPI support refusing to be one
//! of several ranks: cli/tests.)
//!
//! Needs `mpirun` and an MPI build of cafe-lab (`scripts/mpi/build.sh` puts one in
//! `target/cafe-lab-mpi`, or name one in `CAFE_LAB_MPI`): skipped with the install line where
//! they are absent, required under CI (`.ci/run` installs Open MPI and builds it).

use std::path::{Path, PathBuf};
use std::process::Command;

use cafe_tests::{find_on_path, missing_tool, read_json};

/// The MPI build of cafe-lab, if there is one.
fn mpi_binary() -> Option<PathBuf> {
    let path = std::env::var_os("CAFE_LAB_MPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cafe-lab-mpi"));
    path.is_file().then_some(path)
}

/// `mpirun` and the MPI build, or a printed reason (a failure under CI).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let Some(mpirun) = find_on_path(&["mpirun"]) else {
        missing_tool(
            "Open MPI's mpirun",
            "sudo apt-get install libopenmpi-dev openmpi-bin libclang-dev pkgconf",
        );
        return None;
    };
    let Some(binary) = mpi_binary() else {
        missing_tool("an MPI build of cafe-lab (target/cafe-lab-mpi)", "scripts/mpi/build.sh");
        return None;
    };
    Some((mpirun, binary))
}

/// Runs `binary args` on `ranks` MPI ranks in `dir`, as scripts/mpi/run.sh does; returns the
/// exit status and the output.
fn mpirun(mpirun: &Path, ranks: usize, binary: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let mut cmd = Command::new(mpirun);
    // CI containers run tests as root, which Open MPI refuses without this flag; ranks may
    // outnumber the cores.
    if is_root() {
        cmd.arg("--allow-run-as-root");
    }
    cmd.args(["--bind-to", "none", "-np", &ranks.to_string()])
        .arg(binary)
        .args(args)
        .current_dir(dir)
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1");
    let out = cmd.output().expect("mpirun starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether this process runs as root (Open MPI refuses root without a flag).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

const TINY: &[&str] = &[
    "--dataset",
    "shapes",
    "--ipc",
    "2",
    "--iterations",
    "2",
    "--batch-real",
    "8",
    "--eval-nets",
    "3",
    "--eval-epochs",
    "1",
    "--test-limit",
    "100",
    "--set",
    "arch.width=8",
    "--quiet",
];

/// DM on ConvNet (instance norm: per class) and on ConvNetBN (every class in one batch, shared
/// through the class-synchronised BatchNorm): the same bytes at 1, 2 and 3 ranks, the steps
/// shared by class on several.
#[test]
fn dm_on_one_two_and_three_mpi_ranks_gives_the_same_bytes() {
    let Some((run, binary)) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    for arch in ["convnet", "convnetbn"] {
        let mut reference: Option<(Vec<u8>, serde_json::Value)> = None;
        for ranks in [1, 2, 3] {
            let out = format!("{arch}-np{ranks}");
            let args: Vec<&str> = TINY.iter().copied().chain(["--arch", arch, "--out", &out]).collect();
            let (ok, text) = mpirun(&run, ranks, &binary, &args, dir.path());
            assert!(ok, "{arch}, {ranks} ranks: {text}");
            let set = std::fs::read(dir.path().join(&out).join("synthetic.safetensors")).unwrap();
            let results = read_json(&dir.path().join(&out).join("results.json"));
            let shared: u64 = results["condensation"]["per_iteration"]
                .as_array()
                .map_or(0, |its| its.iter().filter_map(|i| i["shared_steps"].as_u64()).sum());
            assert_eq!(
                shared > 0,
                ranks > 1,
                "{arch}, {ranks} ranks: {shared} steps shared by class"
            );
            let evaluations = results["evaluations"].clone();
            match &reference {
                None => reference = Some((set, evaluations)),
                Some((s, e)) => {
                    assert!(*s == set, "{arch}: the set on {ranks} ranks differs from one rank's");
                    assert_eq!(*e, evaluations, "{arch}: evaluations on {ranks} ranks differ");
                }
            }
        }
    }
}

#[test]
fn experts_shared_out_among_ranks_are_the_files_one_process_writes() {
    let Some((run, binary)) = tools() else { return };
    // Two jobs in two directories: an expert's file must not depend on where its store is.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "experts",
        "--dataset",
        "shapes",
        "--num-experts",
        "3",
        "--train-epochs",
        "1",
        "--test-limit",
        "50",
        "--set",
        "arch.width=4",
        "--quiet",
        "--out",
        "store",
    ];
    let (ok, text) = mpirun(&run, 1, &binary, &args, one.path());
    assert!(ok, "{text}");
    let (ok, text) = mpirun(&run, 2, &binary, &args, two.path());
    assert!(ok, "{text}");
    for k in 0..3 {
        let name = format!("expert_{k:04}.safetensors");
        let a = std::fs::read(one.path().join("store").join(&name)).unwrap();
        let b = std::fs::read(two.path().join("store").join(&name)).unwrap();
        assert!(a == b, "{name} differs when trained on 2 ranks");
    }
}

/// The process of MPI rank `rank` whose command line names `marker`, from /proc.
fn rank_pid(rank: usize, marker: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(marker) || String::from_utf8_lossy(&cmdline).contains("mpirun") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_rank_killed_mid_run_ends_the_job_and_its_checkpoint_resumes_on_another_world_size() {
    use cafe_framework::checkpoint::Checkpoint;
    let Some((run, binary)) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    // 40 iterations, a checkpoint after each: time to kill a rank in the middle.
    let mut args: Vec<&str> = vec![
        "--dataset",
        "shapes",
        "--ipc",
        "2",
        "--iterations",
        "40",
        "--batch-real",
        "8",
        "--eval-nets",
        "2",
        "--eval-epochs",
        "1",
        "--test-limit",
        "100",
        "--set",
        "arch.width=8",
        "--quiet",
        "--checkpoint-every",
        "1",
    ];
    let (ok, text) = mpirun(&run, 1, &binary, &[&args[..], &["--out", "whole"]].concat(), dir.path());
    assert!(ok, "{text}");
    args.extend(["--out", "killed"]);
    let mut cmd = Command::new(&run);
    if is_root() {
        cmd.arg("--allow-run-as-root");
    }
    let job = cmd
        .args(["--bind-to", "none", "-np", "2"])
        .arg(&binary)
        .args(&args)
        .current_dir(dir.path())
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let killed = dir.path().join("killed");
    let checkpoint = killed.join("checkpoint.safetensors");
    let started = std::time::Instant::now();
    let device = candle_core::Device::Cpu;
    // Wait for the third checkpoint, then kill rank 1 without warning.
    loop {
        assert!(started.elapsed().as_secs() < 300, "no checkpoint after 5 minutes");
        if let Ok(ck) = Checkpoint::load(&checkpoint, &device) {
            if ck.state.next_iteration >= 3 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid =
        rank_pid(1, "killed").unwrap_or_else(|| panic!("rank 1 of the job writing {} not found", killed.display()));
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let out = job.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the job went on after a rank died: {text}");
    assert!(
        text.contains("signal 9") || text.contains("Killed") || text.contains("killed"),
        "{text}"
    );
    // The last checkpoint is whole, and resumes on 3 ranks to the uninterrupted run's bytes.
    let ck = Checkpoint::load(&checkpoint, &device).expect("the last checkpoint is intact");
    assert!(ck.state.next_iteration >= 3 && ck.state.next_iteration < 40);
    let (ok, text) = mpirun(&run, 3, &binary, &["--resume", "killed", "--quiet"], dir.path());
    assert!(ok, "{text}");
    let a = std::fs::read(dir.path().join("whole/synthetic.safetensors")).unwrap();
    let b = std::fs::read(killed.join("synthetic.safetensors")).unwrap();
    assert!(a == b, "resumed on 3 ranks after a rank was killed, the set differs");
}
