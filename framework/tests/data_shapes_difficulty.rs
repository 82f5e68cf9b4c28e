//! Calibration probe of the `shapes` dataset's difficulty (ignored by default: it trains
//! networks). A ConvNet (DESIGN.md's default: 3 blocks of conv 3x3 -> instance norm -> ReLU ->
//! avg pool, then a linear layer) is trained on a random 10-images-per-class subset with the
//! evaluation protocol's SGD and tested on the whole test split. `shapes` is meant to land
//! roughly between 40 % and 70 % there: learnable, far from saturated.
//!
//! Run: `cargo test -p cafe-framework --test data_shapes_difficulty -- --ignored --nocapture`
//! (env: `PROBE_WIDTH` (default 128), `PROBE_EPOCHS` (300), `PROBE_RUNS` (2), `PROBE_IPC` (10)).

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{conv2d, group_norm, linear, Conv2dConfig, VarBuilder, VarMap};
use rand::seq::SliceRandom;

use cafe_framework::data::{load, LoadOptions};
use cafe_framework::rng::sub_rng;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct ConvNet {
    blocks: Vec<(candle_nn::Conv2d, candle_nn::GroupNorm)>,
    head: candle_nn::Linear,
}

impl ConvNet {
    fn new(vb: VarBuilder, width: usize, classes: usize) -> candle_core::Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut blocks = Vec::new();
        let mut cin = 3;
        for d in 0..3 {
            let conv = conv2d(cin, width, 3, cfg, vb.pp(format!("conv{d}")))?;
            let norm = group_norm(width, width, 1e-5, vb.pp(format!("norm{d}")))?;
            blocks.push((conv, norm));
            cin = width;
        }
        // 16 -> 8 -> 4 -> 2
        let head = linear(width * 2 * 2, classes, vb.pp("head"))?;
        Ok(Self { blocks, head })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (conv, norm) in &self.blocks {
            h = norm.forward(&conv.forward(&h)?)?.relu()?.avg_pool2d(2)?;
        }
        self.head.forward(&h.flatten_from(1)?)
    }
}

#[test]
#[ignore = "trains ConvNets (minutes on a CPU); run by hand to calibrate shapes"]
fn shapes_ipc10_convnet_accuracy() -> cafe_framework::Result<()> {
    let (width, epochs, runs, ipc) = (
        env("PROBE_WIDTH", 128),
        env("PROBE_EPOCHS", 300),
        env("PROBE_RUNS", 2),
        env("PROBE_IPC", 10),
    );
    let device = Device::Cpu;
    let ds = load("shapes", &LoadOptions::default())?;
    let test_idx: Vec<usize> = (0..ds.test.len()).collect();
    let (test_x, test_y) = ds.test.to_tensor(&test_idx, &device)?;
    let mut accs = Vec::new();
    for run in 0..runs {
        let mut rng = sub_rng(1234, &[run as u64]);
        let mut idx = Vec::new();
        for list in ds.train.class_indices(ds.classes) {
            let mut l = list.clone();
            l.shuffle(&mut rng);
            idx.extend_from_slice(&l[..ipc]);
        }
        let (x, y) = ds.train.to_tensor(&idx, &device)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = ConvNet::new(vb, width, ds.classes)?;
        let vars = varmap.all_vars();
        let mut moms: Vec<Tensor> = vars.iter().map(|v| v.zeros_like()).collect::<Result<_, _>>()?;
        let start = std::time::Instant::now();
        for epoch in 0..epochs {
            let lr = if epoch < epochs / 2 { 0.01 } else { 0.001 };
            let loss = candle_nn::loss::cross_entropy(&net.forward(&x)?, &y)?;
            let grads = loss.backward()?;
            for (v, m) in vars.iter().zip(moms.iter_mut()) {
                let Some(g) = grads.get(v) else { continue };
                let g = (g + (v.as_tensor() * 5e-4)?)?;
                *m = ((&*m * 0.9)? + g)?;
                v.set(&(v.as_tensor() - (&*m * lr)?)?)?;
            }
        }
        let pred = net.forward(&test_x)?.argmax(D::Minus1)?;
        let correct = pred.eq(&test_y)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        let acc = correct / ds.test.len() as f32;
        let train_acc = {
            let p = net.forward(&x)?.argmax(D::Minus1)?;
            p.eq(&y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?
        };
        println!(
            "run {run}: width {width}, {epochs} epochs, ipc {ipc}: test accuracy {:.1} % (train {:.1} %) in {:.1} s",
            100.0 * acc,
            100.0 * train_acc,
            start.elapsed().as_secs_f64()
        );
        accs.push(acc);
    }
    let mean = accs.iter().sum::<f32>() / accs.len() as f32;
    println!("mean test accuracy {:.1} %", 100.0 * mean);
    Ok(())
}

/// Writes `$SHAPES_PNG` (default `/tmp/shapes.png`): 10 rows (classes) of 16 train images,
/// scaled 4x, to look at the dataset.
#[test]
#[ignore = "writes a picture for a person to look at"]
fn shapes_picture() -> cafe_framework::Result<()> {
    let (raw, labels) = cafe_framework::data::shapes::raw_split(0, false);
    let (cols, scale, side) = (16usize, 4usize, 16usize);
    let cell = side * scale + 2;
    let (w, h) = (cols * cell, 10 * cell);
    let mut img = image::RgbImage::new(w as u32, h as u32);
    for class in 0..10 {
        let idx: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .take(cols)
            .collect();
        for (col, &i) in idx.iter().enumerate() {
            for y in 0..side * scale {
                for x in 0..side * scale {
                    let p = |c: usize| (raw[i * 768 + c * 256 + (y / scale) * 16 + x / scale] * 255.0) as u8;
                    img.put_pixel(
                        (col * cell + x) as u32,
                        (class * cell + y) as u32,
                        image::Rgb([p(0), p(1), p(2)]),
                    );
                }
            }
        }
    }
    let path = std::env::var("SHAPES_PNG").unwrap_or_else(|_| "/tmp/shapes.png".into());
    img.save(&path)
        .map_err(|e| cafe_framework::Error::Other(e.to_string()))?;
    println!("wrote {path}");
    Ok(())
}
