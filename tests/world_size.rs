//! The same bytes at any world size (issue "Beyond one machine"): runs on 1, 2 and 3 ranks
//! (threads of this process, `dist::LocalWorld`, which exchange through the same collectives as
//! MPI ranks) give byte-identical synthetic sets and identical per-network accuracies and
//! losses, for a matcher of each decomposition (DM per class, DC per class with a bi-level
//! inner loop, CAFE per class with shared summaries, MTT global), for evaluation networks, KD
//! students, DD-Ranking's metrics and experts shared out as tasks. `tests/mpi.rs` does the same
//! through `mpirun` with real processes.

use std::path::Path;

use cafe_cli::{execute_on, Cli};
use cafe_framework::dist::LocalWorld;
use cafe_tests::{read_json, tiny_expert_store};
use clap::Parser;

/// Tiny settings: seconds per run.
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
    "2",
    "--test-limit",
    "100",
    "--set",
    "arch.width=8",
    "--quiet",
];

/// Runs the CLI with `args` on `ranks` ranks, rank 0 writing into `out`.
fn run_on(ranks: usize, out: &Path, args: &[&str]) {
    let out = out.to_str().unwrap();
    let mut full = vec!["cafe-lab"];
    full.extend(args);
    full.extend(["--out", out]);
    let outcomes = LocalWorld::run(ranks, |comm| {
        let cli = Cli::try_parse_from(&full).unwrap();
        execute_on(cli, comm).map_err(|e| format!("{e:#}"))
    });
    for (rank, outcome) in outcomes.into_iter().enumerate() {
        outcome.unwrap_or_else(|e| panic!("rank {rank} of {ranks}: {e}"));
    }
}

/// What must not depend on the world size: the set's bytes, and every evaluation's numbers,
/// metrics and per-iteration losses of results.json.
fn fingerprint(out: &Path) -> (Option<Vec<u8>>, String) {
    let set = std::fs::read(out.join("synthetic.safetensors")).ok();
    let r = read_json(&out.join("results.json"));
    let numbers = serde_json::json!({
        "evaluations": r["evaluations"],
        "metrics": r["metrics"],
        "kd": r["kd"],
        "losses": r["condensation"]["per_iteration"]
            .as_array()
            .map(|its| its.iter().map(|i| i["last_loss"].clone()).collect::<Vec<_>>()),
        "validation_curve": r["validation_curve"],
    });
    (set, numbers.to_string())
}

/// Outer steps that were shared among ranks by class (results.json `shared_steps`).
fn shared_steps(out: &Path) -> u64 {
    read_json(&out.join("results.json"))["condensation"]["per_iteration"]
        .as_array()
        .map_or(0, |its| its.iter().filter_map(|i| i["shared_steps"].as_u64()).sum())
}

/// Runs `args` on 1, 2 and 3 ranks and checks that every world size gives rank 1's outputs,
/// and that the matching steps were shared by class on several ranks (not computed whole on
/// each, which would be the same trivially) unless the matcher's loss is `Global`.
fn same_at_every_world_size(name: &str, args: &[&str]) {
    let global = args.windows(2).any(|w| w == ["--matcher", "trajectory"]);
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("np1");
    run_on(1, &one, args);
    let reference = fingerprint(&one);
    assert!(
        reference.1.contains("accuracies"),
        "{name}: no evaluations in {}",
        reference.1
    );
    for ranks in [2, 3] {
        let out = dir.path().join(format!("np{ranks}"));
        run_on(ranks, &out, args);
        let got = fingerprint(&out);
        assert!(
            got.0 == reference.0,
            "{name}: the synthetic set on {ranks} ranks differs from one rank's"
        );
        assert_eq!(
            got.1, reference.1,
            "{name}: numbers on {ranks} ranks differ from one rank's"
        );
        let shared = shared_steps(&out);
        assert!(
            (shared > 0) != global,
            "{name}: {shared} matching steps shared by class on {ranks} ranks"
        );
    }
    assert_eq!(shared_steps(&one), 0, "{name}: one process shares nothing");
}

#[test]
fn distribution_matching_shares_classes_and_networks_with_the_same_bytes() {
    same_at_every_world_size(
        "DM",
        &[
            TINY,
            &[
                "--matcher",
                "distribution",
                "--metrics",
                "--kd",
                "--set",
                "eval.kd_teacher_epochs=1",
            ],
        ]
        .concat(),
    );
}

/// DM on a BatchNorm network: every class in one batch (DatasetCondensation `main_DM.py:165-174`),
/// shared by class through the class-synchronised BatchNorm.
#[test]
fn distribution_matching_on_batch_norm_shares_classes_with_synchronised_statistics() {
    same_at_every_world_size(
        "DM on ConvNetBN",
        &[TINY, &["--matcher", "distribution", "--arch", "convnetbn"]].concat(),
    );
}

/// CAFE on a BatchNorm network, shared by class through the class-synchronised BatchNorm.
#[test]
fn cafe_on_batch_norm_shares_classes_with_synchronised_statistics() {
    same_at_every_world_size(
        "CAFE on ConvNetBN",
        &[
            TINY,
            &[
                "--matcher",
                "cafe",
                "--scheduler",
                "none",
                "--protocol",
                "none",
                "--arch",
                "convnetbn",
            ],
        ]
        .concat(),
    );
}

#[test]
fn gradient_matching_shares_classes_and_trains_the_same_inner_networks() {
    same_at_every_world_size(
        "DC",
        &[
            TINY,
            &[
                "--matcher",
                "gradient",
                "--scheduler",
                "fixed",
                "--eval-every",
                "1",
                "--val-per-class",
                "4",
            ],
        ]
        .concat(),
    );
}

