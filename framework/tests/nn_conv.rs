//! The fast convolution against candle's `conv2d` (forward and autograd) and against central
//! finite differences in f64, to first and second order, by both of its algorithms (Winograd
//! F(2x2, 3x3) and im2col), and the two algorithms against each other at the sizes networks use.

use cafe_framework::nn::{conv2d, with_conv_algorithm, ConvAlgorithm};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::{Result, Rng};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;

/// Runs `test` once with every 3x3 stride-1 convolution forced through Winograd (whatever its
/// channels) and once through im2col: the small shapes of these tests would otherwise never
/// take the Winograd path.
fn both_algorithms(test: fn() -> Result<()>) -> Result<()> {
    for algorithm in [ConvAlgorithm::Winograd, ConvAlgorithm::Im2col] {
        with_conv_algorithm(algorithm, test)
            .map_err(|e| cafe_framework::Error::Other(format!("with {algorithm:?}: {e}")))?;
    }
    Ok(())
}

fn randn(shape: &[usize], dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims());
    Ok((a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?)
}

fn max_abs(a: &Tensor) -> Result<f64> {
    Ok(a.to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?)
}

/// Every (stride, padding, kernel) combination of the spec whose padded input fits the kernel.
fn cases() -> Vec<(usize, usize, usize)> {
    let mut out = vec![];
    for stride in [1, 2] {
        for padding in 0..=3 {
            for k in [1, 3, 5] {
                out.push((stride, padding, k));
            }
        }
    }
    out
}

#[test]
fn forward_matches_candle() -> Result<()> {
    both_algorithms(forward_matches_candle_by)
}

