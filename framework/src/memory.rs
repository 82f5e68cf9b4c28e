//! Process-wide memory settings for long CPU runs.
//!
//! A training step frees and re-allocates the same large buffers (activations, im2col
//! matrices, gradients: up to ~130 MB each for a batch of 256) again and again. glibc's
//! `malloc` serves every block above 32 MB with a fresh `mmap` and returns it with `munmap` on
//! free, so each step pays a page fault and a kernel page clear for every page it touches:
//! measured at a quarter of the ConvNet forward+backward time (`perf`: `clear_page_erms`,
//! `do_anonymous_page`). Keeping freed memory in the heap lets the next step reuse it.
//! mimalloc (via LD_PRELOAD) measured 2.5x slower than glibc's default here, because it
//! purges huge blocks too.
//!
//! Measured (`cafe-workload convnet_fwd_bwd`, 2 threads, same run): 2.4 s and 1.84 GB peak RSS
//! with these settings, 4.45 s and 1.52 GB without (`CAFE_LAB_SYSTEM_MALLOC=1`): 1.8x the speed
//! for 20 % more peak memory (freed blocks are not always reusable for the next request).

/// Tells glibc's allocator to keep freed memory for reuse instead of returning it to the
/// operating system: no `mmap` for large blocks, and no trimming of the heap below 2 GiB of
/// free space at its top. Freed memory stays mapped until the process ends, and the peak grows
/// somewhat (about 20 % on a ConvNet step) because not every freed block fits the next request.
///
/// Call once at start-up, before threads allocate. A no-op off glibc, and when the environment
/// variable `CAFE_LAB_SYSTEM_MALLOC` is set (to compare, or to give memory back after a peak).
pub fn keep_freed_memory_for_reuse() {
    if std::env::var_os("CAFE_LAB_SYSTEM_MALLOC").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
