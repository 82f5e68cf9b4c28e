//! One thread count for every CPU thread pool a workload uses.
//!
//! cafe-lab's CPU kernels run on rayon's global pool (its own convolution also hands
//! `Parallelism::Rayon(0)`, i.e. the current pool's size, to `gemm`); candle's matmul asks
//! `candle_core::utils::get_num_threads()` (the `RAYON_NUM_THREADS` variable, else the physical
//! cores) and its other parallel CPU kernels use a pool sized by `CANDLE_NUM_THREADS` (else
//! the same). All of them are read once, when first used, so [`set_threads`] must run at
//! process start, before any tensor work and before other threads exist.

use cafe_framework::{Error, Result};

/// Makes every pool use `threads` threads. Call first thing in `main`.
pub fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::invalid("threads", 0, "at least one thread"));
    }
    // Safe in edition 2021; at process start no other thread reads the environment.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::Other(format!("could not size rayon's global pool: {e}")))?;
    if candle_core::utils::get_num_threads() != threads || rayon::current_num_threads() != threads {
        return Err(Error::Other(format!(
            "asked for {threads} threads but candle uses {} and rayon {}",
            candle_core::utils::get_num_threads(),
            rayon::current_num_threads()
        )));
    }
    Ok(())
}
