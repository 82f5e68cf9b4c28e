//! `shapes`: the embedded default dataset, procedurally generated, no files needed.
//!
//! Ten classes of 3x16x16 RGB images, 500 train and 100 test images per class, a pure function
//! of the seed. It exists so that every command runs out of the box and tests have real,
//! learnable but not trivial data. What makes it hard, on purpose:
//! - position, size and (where it means something) rotation and stroke thickness vary;
//! - foreground, background and a faint background gradient take random colours, drawn
//!   independently of the class, so colour says nothing about the class (only the polarity is
//!   fixed: the shape is lighter than its background);
//! - small random blobs (distractors) sit behind or in front of the shape;
//! - Gaussian pixel noise of a random strength.
//!
//! The striped classes (`h-bars`, `v-bars`, `diagonal`) differ only by orientation, so they
//! are the ones a model must look hardest at. Rendering is anti-aliased: each pixel's value is
//! the coverage measured on a 4x4 grid of sub-samples. Images come out interleaved by class
//! (image `i` has label `i % 10`), so any prefix of a split is balanced.
//!
//! Calibration (`framework/tests/data_shapes_difficulty.rs`, seed 0): the default ConvNet
//! trained with the evaluation protocol's SGD on a random 10-per-class subset reaches 54 % test
//! accuracy at width 64 (300 epochs) and 47 % at width 32 (200 epochs), with 100 % train
//! accuracy: learnable, far from saturated, as a small condensation benchmark should be.

use std::f32::consts::PI;

use rand::Rng as _;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use super::{Dataset, DatasetKind, ImageSet};
use crate::rng::{sub_rng, Rng};

/// Class names, index = label.
pub const CLASS_NAMES: [&str; 10] = [
    "disk", "square", "triangle", "cross", "ring", "h-bars", "v-bars", "diagonal", "checker", "two-dots",
];

/// Images per class in the train split.
pub const TRAIN_PER_CLASS: usize = 500;
/// Images per class in the test split.
pub const TEST_PER_CLASS: usize = 100;
/// Side of the square images.
pub const SIZE: usize = 16;

/// Per-channel mean of the raw [0, 1] pixels of the train set of seed 0. Fixed here so that
/// the normalisation is the same whatever the seed (`shapes_stats` in
/// `framework/tests/data_sets.rs` recomputes it).
pub const MEAN: [f32; 3] = [0.3908, 0.3895, 0.3848];
/// Per-channel standard deviation, computed like [`MEAN`].
pub const STD: [f32; 3] = [0.2743, 0.2740, 0.2720];

/// Tag of the `shapes` random stream (`derive_seed(seed, [STREAM, split, index])`).
use crate::rng::stream::SHAPES as STREAM;

/// Sub-samples per pixel side for the anti-aliasing.
const SUB: usize = 4;

/// Generates the dataset for `seed`, normalised with [`MEAN`] and [`STD`].
pub fn generate(seed: u64) -> Dataset {
    generate_normalised(seed, &MEAN, &STD)
}

/// Generates the dataset for `seed`, normalised with `mean` and `std` (3 values each).
pub(crate) fn generate_normalised(seed: u64, mean: &[f32], std: &[f32]) -> Dataset {
    let kind = DatasetKind::Shapes;
    let normalise = |(mut images, labels): (Vec<f32>, Vec<u32>)| {
        let plane = SIZE * SIZE;
        for (k, v) in images.iter_mut().enumerate() {
            let c = (k / plane) % 3;
            *v = (*v - mean[c]) / std[c];
        }
        ImageSet {
            images,
            labels,
            shape: kind.shape(),
        }
    };
    Dataset {
        name: kind.name().to_string(),
        train: normalise(raw_split(seed, false)),
        test: normalise(raw_split(seed, true)),
        classes: CLASS_NAMES.len(),
        class_names: kind.class_names(),
        mean: mean.to_vec(),
        std: std.to_vec(),
        zca: None,
    }
}

/// One split before normalisation: pixels in [0, 1] (NCHW) and labels. Image `i` is drawn
/// from its own sub-stream, so images do not depend on each other and are made in parallel.
pub fn raw_split(seed: u64, test: bool) -> (Vec<f32>, Vec<u32>) {
    let per_class = if test { TEST_PER_CLASS } else { TRAIN_PER_CLASS };
    let classes = CLASS_NAMES.len();
    let n = per_class * classes;
    let numel = 3 * SIZE * SIZE;
    let mut images = vec![0.0f32; n * numel];
    images.par_chunks_mut(numel).enumerate().for_each(|(i, out)| {
        let mut rng = sub_rng(seed, &[STREAM, u64::from(test), i as u64]);
        render(i % classes, &mut rng, out);
    });
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    (images, labels)
}

