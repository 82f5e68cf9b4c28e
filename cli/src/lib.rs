//! The `cafe-lab` command line as a library: a researcher's own crate registers its plugins
//! (one file with a `register_matcher!`) and calls [`run`] to get the whole CLI.

mod args;
mod device_check;
mod experts;
mod list;
pub mod report;
mod teacher;
mod world;

use std::process::ExitCode;

use anyhow::{Context, Result};
use cafe_framework::config::{ConfigBuilder, RunConfig};
use cafe_framework::dist::Comm;
use cafe_framework::run::{
    evaluation_base, repeat_seeds, resume_condense, run_baseline, run_condense, run_evaluate, run_evaluate_pt,
    run_repeated, RunOptions,
};
use cafe_framework::run::{run_experts, run_teacher, TeacherConfig};
use cafe_framework::trajectory::ExpertsConfig;
use clap::Parser;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

pub use args::{Cli, Command, CommonArgs, CondenseArgs, ImportArgs};
pub use experts::ExpertsArgs;
pub use teacher::TeacherArgs;
pub use world::world;

// Keep the built-in plugins linked into every binary that uses this library (CANDLE_NOTES 7).
use cafe_plugins as _;

/// Parses `std::env::args` and runs; the whole `main` of a binary.
pub fn run() -> ExitCode {
    cafe_framework::memory::keep_freed_memory_for_reuse();
    run_from(std::env::args_os())
}

/// Parses `args` (the first is the program name) and runs, printing errors with their causes.
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    cafe_plugins::link();
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if let Some(code) = hidden_command(&args) {
        return code;
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Under an MPI launcher, this process is one rank of the world; the world (and MPI) ends
    // when `comm` is dropped, after the command.
    let comm = match world() {
        Ok(comm) => comm,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rank = comm.rank();
    let outcome = execute_on(cli, comm);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if rank == 0 {
                eprintln!("error: {e:#}");
            } else {
                eprintln!("error (rank {rank}): {e:#}");
            }
            exit_code(&e)
        }
    }
}

/// The commands `--help` does not list, for checking a build on a GPU machine with the one
/// binary that travels there (scripts/cuda/device_check.sh):
/// - `cafe-lab device-check ...`: the device against the CPU ([`device_check`]);
/// - `cafe-lab workload ...`: the benchmark workloads of `cafe-workload` (the `workloads`
///   feature).
fn hidden_command(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    let rest = || -> Vec<String> { args.iter().skip(2).map(|a| a.to_string_lossy().into_owned()).collect() };
    match args.get(1)?.to_str()? {
        "device-check" => Some(device_check::run(&rest())),
        "workload" => Some(workload(&rest())),
        _ => None,
    }
}

#[cfg(feature = "workloads")]
fn workload(args: &[String]) -> ExitCode {
    match cafe_benches::runner::run(args, false) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe-lab workload: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "workloads"))]
fn workload(_: &[String]) -> ExitCode {
    eprintln!(
        "cafe-lab workload: this binary was built without the benchmark workloads; build with \
         `--features workloads` (scripts/cuda/build.sh does), or use `cafe-workload` of cafe-benches"
    );
    ExitCode::from(2)
}

/// 130 (128 + SIGINT, the shell's convention) for a run stopped by Ctrl-C, so that scripts can
/// tell "interrupted, resumable" from "failed"; 1 for every other error.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<cafe_framework::Error>() {
        Some(cafe_framework::Error::Interrupted { .. } | cafe_framework::Error::EvaluationInterrupted) => {
            ExitCode::from(130)
        }
        _ => ExitCode::FAILURE,
    }
}

/// Runs a parsed command line in this process alone.
pub fn execute(cli: Cli) -> Result<()> {
    execute_on(cli, cafe_framework::dist::solo())
}

