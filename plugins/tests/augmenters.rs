//! The augmenters, proven: DSA's siamese seeding, a finite-difference gradient check of every
//! group, shapes, identities and PyTorch's `affine_grid`/`grid_sample` semantics; DC's
//! determinism and shapes.

use cafe_framework::registry::{find, names};
use cafe_framework::rng::rng_from_seed;
use cafe_framework::Augmenter;
use cafe_plugins::augmenters::dsa::affine::{rotation, warp};
use cafe_plugins::augmenters::dsa::color::brightness;
use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng as _;
use serde_json::{json, Value};

const CPU: Device = Device::Cpu;
const GROUPS: [&str; 6] = ["color", "crop", "cutout", "flip", "scale", "rotate"];

fn augmenter(name: &str, config: Value) -> Box<dyn Augmenter> {
    cafe_plugins::link();
    find::<dyn Augmenter>(name).unwrap().instantiate(&config).unwrap()
}

fn dsa(config: Value) -> Box<dyn Augmenter> {
    augmenter("dsa", config)
}

/// Uniform [0, 1) images from our seeded generator.
fn images(dims: (usize, usize, usize, usize), seed: u64, dtype: DType) -> Tensor {
    let mut rng = rng_from_seed(seed);
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    let values: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    Tensor::from_vec(values, dims, &CPU).unwrap().to_dtype(dtype).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn values(x: &Tensor) -> Vec<f64> {
    x.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn image(x: &Tensor, k: usize) -> Tensor {
    x.narrow(0, k, 1).unwrap()
}

#[test]
fn registry_lists_the_augmenters() {
    cafe_plugins::link();
    let all = names::<dyn Augmenter>().unwrap();
    for name in ["dc", "dsa", "none"] {
        assert!(all.contains(&name), "{name} missing from {all:?}");
    }
    assert!(dsa(json!({})).is_differentiable());
    assert!(!dsa(json!({})).is_identity());
    assert!(dsa(json!({"strategy": "none"})).is_identity());
}

// (a) Siamese seeding.

/// In siamese mode the transformation depends on the seed alone, not on the batch: augmenting
/// a concatenation equals concatenating the augmentations, which is what gives the real and
/// the synthetic batch of a class the same transformation.
#[test]
fn siamese_batches_share_the_transformation() {
    let a = images((3, 3, 16, 16), 1, DType::F32);
    let b = images((5, 3, 16, 16), 2, DType::F32);
    let ab = Tensor::cat(&[&a, &b], 0).unwrap();
    for config in [json!({}), json!({"mode": "multiple"})] {
        let aug = dsa(config.clone());
        for seed in 0..40 {
            let whole = aug.augment(&ab, seed, true).unwrap();
            let parts = Tensor::cat(
                &[
                    &aug.augment(&a, seed, true).unwrap(),
                    &aug.augment(&b, seed, true).unwrap(),
                ],
                0,
            )
            .unwrap();
            assert!(max_diff(&whole, &parts) < 1e-6, "{config}, seed {seed}");
        }
    }
}

/// A batch of identical images stays identical in siamese mode and does not otherwise; one seed
/// repeats, two seeds differ.
#[test]
fn seeds_fix_the_parameters_and_siamese_shares_them() {
    let one = images((1, 3, 16, 16), 3, DType::F64);
    let batch = one.repeat((4, 1, 1, 1)).unwrap();
    let aug = dsa(json!({"mode": "multiple"}));
    let mut differing_images = 0;
    for seed in 0..10 {
        let same = aug.augment(&batch, seed, true).unwrap();
        for k in 1..4 {
            assert_eq!(
                values(&image(&same, 0)),
                values(&image(&same, k)),
                "seed {seed}, image {k}"
            );
        }
        let own = aug.augment(&batch, seed, false).unwrap();
        differing_images += (1..4)
            .filter(|&k| values(&image(&own, 0)) != values(&image(&own, k)))
            .count();
        assert_eq!(
            values(&own),
            values(&aug.augment(&batch, seed, false).unwrap()),
            "seed {seed} repeats"
        );
        let other = aug.augment(&batch, seed + 1000, true).unwrap();
        assert!(max_diff(&same, &other) > 1e-3, "seeds {seed} and {} agree", seed + 1000);
    }
    assert_eq!(
        differing_images, 30,
        "non-siamese images should draw their own parameters"
    );
}

/// Single mode picks one group per call: over many seeds each group is picked, and every call
/// changes the images like exactly one group would.
#[test]
fn single_mode_picks_one_group_per_call() {
    let x = images((2, 3, 16, 16), 4, DType::F64);
    let all = dsa(json!({}));
    let mut picked = [0usize; 6];
    for seed in 0..120 {
        let out = all.augment(&x, seed, true).unwrap();
        let matches: Vec<usize> = (0..6)
            .filter(|&g| {
                let alone = dsa(json!({"strategy": GROUPS[g], "mode": "multiple"}));
                // The op's stream is keyed by its position, so group g alone at position 0 draws
                // what it draws when picked in single mode.
                max_diff(&out, &alone.augment(&x, seed, true).unwrap()) < 1e-12
            })
            .collect();
        assert!(!matches.is_empty(), "seed {seed}: output matches no single group");
        picked[matches[0]] += 1;
    }
    assert!(picked.iter().all(|&p| p > 5), "group picks {picked:?}");
}

// (b) Differentiability: each group against central finite differences in f64.

/// The pixel gradient of `sum(aug(x) * r)` against central differences. Every op is linear in
/// the pixels once its parameters are drawn, so differences are exact up to rounding.
fn gradient_check(config: Value, siamese: bool) {
    let aug = dsa(config.clone());
    let x = images((2, 3, 8, 8), 5, DType::F64);
    let r = images((2, 3, 8, 8), 6, DType::F64);
    let seed = 11;
    let loss = |x: &Tensor| -> f64 {
        (aug.augment(x, seed, siamese).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let var = Var::from_tensor(&x).unwrap();
    let out = (aug.augment(var.as_tensor(), seed, siamese).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = out.backward().unwrap();
    let grad = values(grads.get(var.as_tensor()).expect("the gradient reaches the pixels"));
    let base = values(&x);
    let eps = 1e-4;
    let mut worst: f64 = 0.0;
    for (i, &g) in grad.iter().enumerate() {
        let mut plus = base.clone();
        plus[i] += eps;
        let mut minus = base.clone();
        minus[i] -= eps;
        let at = |v: Vec<f64>| loss(&Tensor::from_vec(v, x.dims(), &CPU).unwrap());
        let numeric = (at(plus) - at(minus)) / (2.0 * eps);
        worst = worst.max((numeric - g).abs() / (1.0 + numeric.abs()));
    }
    assert!(
        worst < 1e-8,
        "{config} (siamese {siamese}): worst relative gradient error {worst}"
    );
    assert!(grad.iter().any(|g| g.abs() > 1e-3), "{config}: gradient vanished");
}

#[test]
fn every_group_is_differentiable() {
    for group in GROUPS {
        for siamese in [true, false] {
            gradient_check(json!({"strategy": group, "mode": "multiple"}), siamese);
        }
    }
    // Flip and both geometric warps with their parameters forced away from the identity.
    gradient_check(
        json!({
            "strategy": "flip_scale_rotate", "mode": "multiple",
            "prob_flip": 1.0, "ratio_scale": 1.5, "ratio_rotate": 40.0,
        }),
        false,
    );
}

// (c) Shapes.

#[test]
fn shapes_are_preserved() {
    for dims in [(3, 1, 28, 28), (2, 3, 32, 32), (1, 3, 5, 7)] {
        let x = images(dims, 7, DType::F32);
        for config in [json!({}), json!({"mode": "multiple"})] {
            for siamese in [true, false] {
                let out = dsa(config.clone()).augment(&x, 3, siamese).unwrap();
                assert_eq!(out.dims(), x.dims());
                assert_eq!(out.dtype(), DType::F32);
            }
        }
    }
    assert!(dsa(json!({}))
        .augment(&Tensor::zeros((3, 4), DType::F32, &CPU).unwrap(), 0, true)
        .is_err());
}

// (d) Identities and known values.

#[test]
fn flipping_twice_is_the_identity() {
    let x = images((3, 3, 16, 16), 8, DType::F32);
    let once = dsa(json!({"strategy": "flip", "mode": "multiple", "prob_flip": 1.0}));
    let twice = dsa(json!({"strategy": "flip_flip", "mode": "multiple", "prob_flip": 1.0}));
    for siamese in [true, false] {
        assert_eq!(values(&twice.augment(&x, 9, siamese).unwrap()), values(&x));
        assert_eq!(
            values(&once.augment(&x, 9, siamese).unwrap()),
            values(&x.flip(&[3]).unwrap())
        );
    }
    let never = dsa(json!({"strategy": "flip", "mode": "multiple", "prob_flip": 0.0}));
    assert_eq!(values(&never.augment(&x, 9, false).unwrap()), values(&x));
}

#[test]
fn zero_rotation_and_unit_scale_are_the_identity() {
    for dtype in [DType::F32, DType::F64] {
        let x = images((2, 3, 32, 32), 10, dtype);
        for config in [
            json!({"strategy": "rotate", "ratio_rotate": 0.0}),
            json!({"strategy": "scale", "ratio_scale": 1.0}),
        ] {
            for seed in 0..3 {
                let out = dsa(config.clone()).augment(&x, seed, false).unwrap();
                assert!(max_diff(&out, &x) < 1e-6, "{config} {dtype:?}: {}", max_diff(&out, &x));
            }
        }
    }
}

/// The color group shifts each image's mean by the brightness draw only: saturation keeps the
/// mean over channels of every pixel, contrast the mean of the image.
#[test]
fn brightness_shifts_the_mean() {
    let x = images((4, 3, 8, 8), 11, DType::F64);
    let shifted = brightness(&x, &[0.3]).unwrap();
    assert!(
        max_diff(
            &(shifted - &x).unwrap(),
            &x.ones_like().unwrap().affine(0.3, 0.0).unwrap()
        ) < 1e-12
    );

    let means = |t: &Tensor| values(&t.flatten_from(1).unwrap().mean(D::Minus1).unwrap());
    let (mut below, mut above) = (0, 0);
    for seed in 0..30 {
        let color = dsa(json!({"strategy": "color", "mode": "multiple"}));
        let out = color.augment(&x, seed, true).unwrap();
        let shift: Vec<f64> = means(&out).iter().zip(means(&x)).map(|(a, b)| a - b).collect();
        for s in &shift {
            assert!((s - shift[0]).abs() < 1e-12, "siamese shifts differ: {shift:?}");
            assert!((-0.5..0.5).contains(s), "shift {s} outside [-0.5, 0.5)");
        }
        if shift[0] < 0.0 {
            below += 1
        } else {
            above += 1
        }
        let still = dsa(json!({"strategy": "color", "mode": "multiple", "brightness": 0.0}));
        let kept: Vec<f64> = means(&still.augment(&x, seed, false).unwrap());
        for (a, b) in kept.iter().zip(means(&x)) {
            assert!((a - b).abs() < 1e-12);
        }
    }
    assert!(
        below > 3 && above > 3,
        "brightness draws {below} below / {above} above 0"
    );
}

/// PyTorch's semantics, derived by hand from its formulas: `affine_grid(align_corners=True)`
/// puts output column j at x = -1 + 2j/(W-1); `grid_sample(align_corners=True)` reads input
/// column (x+1)/2 (W-1). So theta = [[0.5, 0, 0], [0, 0.5, 0]] on a 5-wide image samples input
/// column 1 + 0.5j: on a ramp x[i][j] = j it gives 1, 1.5, 2, 2.5, 3. A rotation by +90
/// degrees (theta = [[0, -1, 0], [1, 0, 0]]) reads input (row j, column W-1-i).
#[test]
fn warps_follow_affine_grid_and_grid_sample() {
    let ramp: Vec<f64> = (0..25).map(|k| (k % 5) as f64).collect();
    let x = Tensor::from_vec(ramp, (1, 1, 5, 5), &CPU).unwrap();
    let zoom = warp(&x, &[[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]]).unwrap();
    for row in values(&zoom).chunks(5) {
        for (got, want) in row.iter().zip([1.0, 1.5, 2.0, 2.5, 3.0]) {
            assert!((got - want).abs() < 1e-12, "{row:?}");
        }
    }
    let x = images((1, 2, 4, 4), 12, DType::F64);
    let turned = values(&warp(&x, &[rotation(std::f64::consts::FRAC_PI_2)]).unwrap());
    let source = values(&x);
    for c in 0..2 {
        for i in 0..4 {
            for j in 0..4 {
                let want = source[c * 16 + j * 4 + (3 - i)];
                assert!((turned[c * 16 + i * 4 + j] - want).abs() < 1e-12);
            }
        }
    }
    // Zero padding: shrinking the content (scale 2) leaves the corners outside the image: 0.
    let ones = Tensor::ones((1, 1, 5, 5), DType::F64, &CPU).unwrap();
    let shrunk = values(&warp(&ones, &[[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]).unwrap());
    assert_eq!(shrunk[0], 0.0);
    assert_eq!(shrunk[12], 1.0);
}

/// Crop translates by at most round(0.125 * size) pixels with zero fill; cutout zeroes a
/// clipped square of side round(0.5 * size); both the same for every image in siamese mode.
#[test]
fn crop_and_cutout_geometry() {
    let ones = Tensor::ones((3, 1, 16, 16), DType::F32, &CPU).unwrap();
    let crop = dsa(json!({"strategy": "crop", "mode": "multiple"}));
    let cutout = dsa(json!({"strategy": "cutout", "mode": "multiple"}));
    let mut largest_shift_seen = 0;
    for seed in 0..40 {
        let kept = values(&crop.augment(&ones, seed, true).unwrap())
            .iter()
            .filter(|&&v| v == 1.0)
            .count()
            / 3;
        // (16 - |dy|)(16 - |dx|) ones remain, |dy|, |dx| <= 2.
        assert!((14 * 14..=256).contains(&kept), "seed {seed}: {kept} ones");
        largest_shift_seen = largest_shift_seen.max(256 - kept);
        let zeros = values(&cutout.augment(&ones, seed, true).unwrap())
            .iter()
            .filter(|&&v| v == 0.0)
            .count()
            / 3;
        // An 8x8 square whose centre lies in [0, 16]: at least 4 rows and columns remain inside.
        assert!((16..=64).contains(&zeros), "seed {seed}: {zeros} zeros");
    }
    assert_eq!(
        largest_shift_seen,
        256 - 14 * 14,
        "a shift of 2 in both axes should occur"
    );
}

// (e) Validation.

#[test]
fn bad_settings_are_errors() {
    cafe_plugins::link();
    let plugin = find::<dyn Augmenter>("dsa").unwrap();
    let message = plugin
        .instantiate(&json!({"strategy": "color_blur"}))
        .err()
        .expect("unknown group")
        .to_string();
    assert!(message.contains("augment.strategy"), "{message}");
    assert!(message.contains("blur"), "{message}");
    assert!(
        message.contains("valid groups: color, crop, cutout, flip, scale, rotate"),
        "{message}"
    );
    for bad in [
        json!({"prob_flip": 1.5}),
        json!({"ratio_scale": 0.0}),
        json!({"ratio_cutout": -0.1}),
        json!({"mode": "both"}),
        json!({"ratios": 1}),
    ] {
        assert!(plugin.instantiate(&bad).is_err(), "{bad} accepted");
    }
    assert!(plugin.instantiate(&json!({"mode": "M"})).is_ok());
    let dc = find::<dyn Augmenter>("dc").unwrap();
    let message = dc
        .instantiate(&json!({"strategy": "crop_flip"}))
        .err()
        .expect("unknown dc group")
        .to_string();
    assert!(
        message.contains("valid groups: crop, scale, rotate, noise"),
        "{message}"
    );
}

// (f) DC augment.

#[test]
fn dc_keeps_shapes_and_is_deterministic() {
    for strategy in ["crop_scale_rotate", "crop_noise", "crop", "scale", "rotate", "noise"] {
        let dc = augmenter("dc", json!({ "strategy": strategy }));
        assert!(!dc.is_differentiable());
        for dims in [(4, 1, 28, 28), (4, 3, 32, 32)] {
            let x = images(dims, 13, DType::F32);
            let a = dc.augment(&x, 21, false).unwrap();
            assert_eq!(a.dims(), x.dims());
            assert_eq!(a.dtype(), DType::F32);
            assert_eq!(
                values(&a),
                values(&dc.augment(&x, 21, false).unwrap()),
                "{strategy}: seed repeats"
            );
            assert_ne!(
                values(&a),
                values(&dc.augment(&x, 22, false).unwrap()),
                "{strategy}: seeds differ"
            );
            assert_ne!(values(&a), values(&x), "{strategy}: changes the images");
        }
    }
    assert!(augmenter("dc", json!({"strategy": "none"})).is_identity());
}

/// DC's ops on known inputs: noise stays tiny, crop pads with the channel mean, and in siamese
/// mode identical images stay identical.
#[test]
fn dc_ops_behave_like_the_reference() {
    let x = images((6, 3, 16, 16), 14, DType::F64);
    let noise = augmenter("dc", json!({"strategy": "noise"}));
    let d = max_diff(&noise.augment(&x, 1, false).unwrap(), &x);
    assert!(d > 0.0 && d < 0.01, "noise of std 0.001 moved a pixel by {d}");

    // A constant batch with channel values 1, 2, 3: the crop's padding is the channel mean, so
    // every crop leaves it unchanged.
    let constant = Tensor::from_vec(
        (0..3 * 64).map(|k| (k / 64 + 1) as f64).collect::<Vec<_>>(),
        (1, 3, 8, 8),
        &CPU,
    )
    .unwrap()
    .repeat((4, 1, 1, 1))
    .unwrap();
    let crop = augmenter("dc", json!({"strategy": "crop"}));
    for seed in 0..5 {
        assert!(max_diff(&crop.augment(&constant, seed, false).unwrap(), &constant) < 1e-12);
    }

    let same = image(&x, 0).repeat((4, 1, 1, 1)).unwrap();
    let dc = augmenter("dc", json!({}));
    for seed in 0..5 {
        let out = dc.augment(&same, seed, true).unwrap();
        for k in 1..4 {
            assert_eq!(values(&image(&out, 0)), values(&image(&out, k)));
        }
    }
}
