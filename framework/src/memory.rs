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

/// Tells glibc's allocator to keep freed memory for reuse instead of returning it to the
/// operating system: no `mmap` for large blocks, and no trimming of the heap below 2 GiB of
/// free space at its top. Peak memory is unchanged (freed memory is reused, not added to);
/// what changes is that memory freed after the peak stays mapped until the process ends.
///
/// Call once at start-up, before threads allocate. A no-op off glibc.
pub fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
