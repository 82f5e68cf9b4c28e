//! `cafe-lab device-check` (hidden; run by scripts/cuda/device_check.sh): checks that a device
//! computes what the CPU computes. Each check runs the same numbers (every random draw is
//! cafe-lab's own seeded RNG, so CPU and GPU start from identical tensors) on the CPU and on
//! the device and compares, as the largest difference relative to the largest magnitude of
//! the CPU's result, against a stated tolerance:
//!
//! - `ops`: each op of the convolution family and its gradients (forward; input and weight
//!   gradient; the second-order `d/dx <dL/dw, v>`) on several geometries, in f64, f32 and f32
//!   with TF32 (`ops.rs`);
//! - `network`: the default ConvNet's logits, loss and every gradient (parameters and input
//!   pixels), and DC's second-order gradient `d/dx sum_p <dCE/dp, r_p>` (`network.rs`);
//! - `methods`: one condensation iteration of DM, DC, DSA, CAFE and MTT through the CLI on the
//!   embedded `shapes` set, the synthetic sets compared (`methods.rs`);
//! - `nccl` (builds with the `nccl` feature): NCCL's collectives in a world of size 1
//!   (`nccl.rs`).
//!
//! `cafe-lab device-check [--device cuda[:N]] [--out DIR] [--parts ops,network,methods,nccl]`
//! prints one line per check, writes `DIR/device_check.json` and `DIR/device_check.md`, and
//! exits 1 when a check fails or errs (a check that errs is recorded and the others still run).

mod compare;
mod methods;
mod nccl;
mod network;
mod ops;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use cafe_framework::gpu::{compute_info, Precision};
use cafe_framework::run::open_device;
use cafe_framework::{Error, Result};
use candle_core::Device;
use serde::Serialize;

pub(crate) use compare::{rel_err, Tolerance};

/// One comparison of the device against the CPU.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub part: String,
    pub name: String,
    /// Largest |device - cpu| over the largest |cpu|; None when the check erred.
    pub rel_err: Option<f64>,
    pub tolerance: f64,
    pub passed: bool,
    pub seconds: f64,
    /// The error, or what the tolerance stands for.
    pub note: String,
}

/// Collects checks as they run and prints each.
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Records `rel_err` against `tol` for `part`/`name`.
    pub fn record(&mut self, part: &str, name: &str, rel_err: f64, tol: Tolerance, started: Instant) {
        let passed = rel_err.is_finite() && rel_err <= tol.value;
        self.push(Check {
            part: part.into(),
            name: name.into(),
            rel_err: Some(rel_err),
            tolerance: tol.value,
            passed,
            seconds: started.elapsed().as_secs_f64(),
            note: tol.why.into(),
        });
    }

    /// Records a check that could not run to the end.
    pub fn failed(&mut self, part: &str, name: &str, e: &Error, started: Instant) {
        self.push(Check {
            part: part.into(),
            name: name.into(),
            rel_err: None,
            tolerance: f64::NAN,
            passed: false,
            seconds: started.elapsed().as_secs_f64(),
            note: format!("error: {e}"),
        });
    }

    fn push(&mut self, c: Check) {
        let value = c.rel_err.map_or("-".into(), |v| format!("{v:.2e}"));
        eprintln!(
            "{} {}/{}: {value} (tolerance {:.0e}, {:.1} s){}",
            if c.passed { "ok  " } else { "FAIL" },
            c.part,
            c.name,
            c.tolerance,
            c.seconds,
            if c.rel_err.is_none() {
                format!(" {}", c.note)
            } else {
                String::new()
            }
        );
        self.checks.push(c);
    }
}

/// The three precisions each device computation is checked in: f64, f32 with FP32 math, f32
/// with TF32 allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    F64,
    F32,
    Tf32,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::F64, Mode::F32, Mode::Tf32];

    pub fn name(self) -> &'static str {
        match self {
            Mode::F64 => "f64",
            Mode::F32 => "f32",
            Mode::Tf32 => "f32-tf32",
        }
    }

    pub fn dtype(self) -> candle_core::DType {
        match self {
            Mode::F64 => candle_core::DType::F64,
            _ => candle_core::DType::F32,
        }
    }

    /// Sets the process's convolution precision for this mode.
    pub fn apply(self) {
        cafe_framework::gpu::set_precision(if self == Mode::Tf32 {
            Precision::Tf32
        } else {
            Precision::Fp32
        });
    }
}

struct Args {
    device: String,
    out: Option<PathBuf>,
    parts: Vec<String>,
}