fn forward_matches_candle_by() -> Result<()> {
    let mut rng = rng_from_seed(1);
    for (dtype, tol) in [(DType::F32, 1e-4), (DType::F64, 1e-11)] {
        // Batches of 2 and 5 exercise both parallel paths (inside gemm / by image).
        for (n, c, h, w, o) in [(2, 3, 7, 9, 4), (5, 2, 6, 5, 3)] {
            for (stride, padding, k) in cases() {
                let x = randn(&[n, c, h, w], dtype, &mut rng)?;
                let wt = randn(&[o, c, k, k], dtype, &mut rng)?;
                let ours = conv2d(&x, &wt, stride, padding)?;
                let theirs = x.conv2d(&wt, padding, stride, 1, 1)?;
                let d = max_abs_diff(&ours, &theirs)?;
                assert!(
                    d < tol * max_abs(&theirs)?.max(1.0),
                    "{dtype:?} s{stride} p{padding} k{k}: {d}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn forward_of_non_contiguous_input() -> Result<()> {
    let mut rng = rng_from_seed(2);
    let x = randn(&[3, 2, 6, 7], DType::F32, &mut rng)?.transpose(2, 3)?;
    let w = randn(&[4, 2, 3, 3], DType::F32, &mut rng)?;
    let d = max_abs_diff(&conv2d(&x, &w, 1, 1)?, &x.conv2d(&w, 1, 1, 1, 1)?)?;
    assert!(d < 1e-5, "{d}");
    Ok(())
}

/// candle 0.11.1's own conv backward fails with stride 2 when height and width differ in parity
/// (it sizes the input gradient from the height alone: "shape mismatch in add, lhs: [.., 7, 8],
/// rhs: [.., 7, 7]"), so the comparison uses 7x9 inputs; the finite-difference test below
/// covers 5x6.
#[test]
fn first_order_gradients_match_candle_autograd() -> Result<()> {
    both_algorithms(first_order_gradients_match_candle_autograd_by)
}

fn first_order_gradients_match_candle_autograd_by() -> Result<()> {
    let mut rng = rng_from_seed(3);
    for (dtype, tol) in [(DType::F32, 1e-4), (DType::F64, 1e-11)] {
        for (stride, padding, k) in cases() {
            let x = Var::from_tensor(&randn(&[2, 3, 7, 9], dtype, &mut rng)?)?;
            let w = Var::from_tensor(&randn(&[4, 3, k, k], dtype, &mut rng)?)?;
            let ours = conv2d(&x, &w, stride, padding)?;
            let r = randn(ours.dims(), dtype, &mut rng)?;
            let g_ours = (ours * &r)?.sum_all()?.backward()?;
            let theirs = x.conv2d(&w, padding, stride, 1, 1)?;
            let g_theirs = (theirs * &r)?.sum_all()?.backward()?;
            for (name, v) in [("x", &x), ("w", &w)] {
                let (a, b) = (g_ours.get(v).expect("our grad"), g_theirs.get(v).expect("candle grad"));
                let d = max_abs_diff(a, b)?;
                assert!(
                    d < tol * max_abs(b)?.max(1.0),
                    "{dtype:?} d{name} s{stride} p{padding} k{k}: {d}"
                );
            }
        }
    }
    Ok(())
}

/// Central finite differences of `f` at `x` for the listed flat coordinates.
fn finite_differences(f: &dyn Fn(&Tensor) -> Result<f64>, x: &Tensor, coords: &[usize], eps: f64) -> Result<Vec<f64>> {
    let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
    coords
        .iter()
        .map(|&i| {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                f(&Tensor::from_vec(v, x.dims(), x.device())?)
            };
            Ok((at(eps)? - at(-eps)?) / (2.0 * eps))
        })
        .collect()
}

fn assert_close(auto: &[f64], fd: &[f64], rel: f64, what: &str) {
    let scale = fd.iter().chain(auto).fold(1e-3_f64, |m, v| m.max(v.abs()));
    for (i, (a, f)) in auto.iter().zip(fd).enumerate() {
        assert!(
            (a - f).abs() <= rel * scale,
            "{what}[{i}]: autograd {a} vs finite differences {f}"
        );
    }
}

#[test]
fn first_order_gradients_match_finite_differences() -> Result<()> {
    both_algorithms(first_order_gradients_match_finite_differences_by)
}

fn first_order_gradients_match_finite_differences_by() -> Result<()> {
    let mut rng = rng_from_seed(4);
    for (stride, padding, k) in cases() {
        let x = randn(&[2, 2, 5, 6], DType::F64, &mut rng)?;
        let w = randn(&[3, 2, k, k], DType::F64, &mut rng)?;
        let r = randn(conv2d(&x, &w, stride, padding)?.dims(), DType::F64, &mut rng)?;
        let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
        let grads = (conv2d(&xv, &wv, stride, padding)? * &r)?.sum_all()?.backward()?;
        let loss = |x: &Tensor, w: &Tensor| -> Result<f64> {
            Ok((conv2d(x, w, stride, padding)? * &r)?.sum_all()?.to_scalar()?)
        };
        let all = |t: &Tensor| (0..t.elem_count()).collect::<Vec<_>>();
        let fd_x = finite_differences(&|x| loss(x, &w), &x, &all(&x), 1e-4)?;
        let fd_w = finite_differences(&|w| loss(&x, w), &w, &all(&w), 1e-4)?;
        let auto = |v: &Var| -> Result<Vec<f64>> { Ok(grads.get(v).expect("grad").flatten_all()?.to_vec1()?) };
        assert_close(&auto(&xv)?, &fd_x, 1e-8, &format!("dx s{stride} p{padding} k{k}"));
        assert_close(&auto(&wv)?, &fd_w, 1e-8, &format!("dw s{stride} p{padding} k{k}"));
    }
    Ok(())
}

/// DC differentiates a weight gradient w.r.t. the input pixels. Here `L = sum(conv(sqr(conv(x,
/// w1)), w2) * r)` and `S = <dL/dw1, q1> + <dL/dw2, q2> + <dL/dx, q3>`, which goes through the
/// backward of all three ops of the family; dS/dx must match finite differences of S.
#[test]
fn second_order_gradient_matches_finite_differences() -> Result<()> {
    both_algorithms(second_order_gradient_matches_finite_differences_by)
}

fn second_order_gradient_matches_finite_differences_by() -> Result<()> {
    // Read by candle once per thread at its first backward: set before any backward here.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let mut rng = rng_from_seed(5);
    for (stride, padding, k) in [(1, 1, 3), (2, 1, 3), (2, 0, 3), (1, 3, 1), (2, 2, 5)] {
        let x = randn(&[2, 2, 7, 6], DType::F64, &mut rng)?;
        let w1 = Var::from_tensor(&randn(&[3, 2, k, k], DType::F64, &mut rng)?)?;
        let w2 = Var::from_tensor(&randn(&[2, 3, 3, 3], DType::F64, &mut rng)?)?;
        let h = conv2d(&x, &w1, stride, padding)?;
        let y = conv2d(&h.sqr()?, &w2, 1, 1)?;
        let r = randn(y.dims(), DType::F64, &mut rng)?;
        let q1 = randn(w1.dims(), DType::F64, &mut rng)?;
        let q2 = randn(w2.dims(), DType::F64, &mut rng)?;
        let q3 = randn(x.dims(), DType::F64, &mut rng)?;
        // S as a differentiable tensor of a variable input.
        let s_of = |x: &Var| -> Result<Tensor> {
            let h = conv2d(x, &w1, stride, padding)?;
            let loss = (conv2d(&h.sqr()?, &w2, 1, 1)? * &r)?.sum_all()?;
            let g = loss.backward()?;
            let term = |v: &Tensor, q: &Tensor| -> Result<Tensor> {
                Ok((g.get(v).expect("first-order grad") * q)?.sum_all()?)
            };
            Ok(((term(&w1, &q1)? + term(&w2, &q2)?)? + term(x, &q3)?)?)
        };
        let xv = Var::from_tensor(&x)?;
        let ds = s_of(&xv)?.backward()?;
        let auto: Vec<f64> = ds
            .get(&xv)
            .expect("second-order grad reaches x")
            .flatten_all()?
            .to_vec1()?;
        let coords: Vec<usize> = (0..x.elem_count()).step_by(3).collect();
        let fd = finite_differences(
            &|x| Ok(s_of(&Var::from_tensor(x)?)?.to_scalar::<f64>()?),
            &x,
            &coords,
            1e-5,
        )?;
        let picked: Vec<f64> = coords.iter().map(|&i| auto[i]).collect();
        assert!(
            picked.iter().any(|v| v.abs() > 1e-3),
            "second-order gradient is not trivially zero"
        );
        assert_close(&picked, &fd, 1e-7, &format!("d2 s{stride} p{padding} k{k}"));
    }
    Ok(())
}

#[test]
fn bad_shapes_are_errors_not_panics() -> Result<()> {
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu)?;
    let w = |c: usize, k: usize| Tensor::zeros((2, c, k, k), DType::F32, &Device::Cpu);
    assert!(conv2d(&x, &w(2, 3)?, 1, 1).is_err(), "channel mismatch");
    assert!(conv2d(&x, &w(3, 3)?, 0, 1).is_err(), "stride 0");
    assert!(conv2d(&x, &w(3, 7)?, 1, 1).is_err(), "kernel larger than padded input");
    assert!(
        conv2d(&x, &Tensor::zeros((2, 3, 3, 2), DType::F32, &Device::Cpu)?, 1, 1).is_err(),
        "non-square"
    );
    assert!(conv2d(&x.flatten_all()?, &w(3, 3)?, 1, 1).is_err(), "rank");
    assert!(
        conv2d(&x.to_dtype(DType::F64)?, &w(3, 3)?, 1, 1).is_err(),
        "dtype mismatch"
    );
    // An empty batch is fine and stays empty.
    let empty = Tensor::zeros((0, 3, 4, 4), DType::F32, &Device::Cpu)?;
    assert_eq!(conv2d(&empty, &w(3, 3)?, 1, 1)?.dims(), &[0, 2, 4, 4]);
    Ok(())
}

/// Output, input gradient and weight gradient of `conv2d(x, w, 1, padding) * r` under one
/// algorithm, as flat f64 vectors.
fn conv_and_grads(
    algorithm: ConvAlgorithm,
    x: &Tensor,
    w: &Tensor,
    r: &Tensor,
    padding: usize,
) -> Result<[Vec<f64>; 3]> {
    with_conv_algorithm(algorithm, || {
        let (xv, wv) = (Var::from_tensor(x)?, Var::from_tensor(w)?);
        let y = conv2d(&xv, &wv, 1, padding)?;
        let g = (&y * r)?.sum_all()?.backward()?;
        let flat = |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?) };
        Ok([
            flat(&y)?,
            flat(g.get(&xv).expect("dx"))?,
            flat(g.get(&wv).expect("dw"))?,
        ])
    })
}

