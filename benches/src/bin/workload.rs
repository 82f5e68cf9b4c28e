//! `cafe-workload`: times cafe-lab's benchmark workloads ([`cafe_benches::runner`] has the
//! command line and what it prints), with a counting allocator so that the peak heap can be
//! reported beside the peak RSS.

use std::process::ExitCode;

use cafe_benches::live_bytes::LiveBytes;

/// Counts live heap bytes, so that the peak can be reported beside the peak RSS.
#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// Keeps the plugins linked (CANDLE_NOTES 7).
use cafe_plugins as _;

fn main() -> ExitCode {
    // The same allocator settings as the `cafe-lab` binary, so that workloads time what it runs.
    cafe_framework::memory::keep_freed_memory_for_reuse();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cafe_benches::runner::run(&args, true) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe-workload: {e}");
            ExitCode::FAILURE
        }
    }
}
