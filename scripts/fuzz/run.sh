#!/usr/bin/env bash
# Coverage-guided fuzzing of cafe-lab's parsers of untrusted input with AFL++ (cargo-afl, which
# works on stable Rust), SECONDS per target:
#
#   scripts/fuzz/run.sh TARGET SECONDS     one target (names: scripts/fuzz/run.sh list)
#   scripts/fuzz/run.sh all SECONDS        every target, one after the other
#
# Each target starts afresh from fuzz/seeds/TARGET/ and writes AFL++'s findings to
# fuzz/out/TARGET/ (a previous run's findings there are replaced: copy them away to keep them).
# Afterwards everything AFL++ kept (its queue, crashes and hangs) is replayed through the same
# target by tests/fuzz_smoke.rs (replay_a_corpus), which counts panics and the largest
# allocation under a counting allocator, under /usr/bin/time -v for the peak resident memory.
# One line per target: inputs run, crashes, hangs, replayed files, panics, peak memory.
#
# Needs cargo-afl (`cargo install cargo-afl --locked` builds AFL++ too). The first build
# instruments every dependency and takes long (about 40 minutes on two busy cores); later ones
# only rebuild what changed. FUZZ_NICE (default 19) is the niceness of the fuzzers,
# CAFE_FUZZ_SCRATCH the folder the file targets write their inputs to (default: a tmpfs).
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGETS=(tensor_file checkpoint synthetic_set expert teacher idx cifar mat gzip zlib config_toml config_set protocol)
usage() {
  echo "usage: $0 TARGET|all SECONDS   (targets: ${TARGETS[*]})" >&2
  exit 2
}
[ "${1:-}" = list ] && { echo "${TARGETS[*]}"; exit 0; }
[ $# -eq 2 ] || usage
which_target=$1
seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] || usage
if [ "$which_target" = all ]; then
  selected=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $which_target "* ]] || usage
  selected=("$which_target")
fi
command -v cargo-afl >/dev/null || {
  echo "cargo-afl is not installed: cargo install cargo-afl --locked" >&2
  exit 1
}
nice_level=${FUZZ_NICE:-19}
out=fuzz/out
scratch_root=${CAFE_FUZZ_SCRATCH:-$([ -d /dev/shm ] && echo /dev/shm/cafe-fuzz || echo "${TMPDIR:-/tmp}/cafe-fuzz")}

echo "building the AFL++ harness (fuzz/) ..."
(cd fuzz && nice -n "$nice_level" cargo afl build --release --quiet)
echo "building the replay harness (tests/fuzz_smoke.rs) ..."
replay=$(nice -n "$nice_level" cargo test --release -p cafe-tests --test fuzz_smoke --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*fuzz_smoke[^"]*\)".*/\1/p' | tail -1)
[ -x "$replay" ] || { echo "could not build tests/fuzz_smoke.rs" >&2; exit 1; }

stat_of() { awk -F: -v k="$1" '$1 ~ "^"k" *$" { gsub(/ /, "", $2); print $2 }' "$2"; }

printf '%-14s %12s %8s %6s %9s %7s %14s %12s\n' target inputs crashes hangs replayed panics largest_alloc peak_rss
status=0
for t in "${selected[@]}"; do
  rm -rf "${out:?}/$t"
  mkdir -p "$out/$t" "$scratch_root/$t"
  # AFL_NO_AFFINITY: the cores are shared; AFL_SKIP_CPUFREQ / AFL_I_DONT_CARE_...: no root
  # settings needed. -m 2048: an input that makes the target allocate 2 GiB is a crash.
  AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    CAFE_FUZZ_TARGET="$t" CAFE_FUZZ_SCRATCH="$scratch_root/$t" \
    nice -n "$nice_level" cargo afl fuzz -V "$seconds" -m 2048 -t 5000 -i "fuzz/seeds/$t" -o "$out/$t" \
    fuzz/target/release/cafe-fuzz >"$out/$t.log" 2>&1 || { echo "$t: afl-fuzz failed, see $out/$t.log" >&2; status=1; continue; }
  stats="$out/$t/default/fuzzer_stats"
  execs=$(stat_of execs_done "$stats")
  crashes=$(stat_of saved_crashes "$stats")
  hangs=$(stat_of saved_hangs "$stats")
  # Everything AFL++ kept, in one folder, replayed under the counting allocator.
  corpus="$out/$t.replay"
  rm -rf "$corpus" && mkdir -p "$corpus"
  for d in queue crashes hangs; do
    find "$out/$t/default/$d" -maxdepth 1 -type f -name 'id*' -exec cp {} "$corpus/" \; 2>/dev/null || true
  done
  replayed=$(find "$corpus" -type f | wc -l)
  line=$(CAFE_FUZZ_REPLAY="$corpus" CAFE_FUZZ_TARGET="$t" /usr/bin/time -v "$replay" --exact replay_a_corpus --nocapture \
    2>"$out/$t.time" | grep "inputs," || true)
  panics=$(sed -n 's/.* \([0-9]*\) panics.*/\1/p' <<<"$line")
  largest=$(sed -n 's/.*largest allocation *\([0-9]*\) B.*/\1/p' <<<"$line")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out/$t.time")
  printf '%-14s %12s %8s %6s %9s %7s %12s B %9s KiB\n' "$t" "$execs" "$crashes" "$hangs" "$replayed" "${panics:-?}" \
    "${largest:-?}" "${rss:-?}"
  [ "$crashes" = 0 ] && [ "$hangs" = 0 ] && [ "${panics:-1}" = 0 ] || status=1
done
exit $status