/// A random colour.
fn colour(rng: &mut Rng) -> [f32; 3] {
    [rng.random(), rng.random(), rng.random()]
}

/// Background and foreground colours: two random colours whose luminances (channel means)
/// differ by at least 0.25, the darker one as background. A fixed polarity (shape lighter than
/// its surroundings) keeps the task learnable from few images; the hues stay random and
/// independent of the class.
fn colours(rng: &mut Rng) -> ([f32; 3], [f32; 3]) {
    let lum = |c: &[f32; 3]| (c[0] + c[1] + c[2]) / 3.0;
    for _ in 0..64 {
        let (a, b) = (colour(rng), colour(rng));
        if (lum(&a) - lum(&b)).abs() >= 0.25 {
            return if lum(&a) < lum(&b) { (a, b) } else { (b, a) };
        }
    }
    ([0.2; 3], [0.8; 3]) // practically unreachable: about 1 draw in 3 succeeds
}

/// The geometry of one shape, in "unit" coordinates: the shape's frame, centred, rotated,
/// divided by its radius, so that every class fits roughly in the unit disk.
struct Shape {
    class: usize,
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    inv_r: f32,
    /// Stroke half-thickness (cross, bars) or ring width.
    thick: f32,
    /// Number of stripes (bar classes) or distance of the dots from the centre (two-dots).
    param: f32,
}

impl Shape {
    fn random(class: usize, rng: &mut Rng) -> Self {
        let deg = PI / 180.0;
        let jitter = rng.random_range(-12.0..12.0) * deg;
        let angle = match class {
            5 => jitter,              // h-bars
            6 => 90.0 * deg + jitter, // v-bars
            7 => {
                // diagonal: either diagonal
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                sign * 45.0 * deg + jitter
            }
            // Rotation-invariant shapes: any angle (it changes nothing but the sampling).
            0 | 4 => rng.random_range(0.0..2.0 * PI),
            // The others stay near their upright pose, so that e.g. a square does not become
            // a diamond and a cross an x.
            _ => rng.random_range(-20.0..20.0) * deg,
        };
        let r: f32 = rng.random_range(4.2..6.2);
        let (thick, param) = match class {
            3 => (rng.random_range(0.18..0.32), 0.0),
            4 => (rng.random_range(0.28..0.45), 0.0),
            5..=7 => (
                rng.random_range(0.12..0.2),
                if rng.random_bool(0.5) { 2.0 } else { 3.0 },
            ),
            9 => (rng.random_range(0.28..0.4), rng.random_range(0.5..0.68)),
            _ => (0.0, 0.0),
        };
        Shape {
            class,
            cx: rng.random_range(6.0..10.0),
            cy: rng.random_range(6.0..10.0),
            cos: angle.cos(),
            sin: angle.sin(),
            inv_r: 1.0 / r,
            thick,
            param,
        }
    }

    /// Whether image point (u, v) (pixel units, x right, y down) is inside the shape.
    fn contains(&self, u: f32, v: f32) -> bool {
        let (dx, dy) = (u - self.cx, v - self.cy);
        // Rotate by -angle into the shape's frame.
        let x = (self.cos * dx + self.sin * dy) * self.inv_r;
        let y = (-self.sin * dx + self.cos * dy) * self.inv_r;
        let t = self.thick;
        match self.class {
            0 => x * x + y * y <= 1.0,
            1 => x.abs().max(y.abs()) <= 0.78,
            2 => {
                // Equilateral triangle inscribed in the unit circle: the three edges are at
                // distance 0.5 (the inradius) along normals (0, -1), (cos 30, sin 30) and
                // (-cos 30, sin 30).
                let s3 = 0.866_025_4;
                y >= -0.5 && (s3 * x + 0.5 * y) <= 0.5 && (-s3 * x + 0.5 * y) <= 0.5
            }
            3 => (x.abs() <= t && y.abs() <= 1.0) || (y.abs() <= t && x.abs() <= 1.0),
            4 => {
                let d2 = x * x + y * y;
                d2 <= 1.0 && d2 >= (1.0 - t) * (1.0 - t)
            }
            5..=7 => {
                // `param` stripes parallel to the frame's x axis, evenly spread over [-0.75, 0.75].
                if x.abs() > 1.0 {
                    return false;
                }
                let m = self.param as usize;
                (0..m).any(|k| {
                    let centre = -0.75 + 1.5 * k as f32 / (m - 1) as f32;
                    (y - centre).abs() <= t
                })
            }
            8 => {
                // 3x3 checkerboard in [-0.9, 0.9]^2: the corners and the centre are filled.
                let h = 0.9;
                if x.abs() > h || y.abs() > h {
                    return false;
                }
                let cell = 2.0 * h / 3.0;
                let (i, j) = (((x + h) / cell) as usize, ((y + h) / cell) as usize);
                (i + j) % 2 == 0
            }
            _ => {
                // two-dots at (+-param, 0), radius `thick`.
                let (a, b) = (x - self.param, x + self.param);
                a * a + y * y <= t * t || b * b + y * y <= t * t
            }
        }
    }
}

