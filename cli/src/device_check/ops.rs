//! The convolution family on the device against the CPU in f64: for each geometry, the
//! forward pass `y = conv2d(x, w)`, the input and weight gradients of `L = <y, g>`, and the
//! second-order gradient `d/dx <dL/dw, v>` (the weight-gradient op differentiated, which runs
//! the input-gradient op: what DC's matching loss does).

use std::time::Instant;

use cafe_framework::nn::conv2d;
use cafe_framework::nn::init::uniform;
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};

use super::{rel_err, Mode, Report, Tolerance};

/// One convolution's shapes: `[n, c, h, w] * [o, c, k, k]`, stride, padding.
struct Geometry {
    what: &'static str,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

const GEOMETRIES: [Geometry; 5] = [
    // The ConvNet's first layer on Fashion-MNIST (1 channel padded by 3, DC's networks.py).
    Geometry {
        what: "convnet layer 1",
        n: 8,
        c: 1,
        h: 28,
        w: 28,
        o: 128,
        k: 3,
        stride: 1,
        padding: 3,
    },
    // Its second and third layers: 128 -> 128 channels.
    Geometry {
        what: "convnet layer 2",
        n: 8,
        c: 128,
        h: 16,
        w: 16,
        o: 128,
        k: 3,
        stride: 1,
        padding: 1,
    },
    // A strided one (ResNet's downsampling).
    Geometry {
        what: "stride 2",
        n: 4,
        c: 3,
        h: 32,
        w: 32,
        o: 64,
        k: 3,
        stride: 2,
        padding: 1,
    },
    // Odd sizes: the stride does not divide, so the input gradient has uncovered rows.
    Geometry {
        what: "5x5 stride 2 odd",
        n: 4,
        c: 16,
        h: 7,
        w: 7,
        o: 8,
        k: 5,
        stride: 2,
        padding: 2,
    },
    // 1x1, no padding.
    Geometry {
        what: "1x1",
        n: 2,
        c: 8,
        h: 9,
        w: 9,
        o: 4,
        k: 1,
        stride: 1,
        padding: 0,
    },
];

/// The tolerance of each mode against the f64 CPU reference.
pub fn tolerance(mode: Mode) -> Tolerance {
    match mode {
        Mode::F64 => Tolerance {
            value: 1e-10,
            why: "f64 on both sides; only the order of the sums differs",
        },
        Mode::F32 => Tolerance {
            value: 1e-4,
            why: "f32 rounding of sums of up to n*h*w = 6272 terms in another order",
        },
        Mode::Tf32 => Tolerance {
            value: 1e-2,
            why: "TF32 rounds each input to 10 mantissa bits (relative 2^-11) before multiplying",
        },
    }
}

/// y, dL/dx, dL/dw, d/dx <dL/dw, v> for `L = <conv2d(x, w), g>`, all detached.
fn family(x: &Tensor, w: &Tensor, g: &Tensor, v: &Tensor, geo: &Geometry) -> Result<[Tensor; 4]> {
    let (xv, wv) = (Var::from_tensor(x)?, Var::from_tensor(w)?);
    let y = conv2d(xv.as_tensor(), wv.as_tensor(), geo.stride, geo.padding)?;
    let grads = (&y * g)?.sum_all()?.backward()?;
    let missing = |what: &str| Error::Other(format!("no gradient for {what}"));
    let dx = grads.get(xv.as_tensor()).ok_or_else(|| missing("x"))?.clone();
    let dw = grads.get(wv.as_tensor()).ok_or_else(|| missing("w"))?.clone();
    let second = (&dw * v)?.sum_all()?.backward()?;
    let dx2 = second
        .get(xv.as_tensor())
        .ok_or_else(|| missing("x in the second-order pass (is CANDLE_GRAD_DO_NOT_DETACH set?)"))?
        .clone();
    Ok([y.detach(), dx.detach(), dw.detach(), dx2.detach()])
}

/// The operands of `geo` from a fixed seed, in f64 on the CPU.
fn operands(geo: &Geometry, seed: u64) -> Result<[Tensor; 4]> {
    let mut rng = rng_from_seed(seed);
    let out_h = (geo.h + 2 * geo.padding - geo.k) / geo.stride + 1;
    let out_w = (geo.w + 2 * geo.padding - geo.k) / geo.stride + 1;
    let cpu = Device::Cpu;
    Ok([
        uniform(&[geo.n, geo.c, geo.h, geo.w], 1.0, DType::F64, &cpu, &mut rng)?,
        uniform(&[geo.o, geo.c, geo.k, geo.k], 1.0, DType::F64, &cpu, &mut rng)?,
        uniform(&[geo.n, geo.o, out_h, out_w], 1.0, DType::F64, &cpu, &mut rng)?,
        uniform(&[geo.o, geo.c, geo.k, geo.k], 1.0, DType::F64, &cpu, &mut rng)?,
    ])
}

fn check_one(device: &Device, geo: &Geometry, seed: u64, report: &mut Report) -> Result<()> {
    let [x, w, g, v] = operands(geo, seed)?;
    let reference = family(&x, &w, &g, &v, geo)?;
    for mode in Mode::ALL {
        let started = Instant::now();
        mode.apply();
        let on = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(mode.dtype())?.to_device(device)?) };
        let computed = (|| family(&on(&x)?, &on(&w)?, &on(&g)?, &on(&v)?, geo))();
        let name = |what: &str| format!("{} {}: {what}", geo.what, mode.name());
        match computed {
            Ok(got) => {
                for (what, (a, b)) in ["forward", "input gradient", "weight gradient", "second order"]
                    .iter()
                    .zip(got.iter().zip(&reference))
                {
                    report.record("ops", &name(what), rel_err(a, b)?, tolerance(mode), started);
                }
            }
            Err(e) => report.failed("ops", &name("all"), &e, started),
        }
    }
    Ok(())
}

/// Every geometry in every mode.
pub fn check(device: &Device, report: &mut Report) {
    for (i, geo) in GEOMETRIES.iter().enumerate() {
        let started = Instant::now();
        if let Err(e) = check_one(device, geo, 100 + i as u64, report) {
            report.failed("ops", geo.what, &e, started);
        }
    }
}
