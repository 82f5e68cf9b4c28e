//! The ConvNet benchmark as a plain timing loop: one forward + backward (and one forward) of the
//! default ConvNet on 256 images per path, interleaved so that every path sees the same machine
//! load, and the ratio of each path to the fast one.
//!
//! `cargo bench -p cafe-benches --bench convnet_loop [-- ROUNDS]`

use std::time::Instant;

use cafe_benches::{max_difference, Path, Setup};

fn seconds(f: impl FnOnce() -> cafe_framework::Result<()>) -> cafe_framework::Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> cafe_framework::Result<()> {
    // `cargo bench` passes `--bench`; the first number on the command line sets the rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(3);
    let setup = Setup::new()?;
    for path in [Path::CandleConv, Path::CandleAll] {
        println!(
            "max |logits({}) - logits(fast)| = {:.2e}",
            path.name(),
            max_difference(&setup, Path::Fast, path)?
        );
    }
    // Warm-up: first-touch allocations, rayon's pool.
    for path in Path::ALL {
        setup.forward_backward(path)?;
    }
    let mut fwd_bwd = [vec![], vec![], vec![]];
    let mut fwd = [vec![], vec![], vec![]];
    for _ in 0..rounds {
        for (i, path) in Path::ALL.into_iter().enumerate() {
            fwd_bwd[i].push(seconds(|| setup.forward_backward(path))?);
            fwd[i].push(seconds(|| setup.forward(path).map(|_| ()))?);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (fast_fb, fast_f) = (median(&mut fwd_bwd[0].clone()), median(&mut fwd[0].clone()));
    println!("{rounds} rounds, median seconds per pass (ratio to fast):");
    for (i, path) in Path::ALL.into_iter().enumerate() {
        let (fb, f) = (median(&mut fwd_bwd[i]), median(&mut fwd[i]));
        println!(
            "  {:<12} fwd+bwd {fb:7.3} s ({:5.2}x)   fwd {f:7.3} s ({:5.2}x)",
            path.name(),
            fb / fast_fb,
            f / fast_f
        );
    }
    Ok(())
}