#[test]
fn dsa_draws_each_class_augmentation_from_the_class_not_the_rank() {
    // DSA augments a class's real and synthetic batches with one shared draw (the reference's
    // `seed = int(time.time() * 1000) % 100000` per class, main.py:186-188); cafe-lab derives
    // it from the class and the step, so a rank that owns a class draws what one process draws.
    same_at_every_world_size(
        "DSA",
        &[
            TINY,
            &["--matcher", "gradient", "--scheduler", "fixed", "--augment", "dsa"],
        ]
        .concat(),
    );
}

#[test]
fn cafe_shares_classes_and_gathers_the_centres_of_its_discriminant() {
    same_at_every_world_size(
        "CAFE",
        &[
            TINY,
            &["--matcher", "cafe", "--scheduler", "none", "--protocol", "none"],
        ]
        .concat(),
    );
}

#[test]
fn trajectory_matching_runs_whole_on_every_rank() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let experts = dir.path().join("experts");
    tiny_expert_store(&experts, 8);
    let store = format!("matcher.experts=\"{}\"", experts.display());
    same_at_every_world_size(
        "MTT",
        &[
            TINY,
            &[
                "--matcher",
                "trajectory",
                "--ipc",
                "1",
                "--set",
                &store,
                "--set",
                "matcher.syn_steps=2",
                "--set",
                "matcher.max_start_epoch=2",
                "--set",
                "matcher.expert_epochs=1",
                "--set",
                "matcher.soft_labels=true",
            ],
        ]
        .concat(),
    );
}

#[test]
fn experts_are_shared_out_and_each_is_the_same_file() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
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
    ];
    let mut stores = Vec::new();
    for ranks in [1, 2, 3] {
        let out = dir.path().join(format!("np{ranks}"));
        run_on(ranks, &out, &args);
        let files: Vec<Vec<u8>> = (0..3)
            .map(|k| std::fs::read(out.join(format!("expert_{k:04}.safetensors"))).unwrap())
            .collect();
        let summary = read_json(&out.join("experts.json"));
        assert_eq!(summary["experts"].as_array().map(Vec::len), Some(3), "{ranks} ranks");
        stores.push(files);
    }
    assert!(
        stores[1] == stores[0] && stores[2] == stores[0],
        "experts differ with the world size"
    );
}

#[test]
fn a_run_interrupted_on_two_ranks_resumes_on_three_to_the_bytes_of_one() {
    use cafe_framework::run::{resume_condense, run_condense, RunOptions};
    use std::sync::atomic::AtomicBool;
    cafe_plugins::link();
    // Set before the run starts: every rank stops after its first iteration, with a checkpoint.
    static STOP: AtomicBool = AtomicBool::new(true);
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        "dataset=shapes",
        "matcher=gradient",
        "scheduler=fixed",
        "ipc=2",
        "iterations=3",
        "batch_real=8",
        "arch.width=8",
        "eval.nets=2",
        "eval.epochs=1",
        "eval.test_limit=100",
        "checkpoint_every=1",
    ];
    let whole = dir.path().join("whole");
    run_condense(&cafe_tests::run_config(&settings, &whole), cafe_tests::quiet()).unwrap();
    let cut = dir.path().join("cut");
    let config = cafe_tests::run_config(&settings, &cut);
    let stopped = LocalWorld::run(2, |comm| {
        run_condense(
            &config,
            RunOptions {
                quiet: true,
                interrupt: Some(&STOP),
                comm,
                ..RunOptions::default()
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    for outcome in stopped {
        let err = outcome.expect_err("the run was interrupted");
        assert!(err.contains("interrupted"), "{err}");
    }
    let resumed = LocalWorld::run(3, |comm| {
        resume_condense(
            &cut,
            RunOptions {
                quiet: true,
                comm,
                ..RunOptions::default()
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    resumed.into_iter().for_each(|r| r.unwrap());
    let a = std::fs::read(whole.join("synthetic.safetensors")).unwrap();
    let b = std::fs::read(cut.join("synthetic.safetensors")).unwrap();
    assert!(
        a == b,
        "interrupted on 2 ranks and resumed on 3, the set differs from one rank's"
    );
    assert_eq!(fingerprint(&whole).1, fingerprint(&cut).1);
}

#[test]
fn repeated_runs_are_shared_out_as_whole_runs_with_the_same_numbers() {
    cafe_plugins::link();
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> = TINY.iter().copied().chain(["--runs", "3", "--seed", "4"]).collect();
    let mut seen: Vec<(Vec<Vec<u8>>, String)> = Vec::new();
    for ranks in [1, 2, 3] {
        let out = dir.path().join(format!("np{ranks}"));
        run_on(ranks, &out, &args);
        let sets = (4..7)
            .map(|s| std::fs::read(out.join(format!("seed{s}/synthetic.safetensors"))).unwrap())
            .collect();
        let r = read_json(&out.join("results.json"));
        seen.push((
            sets,
            serde_json::json!({"aggregate": r["aggregate"], "runs": r["runs"]}).to_string(),
        ));
    }
    for (ranks, got) in [2, 3].iter().zip(&seen[1..]) {
        assert!(got.0 == seen[0].0, "the runs' sets on {ranks} ranks differ");
        assert_eq!(got.1, seen[0].1, "the repeated run's numbers on {ranks} ranks differ");
    }
}
