//! `cafe-workload NAME [--repeats N] [--warmup W] [--threads T]`: runs one workload of
//! `cafe_benches::workloads` W times untimed, then N times timed, and prints one JSON line:
//! `{"workload", "threads", "times_s": [...], "median_s", "outer_steps", "inner_epochs", "loss"}`.
//!
//! `cafe-workload list` prints the workloads; `cafe-workload signature` prints the default
//! ConvNet's parameter count and output shapes as JSON (for checking a PyTorch port).
//! `--threads` sizes every CPU pool (rayon's, candle's); default: candle's own choice.

use std::process::ExitCode;
use std::time::Instant;

use cafe_benches::live_bytes::LiveBytes;
use cafe_benches::threads::set_threads;
use cafe_benches::workloads::{convnet_signature, Workload};
use cafe_framework::{Error, Result};
use serde_json::json;

/// Counts live heap bytes, so that the peak can be reported beside the peak RSS.
#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// Keeps the plugins linked (CANDLE_NOTES 7).
use cafe_plugins as _;

const USAGE: &str = "usage: cafe-workload NAME [--repeats N] [--warmup W] [--threads T]\n       \
                     cafe-workload list | signature";

struct Args {
    name: String,
    repeats: usize,
    warmup: usize,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut name = None;
    let (mut repeats, mut warmup, mut threads) = (1, 1, None);
    let number = |flag: &str, v: Option<String>| -> Result<usize> {
        let v = v.ok_or_else(|| Error::invalid(flag, "", "needs a number"))?;
        v.parse().map_err(|_| Error::invalid(flag, &v, "needs a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => repeats = number("--repeats", args.next())?,
            "--warmup" => warmup = number("--warmup", args.next())?,
            "--threads" => threads = Some(number("--threads", args.next())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ if name.is_none() && !a.starts_with('-') => name = Some(a),
            _ => return Err(Error::invalid("argument", &a, USAGE)),
        }
    }
    let name = name.ok_or_else(|| Error::Other(USAGE.into()))?;
    if repeats == 0 {
        return Err(Error::invalid("--repeats", 0, "at least one timed run"));
    }
    Ok(Args {
        name,
        repeats,
        warmup,
        threads,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn mib(bytes: usize) -> f64 {
    (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if let Some(t) = args.threads {
        set_threads(t)?;
    }
    match args.name.as_str() {
        "list" => {
            for w in Workload::ALL {
                println!("{:<20} {}", w.name(), w.description());
            }
            return Ok(());
        }
        "signature" => {
            println!("{}", convnet_signature()?);
            return Ok(());
        }
        _ => {}
    }
    let workload = Workload::from_name(&args.name)?;
    let mut prepared = workload.prepare()?;
    for _ in 0..args.warmup {
        prepared.run()?;
    }
    let mut times = Vec::with_capacity(args.repeats);
    let mut summary = None;
    let live_before = LiveBytes::live();
    LiveBytes::reset_peak();
    for _ in 0..args.repeats {
        let start = Instant::now();
        let s = prepared.run()?;
        times.push(start.elapsed().as_secs_f64());
        summary = Some(s);
    }
    let peak_live = LiveBytes::peak();
    let summary = summary.expect("at least one repeat");
    let loss = if summary.loss.is_finite() {
        json!(summary.loss)
    } else {
        json!(null)
    };
    println!(
        "{}",
        json!({
            "workload": workload.name(),
            "threads": candle_core::utils::get_num_threads(),
            "times_s": times,
            "median_s": median(&times),
            "outer_steps": summary.outer_steps,
            "inner_epochs": summary.inner_epochs,
            "loss": loss,
            "live_mib_before": mib(live_before),
            "peak_live_mib": mib(peak_live),
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    // The same allocator settings as the `cafe-lab` binary, so that workloads time what it runs.
    cafe_framework::memory::keep_freed_memory_for_reuse();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe-workload: {e}");
            ExitCode::FAILURE
        }
    }
}
