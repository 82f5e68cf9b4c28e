#!/usr/bin/env bash
# vendor/candle-core must be crates.io's candle-core 0.11.1, byte for byte, plus
# vendor/candle-core.patch, plus vendor/candle-core/CAFE_LAB_PATCH.md (which says why). This
# rebuilds that tree in a temporary folder from the registry's .crate and compares.
#
#   scripts/candle-patch/check.sh            check: exit 0 when equal, 1 with the differences
#   scripts/candle-patch/check.sh --write    rewrite vendor/candle-core from the .crate and the
#                                            patch (keeps CAFE_LAB_PATCH.md): the upgrade path
#   scripts/candle-patch/check.sh --diff     print vendor/candle-core's diff from the .crate:
#                                            the patch as it should be (after editing the tree,
#                                            `--diff > vendor/candle-core.patch`)
#   --offline (with any of them)             never download; exit 2 when the .crate is in no
#                                            cache (tests/candle_patch.rs skips on that)
#
# The .crate is taken from cargo's cache, or from target/candle-patch/ (or
# $CARGO_TARGET_DIR/candle-patch/), or else downloaded from static.crates.io into the latter;
# wherever it comes from, its sha256 must be the one below. Exit 2 always means something to
# install is missing, with a line `missing: ...` and a line `install: ...` on stderr.
set -euo pipefail

VERSION=0.11.1
# sha256 of candle-core-0.11.1.crate as crates.io's index lists it (`cksum` in
# https://index.crates.io/ca/nd/candle-core; the `checksum` a Cargo.lock records for it where no
# [patch] replaces it). Upgrading candle means changing VERSION and this together.
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
URL="https://static.crates.io/crates/candle-core/candle-core-$VERSION.crate"

root=$(cd "$(dirname "$0")/../.." && pwd)
vendored="$root/vendor/candle-core"
patchfile="$root/vendor/candle-core.patch"
doc=CAFE_LAB_PATCH.md
download_dir="${CARGO_TARGET_DIR:-$root/target}/candle-patch"

mode=check
offline=0
for arg in "$@"; do
  case "$arg" in
    --write) mode=write ;;
    --diff) mode=diff ;;
    --offline) offline=1 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$arg' (--write, --diff, --offline, --help)" >&2; exit 64 ;;
  esac
done

missing() { # what, install line
  echo "missing: $1" >&2
  echo "install: $2" >&2
  exit 2
}

for tool in tar patch diff sha256sum; do
  command -v "$tool" >/dev/null || missing "the '$tool' command" "sudo apt-get install $tool"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The .crate: a cached copy with the right checksum, or a checked download.
crate=""
for candidate in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"candle-core-$VERSION.crate" \
  "$download_dir/candle-core-$VERSION.crate"; do
  [ -f "$candidate" ] || continue
  sum=$(sha256sum "$candidate" | cut -d' ' -f1)
  if [ "$sum" != "$SHA256" ]; then
    echo "check.sh: $candidate has sha256 $sum, not crates.io's $SHA256: delete it" >&2
    exit 1
  fi
  crate="$candidate"
  break
done
if [ -z "$crate" ]; then
  if [ "$offline" = 1 ]; then
    missing "the registry's candle-core-$VERSION.crate (in cargo's cache or $download_dir, where check.sh without --offline downloads it, sha256-checked)" \
      "scripts/candle-patch/check.sh"
  fi
  command -v curl >/dev/null || missing "the 'curl' command" "sudo apt-get install curl"
  curl -fsSL --retry 2 -o "$tmp/download.crate" "$URL" \
    || { echo "check.sh: could not download $URL" >&2; exit 1; }
  sum=$(sha256sum "$tmp/download.crate" | cut -d' ' -f1)
  if [ "$sum" != "$SHA256" ]; then
    echo "check.sh: $URL has sha256 $sum, not crates.io's $SHA256" >&2
    exit 1
  fi
  mkdir -p "$download_dir"
  mv "$tmp/download.crate" "$download_dir/candle-core-$VERSION.crate"
  crate="$download_dir/candle-core-$VERSION.crate"
fi

# The registry's tree, as published (a .crate holds one folder, name-version/).
mkdir "$tmp/registry"
tar -xzf "$crate" -C "$tmp/registry"
registry="$tmp/registry/candle-core-$VERSION"
[ -d "$registry" ] || { echo "check.sh: $crate holds no candle-core-$VERSION/" >&2; exit 1; }

if [ "$mode" = diff ]; then
  # a/ the registry's tree, b/ the vendored one without the note; no timestamps, so that the
  # output is the same on every machine.
  mv "$registry" "$tmp/a"
  cp -a "$vendored" "$tmp/b"
  rm -f "$tmp/b/$doc"
  status=0
  (cd "$tmp" && diff -ruN a b) >"$tmp/out.patch" || status=$?
  [ "$status" -le 1 ] || exit "$status"
  sed -E 's/^((---|\+\+\+) [^\t]+)\t.*$/\1/' "$tmp/out.patch"
  exit 0
fi

if ! patch -d "$registry" -p1 --forward --batch --silent --no-backup-if-mismatch --fuzz=0 \
  <"$patchfile" >"$tmp/patch.log" 2>&1; then
  cat "$tmp/patch.log" >&2
  echo "check.sh: vendor/candle-core.patch does not apply exactly (no fuzz) to candle-core" >&2
  echo "$VERSION. After an upgrade, port the change by hand in vendor/candle-core; otherwise the" >&2
  echo "patch file was edited. Either way, regenerate it from the tree with --diff." >&2
  exit 1
fi

if [ "$mode" = write ]; then
  [ -f "$vendored/$doc" ] && cp "$vendored/$doc" "$registry/$doc"
  rm -rf "$vendored"
  cp -a "$registry" "$vendored"
  [ -f "$vendored/$doc" ] || echo "check.sh: write vendor/candle-core/$doc (what changed and why)" >&2
  echo "vendor/candle-core rewritten: candle-core $VERSION + vendor/candle-core.patch"
  exit 0
fi

[ -f "$vendored/$doc" ] || { echo "check.sh: vendor/candle-core/$doc is missing" >&2; exit 1; }
status=0
diff -r -x "$doc" "$registry" "$vendored" >"$tmp/differences" 2>&1 || status=$?
if [ "$status" != 0 ]; then
  sed "s|$tmp/registry/candle-core-$VERSION|registry+patch|g; s|$root/||g" "$tmp/differences" >&2
  echo "check.sh: vendor/candle-core is not candle-core $VERSION + vendor/candle-core.patch" >&2
  echo "(+ $doc); to see the change as a patch: scripts/candle-patch/check.sh --diff" >&2
  exit 1
fi
echo "vendor/candle-core = candle-core $VERSION (sha256 ${SHA256:0:12}...) + vendor/candle-core.patch + $doc"
