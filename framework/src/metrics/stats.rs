//! Mean, standard deviation and a 95 % confidence interval of the mean, for accuracies pooled
//! over networks (and over repeated condensations).

use serde::{Deserialize, Serialize};

/// Mean and population standard deviation (NaN for no values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Population standard deviation (numpy's `np.std`, which the papers report).
    pub std: f64,
    /// Bounds of the two-sided 95 % confidence interval of the mean: mean -+ t(0.975, n-1) *
    /// s / sqrt(n), with s the sample standard deviation (n - 1 in the denominator) and t
    /// Student's quantile. NaN for fewer than 2 values (no spread to estimate).
    pub ci95_low: f64,
    pub ci95_high: f64,
}

impl Summary {
    /// The summary of `values` (NaN fields when empty).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                std: f64::NAN,
                ci95_low: f64::NAN,
                ci95_high: f64::NAN,
            };
        }
        let nf = n as f64;
        let mean = values.iter().sum::<f64>() / nf;
        let ss = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        let std = (ss / nf).sqrt();
        let half = if n < 2 {
            f64::NAN
        } else {
            student_t_975(n - 1) * (ss / (nf - 1.0)).sqrt() / nf.sqrt()
        };
        Self {
            n,
            mean,
            std,
            ci95_low: mean - half,
            ci95_high: mean + half,
        }
    }

    /// Half the width of the confidence interval.
    pub fn ci95_half_width(&self) -> f64 {
        (self.ci95_high - self.ci95_low) / 2.0
    }
}

/// Student's t quantile at 0.975 (two-sided 95 %) for `df` degrees of freedom: exact table
/// values up to 30 (any statistics table, e.g. scipy `t.ppf(0.975, df)` to 3 decimals), then
/// the Cornish-Fisher expansion around the normal quantile, which is within 1e-4 there.
///
/// # Panics
/// If `df` is 0 (no interval exists).
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    assert!(df > 0, "Student's t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let n = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * n)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * n.powi(3))
}