/// Winograd against im2col at network sizes: channels on both sides of the `Auto` threshold,
/// even and odd outputs (the last 2x2 tile half outside), paddings 0 to 2, and batches of one
/// chunk, several chunks and a short last chunk (512 tiles per chunk: 8 images of 16x16).
#[test]
fn winograd_equals_im2col_at_network_sizes() -> Result<()> {
    let mut rng = rng_from_seed(6);
    for (dtype, tol) in [(DType::F32, 2e-5), (DType::F64, 1e-13)] {
        for (n, c, o, h, w, padding) in [
            (3, 16, 24, 16, 16, 1),
            (20, 32, 16, 16, 16, 1),
            (9, 16, 3, 15, 13, 0),
            (5, 20, 8, 7, 7, 1),
            (2, 3, 16, 32, 32, 2),
        ] {
            let x = randn(&[n, c, h, w], dtype, &mut rng)?;
            let k = randn(&[o, c, 3, 3], dtype, &mut rng)?;
            let r = randn(&[n, o, h + 2 * padding - 2, w + 2 * padding - 2], dtype, &mut rng)?;
            let wino = conv_and_grads(ConvAlgorithm::Winograd, &x, &k, &r, padding)?;
            let direct = conv_and_grads(ConvAlgorithm::Im2col, &x, &k, &r, padding)?;
            for (what, a, b) in [
                ("y", &wino[0], &direct[0]),
                ("dx", &wino[1], &direct[1]),
                ("dw", &wino[2], &direct[2]),
            ] {
                let scale = b.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
                let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(
                    worst <= tol * scale,
                    "{dtype:?} n{n} c{c} o{o} {h}x{w} p{padding} {what}: {worst} (scale {scale})"
                );
            }
        }
    }
    Ok(())
}

