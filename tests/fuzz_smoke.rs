//! A short run of every fuzz target inside the test suite, needing no installed tool: a
//! deterministic mutational loop (seeded bit flips, interesting bytes and integers, length
//! edits, truncations, insertions, deletions, duplicated chunks, dictionary tokens, nesting
//! bombs; tensor-file headers edited as text with their length field kept right; compressed
//! seeds mutated inside the stream and compressed again) over the seed files of
//! `fuzz/seeds/<target>/`. Every input must return without a panic, and its allocations must
//! stay within what the input can legitimately expand to (a counting allocator measures each).
//!
//! With `CAFE_FUZZ_REPLAY=DIR CAFE_FUZZ_TARGET=NAME`, `replay_a_corpus` runs every file of DIR
//! (e.g. what AFL++ found) through the target the same way and prints the counts:
//! `scripts/fuzz/run.sh` uses it for the peak-memory column.

#[path = "../framework/tests/support/alloc.rs"]
mod alloc;

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloc::{measure, Allocated, CountingAlloc};
use cafe_framework::fuzz::Target;
use cafe_plugins as _;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Inputs per target in the ordinary test run (`CAFE_FUZZ_SMOKE_INPUTS` to change).
const INPUTS: usize = 1500;

/// Deflate expands at most about 1032:1; inflated content is bounded by that and by what the
/// content's own header declares (plus a 1 MiB margin), whichever is smaller.
const INFLATE_RATIO: usize = 1100;

/// The toml parser keeps a dotted key's segments (about 190 bytes each, for two bytes of
/// text `a.`) before it refuses keys deeper than 80: linear in the input, but steeper.
const TOML_KEY_RATIO: usize = 100;

/// What an input may allocate: the largest single allocation and the peak of live memory.
fn bounds(target: Target, len: usize) -> (usize, usize) {
    let expanded = match target {
        _ if target.inflates() => len * INFLATE_RATIO + (1 << 20),
        Target::ConfigToml | Target::Protocol => len * TOML_KEY_RATIO,
        _ => len,
    };
    // f32 images from u8 pixels are 4x their bytes, and a loaded tensor may be copied once
    // (into a `Var`); settings and headers parse into trees of a few times their text.
    (8 * expanded + (1 << 20), 24 * expanded + (16 << 20))
}

/// splitmix64: a tiny seeded generator (no dependency, the same sequence everywhere).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TENSOR_TOKENS: &[&str] = &[
    "\"__metadata__\"",
    "\"dtype\"",
    "\"F32\"",
    "\"U32\"",
    "\"I64\"",
    "\"BF16\"",
    "\"shape\"",
    "\"data_offsets\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "18446744073709551615",
    "1099511627776",
    "4294967296",
    "-1",
    "1e999",
    "null",
    "\\u0000",
    "\"state\"",
    "\"format\"",
    "\"epochs\"",
    "\"parameter_shapes\"",
    "\"labels\"",
    "\"images\"",
];

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[when]]",
    "[settings]",
    "[eval]",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "{",
    "}",
    ".",
    ",",
    "\n",
    "inf",
    "nan",
    "-0",
    "1979-05-27T07:32:00Z",
    "9223372036854775807",
    "18446744073709551615",
    "true",
    "dataset",
    "ipc",
    "name",
    "matcher",
    "scheduler",
    "arch",
    "augment",
    "eval",
    "protocol",
    "settings",
    "seed",
    "width",
    "epochs",
    "lr",
    "0",
    "-1",
    "1e308",
];

const SET_TOKENS: &[&str] = &[
    ".",
    "=",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "null",
    "1e400",
    "-1",
    "0",
    "18446744073709551615",
    "eval.",
    "matcher.",
    "arch.",
    "augment.",
    "scheduler.",
    "ipc=",
    "dataset=",
    "seed=",
    "\"",
    "true",
    "protocol=",
    "name=",
];

fn tokens(target: Target) -> &'static [&'static str] {
    match target {
        Target::ConfigToml | Target::Protocol => TOML_TOKENS,
        Target::ConfigSet => SET_TOKENS,
        _ => TENSOR_TOKENS,
    }
}

