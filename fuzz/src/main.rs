//! The AFL++ harness: one binary for every target, chosen by `CAFE_FUZZ_TARGET` (a name of
//! `cafe_framework::fuzz::Target`). Each input goes to `Target::run`; an error is a normal
//! outcome, a panic aborts and AFL++ records it as a crash.

use std::path::PathBuf;

use cafe_framework::fuzz::Target;
use cafe_plugins as _;

fn main() {
    let name = std::env::var("CAFE_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = Target::from_name(&name) else {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        eprintln!("set CAFE_FUZZ_TARGET to one of: {}", names.join(", "));
        std::process::exit(2);
    };
    // Targets that read files write each input to this folder (a tmpfs is fastest).
    let scratch = std::env::var_os("CAFE_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cafe-fuzz-{}", std::process::id())));
    std::fs::create_dir_all(&scratch).expect("creating the scratch folder");
    afl::fuzz!(|data: &[u8]| {
        let _ = target.run(data, &scratch);
    });
}
