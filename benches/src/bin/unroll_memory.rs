//! `cafe-unroll-memory [--width W] [--ipc I] [--steps 10,20,40]`: peak live heap and time of one
//! trajectory-matching gradient (MTT's unrolled student) computed through the reference's one
//! graph and through the constant-memory reverse pass, as `syn_steps` grows; one JSON line per
//! (unroll, steps). The loss and the gradients are the same (plugins/tests/trajectory_gradcheck.rs);
//! this measures what they cost. Inputs are random (Fashion-MNIST's 1x28x28 shape, 10 classes),
//! which does not change what is allocated.

use std::process::ExitCode;
use std::time::Instant;

use cafe_benches::live_bytes::LiveBytes;
use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::synthetic::class_major_labels;
use cafe_framework::trajectory::{Student, StudentStep, Targets, Unroll};
use cafe_framework::{Architecture, Augmenter, Error, ImageShape, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

use cafe_plugins as _;

const CLASSES: usize = 10;

fn mib(bytes: usize) -> f64 {
    (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0
}

fn run() -> Result<()> {
    let (mut width, mut ipc, mut steps_list) = (128usize, 1usize, vec![10usize, 20, 40]);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| Error::invalid(&a, "", "needs a value"));
        match a.as_str() {
            "--width" => {
                width = value()?
                    .parse()
                    .map_err(|_| Error::invalid("--width", "", "a number"))?
            }
            "--ipc" => ipc = value()?.parse().map_err(|_| Error::invalid("--ipc", "", "a number"))?,
            "--steps" => {
                steps_list = value()?
                    .split(',')
                    .map(|s| {
                        s.parse()
                            .map_err(|_| Error::invalid("--steps", s, "comma-separated numbers"))
                    })
                    .collect::<Result<_>>()?
            }
            _ => return Err(Error::invalid("argument", &a, "--width W --ipc I --steps 10,20,40")),
        }
    }
    cafe_framework::enable_second_order_gradients();
    let device = Device::Cpu;
    let shape = ImageShape::new(1, 28, 28);
    let arch = find::<dyn Architecture>("convnet")?.instantiate(&json!({ "width": width }))?;
    let none = find::<dyn Augmenter>("none")?.instantiate(&json!({}))?;
    let mut rng = rng_from_seed(0);
    let net = arch.build(shape, CLASSES, DType::F32, &device, &mut rng)?;
    let start: Vec<Tensor> = net.parameters().iter().map(|p| p.as_tensor().detach()).collect();
    let target = start.iter().map(|p| Ok((p + 0.01)?)).collect::<Result<Vec<Tensor>>>()?;
    let n = CLASSES * ipc;
    let images = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape.batch_dims(n).to_vec(), &device)?)?;
    let labels = class_major_labels(CLASSES, ipc, &device)?;
    let lr = Var::from_tensor(&Tensor::new(0.01f32, &device)?)?;
    let student = Student {
        network: net.as_ref(),
        images: &images,
        targets: Targets::Labels(&labels),
        lr: &lr,
        augmenter: none.as_ref(),
    };
    let all: Vec<u32> = (0..n as u32).collect();
    for how in [Unroll::Reverse, Unroll::Graph] {
        for &steps in &steps_list {
            let plan: Vec<StudentStep> = (0..steps)
                .map(|k| {
                    Ok(StudentStep {
                        rows: Tensor::new(all.as_slice(), &device)?,
                        augment_seed: k as u64,
                    })
                })
                .collect::<Result<_>>()?;
            let before = LiveBytes::live();
            LiveBytes::reset_peak();
            let t = Instant::now();
            let out = student.match_trajectory(&start, &target, &plan, how)?;
            let seconds = t.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({
                    "unroll": format!("{how:?}").to_lowercase(),
                    "syn_steps": steps,
                    "width": width,
                    "images": n,
                    "peak_live_mib_above_start": mib(LiveBytes::peak() - before),
                    "seconds": (seconds * 100.0).round() / 100.0,
                    "loss": out.loss,
                })
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
