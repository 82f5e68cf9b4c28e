//! ZCA whitening (`cafe_framework::data::Zca`) against what kornia's `ZCAWhitening` computes
//! (`kornia/enhance/zca.py`, which mtt-distillation `utils.py:147` fits with eps 0.1): kornia's
//! own worked example, whitened covariance = identity, eps added to the eigenvalues inside the
//! square root, the inverse, the test set whitened with the train fit, bad settings refused,
//! and loading a dataset whitened.

use cafe_framework::data::{load, shapes, ImageSet, LoadOptions, Zca, ZCA_EPS};
use cafe_framework::ImageShape;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn set(images: Vec<f32>, shape: ImageShape) -> ImageSet {
    let n = images.len() / shape.numel();
    ImageSet {
        images,
        labels: vec![0; n],
        shape,
    }
}

/// `n` images of 3x2x2 whose 12 values are correlated: `x = A z + b` with `z` standard normal.
fn correlated(n: usize, seed: u64) -> ImageSet {
    let d = 12;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a: Vec<f64> = (0..d * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f64> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mut images = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f64> = (0..d)
            .map(|_| {
                // Box-Muller: a standard normal from two uniforms.
                let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        for i in 0..d {
            let x: f64 = (0..d).map(|j| a[i * d + j] * z[j]).sum::<f64>() + b[i];
            images.push(x as f32);
        }
    }
    set(images, ImageShape::new(3, 2, 2))
}

/// Mean and unbiased covariance of the rows, in f64.
fn moments(values: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = values.len() / d;
    let mut mean = vec![0.0; d];
    for row in values.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / n as f64;
        }
    }
    let mut cov = vec![0.0; d * d];
    for row in values.chunks_exact(d) {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (row[i] as f64 - mean[i]) * (row[j] as f64 - mean[j]) / (n - 1) as f64;
            }
        }
    }
    (mean, cov)
}

#[test]
fn kornias_worked_example() {
    // kornia/enhance/zca.py, `zca_whiten` docstring: x = [[0,1],[1,0],[-1,0]] whitens to
    // [[0, 1.1547], [1, -0.5773], [-1, -0.5773]] with the default eps 1e-6.
    let mut x = set(vec![0., 1., 1., 0., -1., 0.], ImageShape::new(1, 1, 2));
    let zca = Zca::fit(&x, 1e-6).unwrap();
    zca.whiten(&mut x.images);
    let want = [0.0, 1.1547, 1.0, -0.57735, -1.0, -0.57735];
    for (got, want) in x.images.iter().zip(want) {
        assert!((got - want).abs() < 1e-4, "{:?}", x.images);
    }
}

#[test]
fn matches_kornia_on_a_correlated_dataset() {
    // 200 images of 3x4x4: x[n, f] = frac(sin(12.9898 n + 78.233 f) * 43758.5453), then
    // y[n, f] = x[n, f] + 0.5 x[n, f - 1]. The expected values are what kornia 0.9.0's
    // `ZCAWhitening(eps=0.1, compute_inv=True)` (the reference's call, mtt-distillation
    // utils.py:147) gives on the same numbers, in float32 on CPU with PyTorch 2
    // (scripts/reference/kornia_zca.py prints them).
    let (n, d) = (200, 48);
    let frac = |v: f64| v - v.floor();
    let x: Vec<f64> = (0..n * d)
        .map(|k| frac(((k / d) as f64 * 12.9898 + (k % d) as f64 * 78.233).sin() * 43758.5453))
        .collect();
    let y: Vec<f32> = (0..n * d)
        .map(|k| (x[k] + if k % d > 0 { 0.5 * x[k - 1] } else { 0.0 }) as f32)
        .collect();
    let mut images = set(y, ImageShape::new(3, 4, 4));
    let kornia = [
        (0, 0, 0.0, -1.067631721496582),
        (0, 47, 0.7906931042671204, -0.015462863259017467),
        (17, 5, 0.6995444297790527, -0.055722448974847794),
        (123, 30, 0.941794216632843, 0.44040635228157043),
        (199, 46, 1.2807109355926514, 1.0185798406600952),
    ];
    for &(i, f, input, _) in &kornia {
        assert!(
            (images.images[i * d + f] as f64 - input).abs() < 1e-6,
            "input ({i}, {f})"
        );
    }
    let zca = Zca::fit(&images, 0.1).unwrap();
    zca.whiten(&mut images.images);
    for (i, f, _, want) in kornia {
        let got = images.images[i * d + f] as f64;
        assert!((got - want).abs() < 1e-4, "({i}, {f}): {got} vs kornia {want}");
    }
}