/// The default takes Winograd from 64 input channels (of the correlation: the input's for the
/// forward and the weight gradient, the output's for the input gradient): a 64-to-64-channel
/// convolution under `Auto` gives Winograd's bits, a 32-to-32-channel one im2col's.
#[test]
fn auto_takes_winograd_from_64_channels() -> Result<()> {
    let mut rng = rng_from_seed(7);
    for (c, expect, other) in [
        (64, ConvAlgorithm::Winograd, ConvAlgorithm::Im2col),
        (32, ConvAlgorithm::Im2col, ConvAlgorithm::Winograd),
    ] {
        let x = randn(&[4, c, 12, 12], DType::F32, &mut rng)?;
        let k = randn(&[c, c, 3, 3], DType::F32, &mut rng)?;
        let r = randn(&[4, c, 12, 12], DType::F32, &mut rng)?;
        let auto = conv_and_grads(ConvAlgorithm::Auto, &x, &k, &r, 1)?;
        assert!(
            auto == conv_and_grads(expect, &x, &k, &r, 1)?,
            "{c} channels: not {expect:?}"
        );
        // The paths differ in rounding, so the test can tell which one ran.
        assert!(
            auto != conv_and_grads(other, &x, &k, &r, 1)?,
            "{c} channels: same as {other:?}"
        );
    }
    Ok(())
}

/// A seeded run repeats bit for bit on any number of threads: Winograd's chunks and its weight
/// gradient's partial sums are fixed by the shapes, not by the thread count.
#[test]
fn winograd_is_bitwise_identical_across_thread_counts() -> Result<()> {
    let mut rng = rng_from_seed(8);
    let x = randn(&[40, 16, 16, 16], DType::F32, &mut rng)?;
    let k = randn(&[16, 16, 3, 3], DType::F32, &mut rng)?;
    let r = randn(&[40, 16, 16, 16], DType::F32, &mut rng)?;
    let on = |threads: usize| -> Result<[Vec<f64>; 3]> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| conv_and_grads(ConvAlgorithm::Winograd, &x, &k, &r, 1))
    };
    let one = on(1)?;
    for threads in [2, 3, 8] {
        assert!(on(threads)? == one, "{threads} threads");
    }
    Ok(())
}

#[test]
fn conv_algorithm_names_parse_and_typos_name_the_valid_ones() {
    assert_eq!("winograd".parse::<ConvAlgorithm>().ok(), Some(ConvAlgorithm::Winograd));
    assert_eq!(" IM2COL ".parse::<ConvAlgorithm>().ok(), Some(ConvAlgorithm::Im2col));
    assert_eq!("auto".parse::<ConvAlgorithm>().ok(), Some(ConvAlgorithm::Auto));
    let e = "winograt".parse::<ConvAlgorithm>().unwrap_err().to_string();
    assert!(e.contains("CAFE_CONV") && e.contains("auto, winograd, im2col"), "{e}");
}