/// Integers that sit on the edges of length checks.
fn interesting(len: usize) -> [u64; 12] {
    let len = len as u64;
    [
        0,
        1,
        0x7f,
        0xff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        1 << 40,
        u64::MAX,
        len,
        len + 1,
        len.saturating_sub(1),
    ]
}

/// One to four mutations of `bytes`.
fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Rng, tokens: &[&str]) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = [0u8, 1, 0x7f, 0x80, 0xff, rng.next() as u8][rng.below(6)];
            }
            2 => bytes.truncate(at),
            3 => {
                let n = 1 + rng.below(16);
                let insert: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, insert);
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                bytes.drain(at.min(end)..end);
            }
            5 => {
                let value = interesting(len)[rng.below(12)];
                let wide = rng.below(2) == 0;
                let raw: Vec<u8> = match (wide, rng.below(2) == 0) {
                    (true, true) => value.to_le_bytes().to_vec(),
                    (true, false) => value.to_be_bytes().to_vec(),
                    (false, true) => (value as u32).to_le_bytes().to_vec(),
                    (false, false) => (value as u32).to_be_bytes().to_vec(),
                };
                // Aligned, where length fields sit.
                let at = (at / raw.len()) * raw.len();
                for (k, b) in raw.into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + k) {
                        *slot = b;
                    }
                }
            }
            6 if len > 0 => {
                let from = rng.below(len);
                let chunk: Vec<u8> = bytes[from..(from + 1 + rng.below(256)).min(len)].to_vec();
                bytes.splice(at..at, chunk);
            }
            7 => {
                let token = tokens[rng.below(tokens.len())].as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            8 => {
                let token = ["[", "{\"a\":", "[[", "{", "a."][rng.below(5)].repeat(100 + rng.below(5000));
                bytes.splice(at..at, token.into_bytes());
            }
            _ => {
                // A number in the text replaced by an interesting one.
                let digits: Vec<usize> = (0..len).filter(|&i| bytes[i].is_ascii_digit()).collect();
                if let Some(&start) = digits.get(rng.below(digits.len().max(1))) {
                    let end = (start..len).find(|&i| !bytes[i].is_ascii_digit()).unwrap_or(len);
                    let value = interesting(len)[rng.below(12)].to_string();
                    bytes.splice(start..end, value.into_bytes());
                }
            }
        }
    }
}

/// A tensor file with its header mutated as text and its length field set to the new header's
/// length (so that the mutation reaches the checks behind the length check), sometimes with
/// its data cut or extended too.
fn mutate_tensor_file(seed: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(seed.get(..8)?.try_into().ok()?) as usize;
    let mut header = seed.get(8..8 + n)?.to_vec();
    let mut data = seed[8 + n..].to_vec();
    mutate_bytes(&mut header, rng, TENSOR_TOKENS);
    match rng.below(4) {
        0 => data.truncate(rng.below(data.len() + 1)),
        1 => data.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8)),
        _ => {}
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    Some(out)
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

fn inflate(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The `i`-th input of `target`'s run: a mutation of one of its seeds.
fn input(target: Target, seeds: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let seed = &seeds[rng.below(seeds.len())];
    let tensor_file = matches!(
        target,
        Target::TensorFile | Target::Checkpoint | Target::SyntheticSet | Target::Expert | Target::Teacher
    );
    if tensor_file && rng.below(2) == 0 {
        if let Some(out) = mutate_tensor_file(seed, rng) {
            return out;
        }
    }
    // Compressed seeds: half the time the content is mutated and compressed again.
    if rng.below(2) == 0 {
        if let Some(plain) = gunzip(seed) {
            let mut plain = plain;
            mutate_bytes(&mut plain, rng, tokens(target));
            return gzip(&plain);
        }
        if target == Target::Zlib {
            if let Some(mut plain) = inflate(seed) {
                mutate_bytes(&mut plain, rng, tokens(target));
                return zlib(&plain);
            }
        }
    }
    let mut out = seed.clone();
    mutate_bytes(&mut out, rng, tokens(target));
    out
}

fn seeds_of(target: Target) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target.name());
    files_in(&dir).iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// What running a target over many inputs gave.