/// A small disk that is not part of the class.
struct Blob {
    x: f32,
    y: f32,
    r2: f32,
    colour: [f32; 3],
    in_front: bool,
}

/// Blends `colour` into `out` (CHW) by the coverage of `inside` on the sub-sample grid.
fn paint(out: &mut [f32], colour: [f32; 3], inside: impl Fn(f32, f32) -> bool) {
    let plane = SIZE * SIZE;
    let step = 1.0 / SUB as f32;
    for py in 0..SIZE {
        for px in 0..SIZE {
            let mut hits = 0u32;
            for sy in 0..SUB {
                let v = py as f32 + (sy as f32 + 0.5) * step;
                for sx in 0..SUB {
                    let u = px as f32 + (sx as f32 + 0.5) * step;
                    hits += u32::from(inside(u, v));
                }
            }
            if hits == 0 {
                continue;
            }
            let a = hits as f32 / (SUB * SUB) as f32;
            for (c, &col) in colour.iter().enumerate() {
                let p = &mut out[c * plane + py * SIZE + px];
                *p = *p * (1.0 - a) + col * a;
            }
        }
    }
}

/// Renders one image of `class` into `out` (3x16x16, CHW, values in [0, 1]).
fn render(class: usize, rng: &mut Rng, out: &mut [f32]) {
    let plane = SIZE * SIZE;
    // Background: a colour plus a faint linear gradient in a random direction.
    let (bg, fg) = colours(rng);
    let g_angle: f32 = rng.random_range(0.0..2.0 * PI);
    let g_strength: [f32; 3] = [
        rng.random_range(-0.1..0.1),
        rng.random_range(-0.1..0.1),
        rng.random_range(-0.1..0.1),
    ];
    let half = SIZE as f32 / 2.0;
    for py in 0..SIZE {
        for px in 0..SIZE {
            let along = ((px as f32 + 0.5 - half) * g_angle.cos() + (py as f32 + 0.5 - half) * g_angle.sin()) / half;
            for c in 0..3 {
                out[c * plane + py * SIZE + px] = bg[c] + g_strength[c] * along;
            }
        }
    }
    let shape = Shape::random(class, rng);
    let blobs: Vec<Blob> = (0..rng.random_range(0..=2))
        .map(|_| {
            let r: f32 = rng.random_range(0.7..1.4);
            Blob {
                x: rng.random_range(0.0..SIZE as f32),
                y: rng.random_range(0.0..SIZE as f32),
                r2: r * r,
                colour: colour(rng),
                in_front: rng.random_bool(0.25),
            }
        })
        .collect();
    let blob_inside = |b: &Blob| {
        let (x, y, r2) = (b.x, b.y, b.r2);
        move |u: f32, v: f32| (u - x) * (u - x) + (v - y) * (v - y) <= r2
    };
    for b in blobs.iter().filter(|b| !b.in_front) {
        paint(out, b.colour, blob_inside(b));
    }
    paint(out, fg, |u, v| shape.contains(u, v));
    for b in blobs.iter().filter(|b| b.in_front) {
        paint(out, b.colour, blob_inside(b));
    }
    // Pixel noise of a random strength, then clamp to the valid range.
    let sigma: f32 = rng.random_range(0.01..0.06);
    let noise = Normal::new(0.0f32, sigma).expect("sigma is drawn from a positive range");
    for p in out.iter_mut() {
        *p = (*p + noise.sample(rng)).clamp(0.0, 1.0);
    }
}
