//! The command line of `cafe-workload` (and of the hidden `cafe-lab workload` of a CUDA build,
//! which carries the workloads so that one binary travels to a GPU machine):
//!
//! `NAME[,NAME...] [--repeats N] [--warmup W] [--threads T] [--device D] [--size cpu|gpu]
//! [--precision fp32|tf32]` runs each workload W times untimed, then N times timed, and prints
//! one JSON line per workload: `{"workload", "device", "size", "shape", "precision",
//! "convolutions", "threads", "times_s", "median_s", "outer_steps", "inner_epochs", "loss",
//! "live_mib_before", "peak_live_mib", "gpu_peak_mib", "gpu_reserved_peak_mib"}`. On a GPU the
//! timed runs start and end with a synchronisation, and the GPU peaks are the device memory
//! pool's high-water marks over the timed runs ([`cafe_framework::gpu::memory`]).
//! `list` prints the workloads; `signature` prints the default ConvNet's parameter count and
//! output shapes as JSON (for checking a PyTorch port).

use std::time::Instant;

use cafe_framework::gpu::{self, Precision};
use cafe_framework::run::open_device;
use cafe_framework::{Error, Result};
use serde_json::{json, Value};

use crate::live_bytes::LiveBytes;
use crate::threads::set_threads;
use crate::workloads::{convnet_signature, Size, Workload};

pub const USAGE: &str =
    "usage: cafe-workload NAME[,NAME...] [--repeats N] [--warmup W] [--threads T]\n                     \
                         [--device cpu|cuda[:N]] [--size cpu|gpu] [--precision fp32|tf32]\n       \
                         cafe-workload list | signature";

struct Args {
    names: String,
    repeats: usize,
    warmup: usize,
    threads: Option<usize>,
    device: String,
    size: Size,
    precision: Precision,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut it = args.iter().cloned();
    let mut names = None;
    let (mut repeats, mut warmup, mut threads) = (1, 1, None);
    let (mut device, mut size, mut precision) = ("cpu".to_string(), Size::Cpu, Precision::Fp32);
    let number = |flag: &str, v: Option<String>| -> Result<usize> {
        let v = v.ok_or_else(|| Error::invalid(flag, "", "needs a number"))?;
        v.parse().map_err(|_| Error::invalid(flag, &v, "needs a number"))
    };
    let value = |flag: &str, v: Option<String>| v.ok_or_else(|| Error::invalid(flag, "", "needs a value"));
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repeats" => repeats = number("--repeats", it.next())?,
            "--warmup" => warmup = number("--warmup", it.next())?,
            "--threads" => threads = Some(number("--threads", it.next())?),
            "--device" => device = value("--device", it.next())?,
            "--size" => size = Size::from_name(&value("--size", it.next())?)?,
            "--precision" => precision = value("--precision", it.next())?.parse()?,
            _ if names.is_none() && !a.starts_with('-') => names = Some(a),
            _ => return Err(Error::invalid("argument", &a, USAGE)),
        }
    }
    let names = names.ok_or_else(|| Error::Other(USAGE.into()))?;
    if repeats == 0 {
        return Err(Error::invalid("--repeats", 0, "at least one timed run"));
    }
    Ok(Args {
        names,
        repeats,
        warmup,
        threads,
        device,
        size,
        precision,
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

/// Runs the command line `args` (without the program name). `counting_allocator`: whether
/// [`LiveBytes`] is this program's global allocator (else its counters stay zero and the
/// heap figures are printed as null).
pub fn run(args: &[String], counting_allocator: bool) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let args = parse_args(args)?;
    if let Some(t) = args.threads {
        set_threads(t)?;
    }
    match args.names.as_str() {
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
    gpu::check_conv_path_env()?;
    let workloads = args
        .names
        .split(',')
        .map(Workload::from_name)
        .collect::<Result<Vec<_>>>()?;
    let device = open_device(&args.device, args.precision)?;
    let compute = gpu::compute_info(&device);
    for workload in workloads {
        let mut prepared = workload.prepare_on(&device, args.size)?;
        for _ in 0..args.warmup {
            prepared.run()?;
        }
        let mut times = Vec::with_capacity(args.repeats);
        let mut summary = None;
        let live_before = LiveBytes::live();
        LiveBytes::reset_peak();
        gpu::memory::reset_peak(&device)?;
        for _ in 0..args.repeats {
            let start = Instant::now();
            let s = prepared.run()?;
            times.push(start.elapsed().as_secs_f64());
            summary = Some(s);
        }
        let peak_live = LiveBytes::peak();
        let pool = gpu::memory::stats(&device)?;
        let summary = summary.ok_or_else(|| Error::Other("no timed run".into()))?;
        let finite = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
        let heap = |v: f64| if counting_allocator { json!(v) } else { Value::Null };
        println!(
            "{}",
            json!({
                "workload": workload.name(),
                "device": compute.device,
                "size": args.size.name(),
                "shape": workload.shape(args.size),
                "precision": compute.precision.map(Precision::name),
                "convolutions": compute.convolutions,
                "threads": candle_core::utils::get_num_threads(),
                "times_s": times,
                "median_s": median(&times),
                "outer_steps": summary.outer_steps,
                "inner_epochs": summary.inner_epochs,
                "loss": finite(summary.loss),
                "live_mib_before": heap(mib(live_before)),
                "peak_live_mib": heap(mib(peak_live)),
                "gpu_peak_mib": pool.map(|p| p.used_high_mib),
                "gpu_reserved_peak_mib": pool.map(|p| p.reserved_high_mib),
            })
        );
    }
    Ok(())
}