#[derive(Default)]
struct Tally {
    inputs: usize,
    accepted: usize,
    panics: usize,
    largest: usize,
    peak: usize,
    slowest: Duration,
    failures: Vec<String>,
}

impl Tally {
    fn run(&mut self, target: Target, bytes: &[u8], scratch: &Path, label: &str) {
        let started = Instant::now();
        IN_TARGET.with(|t| t.set(true));
        let (outcome, allocated): (_, Allocated) =
            measure(|| catch_unwind(AssertUnwindSafe(|| target.run(bytes, scratch).is_ok())));
        IN_TARGET.with(|t| t.set(false));
        self.slowest = self.slowest.max(started.elapsed());
        self.inputs += 1;
        self.largest = self.largest.max(allocated.largest);
        self.peak = self.peak.max(allocated.peak);
        let (largest_bound, peak_bound) = bounds(target, bytes.len());
        self.panics += usize::from(outcome.is_err());
        let problem = match outcome {
            Err(panic) => Some(format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            Ok(_) if allocated.largest > largest_bound || allocated.peak > peak_bound => Some(format!(
                "allocated {allocated:?} for {} input bytes (bounds {largest_bound}, {peak_bound})",
                bytes.len()
            )),
            Ok(accepted) => {
                self.accepted += usize::from(accepted);
                None
            }
        };
        if let Some(problem) = problem {
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke-failures");
            std::fs::create_dir_all(&keep).unwrap();
            let file = keep.join(format!("{}-{label}", target.name()));
            std::fs::write(&file, bytes).unwrap();
            self.failures.push(format!(
                "{}: {problem} (input kept in {})",
                target.name(),
                file.display()
            ));
        }
    }

    fn line(&self, target: Target) -> String {
        format!(
            "{:<14} {:>6} inputs, {:>5} accepted, {} panics, largest allocation {:>9} B, peak {:>10} B, slowest {:?}",
            target.name(),
            self.inputs,
            self.accepted,
            self.panics,
            self.largest,
            self.peak,
            self.slowest
        )
    }
}

thread_local! {
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside a target are caught and counted, not printed; the test's own still are.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_TARGET.with(std::cell::Cell::get) {
            default(info);
        }
    }));
}

#[test]
fn every_target_survives_a_short_mutational_run() {
    quiet_panics();
    let inputs = std::env::var("CAFE_FUZZ_SMOKE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INPUTS);
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (k, target) in Target::ALL.into_iter().enumerate() {
        let seeds = seeds_of(target);
        let mut rng = Rng(0xCAFE_0000 + k as u64);
        let mut tally = Tally::default();
        // A refused seed explores only its refusal: say so, and require one accepted seed
        // (a seed copied from a protocol file may lag behind a change of the settings).
        let mut accepted = 0;
        for seed in &seeds {
            match target.run(seed, scratch.path()) {
                Ok(()) => accepted += 1,
                Err(e) => println!(
                    "{}: a seed is refused (scripts/fuzz/seeds.sh refreshes them): {e}",
                    target.name()
                ),
            }
            tally.run(target, seed, scratch.path(), "seed");
        }
        assert!(accepted > 0, "{}: every seed is refused", target.name());
        for i in 0..inputs {
            let bytes = input(target, &seeds, &mut rng);
            tally.run(target, &bytes, scratch.path(), &i.to_string());
        }
        println!("{}", tally.line(target));
        failures.extend(tally.failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn replay_a_corpus() {
    let (Some(dir), Ok(name)) = (std::env::var_os("CAFE_FUZZ_REPLAY"), std::env::var("CAFE_FUZZ_TARGET")) else {
        return;
    };
    quiet_panics();
    let target = Target::from_name(&name).unwrap_or_else(|| panic!("no fuzz target '{name}'"));
    let scratch = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    for (i, file) in files_in(Path::new(&dir)).iter().enumerate() {
        tally.run(
            target,
            &std::fs::read(file).unwrap(),
            scratch.path(),
            &format!("replay-{i}"),
        );
    }
    println!("{}", tally.line(target));
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
}
