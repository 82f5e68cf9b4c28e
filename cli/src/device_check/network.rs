//! The default ConvNet (width 128, depth 3, instance norm, ReLU, average pooling: DC's) on the
//! device against the CPU in f64: logits, mean cross-entropy, the gradient of every parameter
//! and of the input pixels; and DC's second-order gradient, the derivative w.r.t. the
//! (synthetic) input of `sum_p <dCE/dp, r_p>` for fixed random `r_p`, which is what
//! differentiating DC's gradient-matching distance computes.

use std::time::Instant;

use cafe_framework::nn::init::uniform;
use cafe_framework::registry::find;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::train::cross_entropy;
use cafe_framework::{Architecture, Error, ImageShape, Mode as NetMode, Result};
use candle_core::{DType, Device, Tensor, Var};

use super::compare::diff_and_scale;
use super::compare::worst;
use super::{Mode, Report, Tolerance};

const SHAPE: ImageShape = ImageShape::new(1, 28, 28);
const CLASSES: usize = 10;
const BATCH: usize = 32;

fn tolerance(mode: Mode, second_order: bool) -> Tolerance {
    match (mode, second_order) {
        (Mode::F64, _) => Tolerance {
            value: 1e-9,
            why: "f64 on both sides through 3 conv + norm layers; only the order of the sums differs",
        },
        (Mode::F32, false) => Tolerance {
            value: 5e-4,
            why: "f32 through 3 conv + instance-norm layers, sums in another order",
        },
        (Mode::F32, true) => Tolerance {
            value: 2e-3,
            why: "f32, a gradient of gradients: the rounding of both passes",
        },
        (Mode::Tf32, false) => Tolerance {
            value: 3e-2,
            why: "TF32 inputs (10 mantissa bits) in every convolution of forward and backward",
        },
        (Mode::Tf32, true) => Tolerance {
            value: 1e-1,
            why: "TF32 in both passes of a gradient of gradients",
        },
    }
}

/// Logits, loss, the parameters' and the input's gradients, and the second-order gradient,
/// for the ConvNet built from seed 0 in `dtype` on `device`, on images `x` and labels `y`.
fn run(device: &Device, dtype: DType, x: &Tensor, y: &Tensor, r_seed: u64) -> Result<Vec<(String, Tensor)>> {
    let arch = find::<dyn Architecture>("convnet")?.instantiate(&serde_json::json!({}))?;
    let net = arch.build(SHAPE, CLASSES, dtype, device, &mut rng_from_seed(0))?;
    let params = net.parameters();
    let xv = Var::from_tensor(&x.to_dtype(dtype)?.to_device(device)?)?;
    let y = y.to_device(device)?;
    let logits = net.logits(xv.as_tensor(), NetMode::Train)?;
    let loss = cross_entropy(&logits, &y)?;
    let grads = loss.backward()?;
    let mut out = vec![("logits".to_string(), logits.detach()), ("loss".into(), loss.detach())];
    let missing = |what: String| Error::Other(format!("no gradient for {what}"));
    let input_grad = grads.get(xv.as_tensor()).ok_or_else(|| missing("the input".into()))?;
    out.push(("input gradient".into(), input_grad.detach()));
    // sum_p <dCE/dp, r_p>, differentiated w.r.t. the input.
    let mut rng = rng_from_seed(r_seed);
    let mut inner: Option<Tensor> = None;
    for (i, p) in params.iter().enumerate() {
        let g = grads
            .get(p.as_tensor())
            .ok_or_else(|| missing(format!("parameter {i}")))?;
        out.push((format!("parameter {i} gradient"), g.detach()));
        let r = uniform(p.dims(), 1.0, DType::F64, &Device::Cpu, &mut rng)?
            .to_dtype(dtype)?
            .to_device(device)?;
        let term = (g * r)?.sum_all()?;
        inner = Some(match inner {
            Some(acc) => (acc + term)?,
            None => term,
        });
    }
    let inner = inner.ok_or_else(|| Error::Other("the network has no parameters".into()))?;
    let second = inner.backward()?;
    let dx2 = second
        .get(xv.as_tensor())
        .ok_or_else(|| missing("the input in the second-order pass".into()))?;
    out.push(("second order".into(), dx2.detach()));
    Ok(out)
}

/// Each result's largest difference from the reference, relative to the reference's largest
/// magnitude, but for gradients never to less than 1e-3 of the largest gradient of the network:
/// a gradient the CPU computes as (almost) zero, such as that of a convolution's bias just
/// before an instance norm (the norm removes every constant), is rounding noise on both sides,
/// and against its own f64 noise (1e-17) any f32 noise would look like a relative error of 1e8.
fn relative_errors(got: &[(String, Tensor)], reference: &[(String, Tensor)]) -> Result<Vec<(String, f64)>> {
    let pairs = got
        .iter()
        .zip(reference)
        .map(|((name, a), (_, b))| Ok((name.clone(), diff_and_scale(a, b)?)))
        .collect::<Result<Vec<_>>>()?;
    let is_gradient = |name: &str| name.ends_with("gradient");
    let largest_gradient = pairs
        .iter()
        .filter(|(n, _)| is_gradient(n))
        .fold(0.0_f64, |m, (_, (_, scale))| m.max(*scale));
    Ok(pairs
        .into_iter()
        .map(|(name, (diff, scale))| {
            let floor = if is_gradient(&name) {
                1e-3 * largest_gradient
            } else {
                0.0
            };
            let scale = scale.max(floor);
            (name, if scale == 0.0 { diff } else { diff / scale })
        })
        .collect())
}

/// The forward/backward and second-order checks in every mode.
pub fn check(device: &Device, report: &mut Report) {
    let started = Instant::now();
    let inputs = (|| -> Result<(Tensor, Tensor)> {
        let x = uniform(
            &SHAPE.batch_dims(BATCH),
            2.0,
            DType::F64,
            &Device::Cpu,
            &mut rng_from_seed(7),
        )?;
        let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
        Ok((x, Tensor::from_vec(labels, BATCH, &Device::Cpu)?))
    })();
    let reference = inputs
        .as_ref()
        .map_err(|e| Error::Other(e.to_string()))
        .and_then(|(x, y)| run(&Device::Cpu, DType::F64, x, y, 8));
    let (Ok((x, y)), Ok(reference)) = (inputs.as_ref(), reference) else {
        report.failed(
            "network",
            "cpu reference",
            &Error::Other("the CPU reference could not be computed".into()),
            started,
        );
        return;
    };
    for mode in Mode::ALL {
        let started = Instant::now();
        mode.apply();
        match run(device, mode.dtype(), x, y, 8) {
            Ok(got) => {
                let errors = relative_errors(&got, &reference);
                match errors {
                    Ok(errors) => {
                        let first = worst(errors.iter().filter(|(n, _)| n != "second order").map(|(_, e)| *e));
                        let second = worst(errors.iter().filter(|(n, _)| n == "second order").map(|(_, e)| *e));
                        let name = format!(
                            "convnet {}: forward + backward (logits, loss, every gradient)",
                            mode.name()
                        );
                        report.record("network", &name, first, tolerance(mode, false), started);
                        let name = format!("convnet {}: DC second order d/dx sum_p <dCE/dp, r_p>", mode.name());
                        report.record("network", &name, second, tolerance(mode, true), started);
                    }
                    Err(e) => report.failed("network", mode.name(), &e, started),
                }
            }
            Err(e) => report.failed("network", &format!("convnet {}", mode.name()), &e, started),
        }
    }
}