#[test]
fn whitened_images_have_zero_mean_and_identity_covariance() {
    let mut x = correlated(2000, 1);
    let zca = Zca::fit(&x, 1e-9).unwrap();
    zca.whiten(&mut x.images);
    let (mean, cov) = moments(&x.images, 12);
    for (i, m) in mean.iter().enumerate() {
        assert!(m.abs() < 1e-4, "mean[{i}] = {m}");
    }
    for i in 0..12 {
        for j in 0..12 {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (cov[i * 12 + j] - want).abs() < 1e-3,
                "cov[{i},{j}] = {}",
                cov[i * 12 + j]
            );
        }
    }
}

#[test]
fn eps_is_added_to_the_eigenvalues_under_the_square_root() {
    // With eps far above every eigenvalue, T = U diag(1/sqrt(S + eps)) U^T ~ I / sqrt(eps):
    // the whitening is a centring and a scaling by 1/sqrt(eps).
    let x = correlated(500, 2);
    let eps = 1e8;
    let zca = Zca::fit(&x, eps).unwrap();
    let mut w = x.images.clone();
    zca.whiten(&mut w);
    let (mean, _) = moments(&x.images, 12);
    for (k, (&got, &orig)) in w.iter().zip(&x.images).enumerate() {
        let want = (orig as f64 - mean[k % 12]) / eps.sqrt();
        assert!(
            (got as f64 - want).abs() < 1e-3 * want.abs() + 1e-7,
            "{k}: {got} vs {want}"
        );
    }
}

#[test]
fn unwhiten_inverts_whiten_and_the_test_set_uses_the_train_fit() {
    let train = correlated(300, 3);
    let mut test = correlated(50, 4);
    let original_test = test.images.clone();
    let mut w_train = train.clone();
    let zca = Zca::fit_and_whiten(&mut w_train, &mut test, ZCA_EPS).unwrap();
    let back = zca.unwhiten(&test.images);
    for (a, b) in back.iter().zip(&original_test) {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // A train image whitened on its own lands where the fitted set put it: one transform.
    let mut first = train.image(0).to_vec();
    zca.whiten(&mut first);
    assert_eq!(first, w_train.image(0));
    // The same data fits the same transform, bit for bit.
    assert_eq!(Zca::fit(&train, ZCA_EPS).unwrap(), zca);
}

#[test]
fn impossible_settings_are_refused() {
    let x = correlated(10, 5);
    for eps in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let err = Zca::fit(&x, eps).unwrap_err().to_string();
        assert!(err.contains("eps") && err.contains("0.1"), "{err}");
    }
    let one = set(vec![1.0; 12], ImageShape::new(3, 2, 2));
    let err = Zca::fit(&one, 0.1).unwrap_err().to_string();
    assert!(err.contains("at least two images"), "{err}");
    let err = load(
        "shapes",
        &LoadOptions {
            zca: Some(0.0),
            ..LoadOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("zca") && err.contains("positive"), "{err}");
}

#[test]
fn a_whitened_dataset_starts_from_plain_pixels_and_turns_back_into_them() {
    let ds = load(
        "shapes",
        &LoadOptions {
            seed: 3,
            zca: Some(ZCA_EPS),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let zca = ds.zca.as_ref().expect("the dataset keeps its whitening");
    assert_eq!((zca.eps, zca.features()), (ZCA_EPS, 3 * 16 * 16));
    assert_eq!((ds.mean.as_slice(), ds.std.as_slice()), (&[0.0; 3][..], &[1.0; 3][..]));
    // Whitened train images are centred; `denormalise` gives back the [0, 1] pixels.
    let (mean, _) = moments(&ds.train.images, 768);
    assert!(mean.iter().all(|m| m.abs() < 1e-4), "{:?}", &mean[..4]);
    let (raw, _) = shapes::raw_split(3, false);
    let back = ds.denormalise(&ds.train.images[..768 * 4]);
    for (a, b) in back.iter().zip(&raw) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
    // The test set is whitened too (with the train fit), not left in [0, 1].
    let (raw_test, _) = shapes::raw_split(3, true);
    assert_ne!(ds.test.images[..768], raw_test[..768]);
    let back = ds.denormalise(&ds.test.images[..768]);
    assert!(back.iter().zip(&raw_test).all(|(a, b)| (a - b).abs() < 1e-3));
}