/// Runs a parsed command line on the ranks of `comm` (every rank calls it with the same
/// command line).
pub fn execute_on(cli: Cli, comm: Comm) -> Result<()> {
    // A typo in CAFE_CONV stops here, before any work, with the valid values.
    cafe_framework::nn::conv_algorithm::from_env()?;
    let options = |common: &CommonArgs| RunOptions {
        quiet: common.quiet,
        force: common.force,
        interrupt: None,
        comm: comm.clone(),
    };
    match cli.command.unwrap_or(Command::Condense(cli.condense)) {
        Command::Condense(a) => {
            let opts = RunOptions {
                interrupt: Some(interrupt_flag()),
                ..options(&a.common)
            };
            match &a.resume {
                Some(dir) => {
                    resume_condense(dir, RunOptions { force: true, ..opts })?;
                }
                None if a.runs.is_some() || !a.seeds.is_empty() => {
                    let config = resolve_config(&a.common, &a)?;
                    let seeds = repeat_seeds(config.seed, a.runs, &a.seeds)?;
                    run_repeated(&config, &seeds, opts)?;
                }
                None => {
                    run_condense(&resolve_config(&a.common, &a)?, opts)?;
                }
            };
        }
        Command::List => list::print_plugins()?,
        Command::Evaluate(a) if cafe_framework::pt::looks_like_torch_file(&a.synthetic) => {
            // Nothing in another tool's file says its dataset: it must be named.
            let named = a.common.data.dataset.is_some()
                || a.common.config.is_some()
                || a.common.set.iter().any(|s| s.trim_start().starts_with("dataset"));
            if !named {
                anyhow::bail!(
                    "{} is a PyTorch file, which does not say which dataset its set was condensed on: pass \
                     --dataset ({})",
                    a.synthetic.display(),
                    cafe_framework::data::dataset_names().join(", ")
                );
            }
            let settings = settings_over(ConfigBuilder::default(), &a.common, &CondenseArgs::default())?;
            let (import, sources) = a.import.options();
            run_evaluate_pt(&settings, &a.synthetic, &sources, &import, options(&a.common))?;
        }
        Command::Evaluate(a) => {
            if a.import.any() {
                anyhow::bail!(
                    "--labels, --experiment, --pixels, --factor, --learned-lr and --hard-labels describe a .pt \
                     file; {} is a cafe-lab set, whose file says all of that",
                    a.synthetic.display()
                );
            }
            // The file's own settings first (read from its header, before any dataset), the
            // flags over them.
            let (base, note) = evaluation_base(&a.synthetic)?;
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            let config = resolve_config_over(base, &a.common, &CondenseArgs::default())?;
            run_evaluate(&config, &a.synthetic, options(&a.common))?;
        }
        Command::Baseline(a) => {
            let mut config = resolve_config(&a.common, &CondenseArgs::default())?;
            if let Some(ipc) = a.ipc {
                config.ipc = ipc;
            }
            run_baseline(&config, options(&a.common))?;
        }
        Command::Report(a) => report::run_report(&a)?,
        Command::Experts(a) => {
            let config = ExpertsConfig::from_overrides(&a.flags_as_json(), &a.set)?;
            run_experts(&config, a.quiet, comm.as_ref())?;
        }
        Command::Teacher(a) => {
            let config = TeacherConfig::from_overrides(&a.flags_as_json(), &a.set)?;
            run_teacher(&config, a.quiet, comm.as_ref())?;
        }
    }
    Ok(())
}

/// A flag that Ctrl-C sets, so that a condensation stops after its current iteration with a
/// checkpoint instead of dying mid-write. Installed once per process; a second Ctrl-C while
/// the first is being honoured exits at once.
fn interrupt_flag() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let result = ctrlc::set_handler(|| {
            if FLAG.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: finishing this iteration, then writing a checkpoint (Ctrl-C again to abort)");
        });
        if let Err(e) = result {
            eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupted run keeps only its periodic checkpoints");
        }
    });
    &FLAG
}

/// Merges defaults, the protocol, `--config`, the flags and `--set` into one checked
/// [`RunConfig`].
pub fn resolve_config(common: &CommonArgs, condense: &CondenseArgs) -> Result<RunConfig> {
    resolve_config_over(ConfigBuilder::default(), common, condense)
}

/// Merges `--config`, the flags and `--set` over `builder` into one checked [`RunConfig`].
pub fn resolve_config_over(builder: ConfigBuilder, common: &CommonArgs, condense: &CondenseArgs) -> Result<RunConfig> {
    settings_over(builder, common, condense)?
        .build()
        .context("resolving the run configuration")
}

/// `--config`, the flags and `--set` merged over `builder`, not yet built.
pub fn settings_over(
    mut builder: ConfigBuilder,
    common: &CommonArgs,
    condense: &CondenseArgs,
) -> Result<ConfigBuilder> {
    if let Some(path) = &common.config {
        builder.merge_toml_file(path)?;
    }
    builder.merge_from("the command-line flags", &args::flags_as_json(common, condense));
    for assignment in &common.set {
        builder.set(assignment)?;
    }
    Ok(builder)
}