const PARTS: [&str; 4] = ["ops", "network", "methods", "nccl"];

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        device: "cuda".into(),
        out: None,
        // NCCL only where it was built; asked for explicitly elsewhere, it fails as not built.
        parts: PARTS
            .iter()
            .filter(|p| **p != "nccl" || cfg!(feature = "nccl"))
            .map(|s| s.to_string())
            .collect(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| Error::invalid(flag, "", "needs a value"))
        };
        match flag.as_str() {
            "--device" => a.device = value()?,
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--parts" => {
                let v = value()?;
                a.parts = v.split(',').map(str::to_string).collect();
                if let Some(bad) = a.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    return Err(Error::invalid(
                        "--parts",
                        bad,
                        format!("parts are {}", PARTS.join(", ")),
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    "device-check argument",
                    flag,
                    "usage: cafe-lab device-check [--device cuda[:N]] [--out DIR] [--parts ops,network,methods,nccl]",
                ))
            }
        }
    }
    Ok(a)
}

/// The whole command; `args` without the program name and `device-check`.
pub fn run(args: &[String]) -> ExitCode {
    match run_checks(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("device-check: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_checks(args: &[String]) -> Result<bool> {
    let args = parse(args)?;
    // DC's loss differentiates gradients (CANDLE_NOTES 1): on for the whole process, before any
    // backward pass.
    cafe_framework::enable_second_order_gradients();
    let device = open_device(&args.device, Precision::Fp32)?;
    let started = Instant::now();
    let mut report = Report { checks: Vec::new() };
    for part in &args.parts {
        match part.as_str() {
            "ops" => ops::check(&device, &mut report),
            "network" => network::check(&device, &mut report),
            "nccl" => nccl::check(&device, &mut report),
            _ => methods::check(&args.device, &mut report),
        }
    }
    cafe_framework::gpu::set_precision(Precision::Fp32);
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    eprintln!(
        "device-check: {} checks, {failed} failed, {:.1} s",
        report.checks.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(out) = &args.out {
        write(out, &device, &report, started.elapsed().as_secs_f64())?;
    }
    Ok(failed == 0)
}

fn write(out: &std::path::Path, device: &Device, report: &Report, seconds: f64) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    let json = serde_json::json!({
        "compute": compute_info(device),
        "checks": report.checks,
        "failed": failed,
        "seconds": seconds,
    });
    let path = out.join("device_check.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let mut md = format!(
        "# Device check: {} against the CPU\n\n{} checks, {failed} failed, {seconds:.1} s. Relative error: largest \
         |device - cpu| over the largest |cpu| (for the network's gradients, over at least 1e-3 of its \
         largest gradient).\n\n| part | check | relative error | tolerance | result | s | note |\n\
         |---|---|---:|---:|---|---:|---|\n",
        compute_info(device).gpu.unwrap_or_else(|| format!("{device:?}")),
        report.checks.len()
    );
    for c in &report.checks {
        md.push_str(&format!(
            "| {} | {} | {} | {:.0e} | {} | {:.1} | {} |\n",
            c.part,
            c.name,
            c.rel_err.map_or("-".into(), |v| format!("{v:.2e}")),
            c.tolerance,
            if c.passed { "ok" } else { "**FAIL**" },
            c.seconds,
            c.note.replace('|', "/")
        ));
    }
    let path = out.join("device_check.md");
    std::fs::write(&path, md).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_are_every_built_part_on_the_first_gpu() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.device, "cuda");
        assert!(a.out.is_none());
        let mut want = vec!["ops", "network", "methods"];
        if cfg!(feature = "nccl") {
            want.push("nccl");
        }
        assert_eq!(a.parts, want);
    }

    #[test]
    fn flags_are_read() {
        let a = parse(&args(&["--device", "cuda:1", "--out", "x/y", "--parts", "network,ops"])).unwrap();
        assert_eq!(a.device, "cuda:1");
        assert_eq!(a.out, Some(PathBuf::from("x/y")));
        assert_eq!(a.parts, ["network", "ops"]);
    }

    #[test]
    fn bad_arguments_are_refused_with_what_is_valid() {
        let e = parse(&args(&["--parts", "ops,speed"])).err().unwrap().to_string();
        assert!(e.contains("speed") && e.contains("ops, network, methods, nccl"), "{e}");
        let e = parse(&args(&["--out"])).err().unwrap().to_string();
        assert!(e.contains("--out") && e.contains("needs a value"), "{e}");
        let e = parse(&args(&["--fast"])).err().unwrap().to_string();
        assert!(
            e.contains("--fast") && e.contains("usage: cafe-lab device-check"),
            "{e}"
        );
    }
}
