#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ for SECONDS each (default 10) on the stable toolchain: the
# coverage instrumentation libFuzzer needs is plain rustc options (no nightly, no cargo-fuzz).
# Each target starts from its corpus in fuzz/corpus/<target>, copied to a scratch directory so a
# run leaves the clone as it was; with --keep, the inputs a run found are merged back (minimised).
# Prints the executions each target survived; a crash fails the run and its input is kept in
# $CARGO_TARGET_DIR/fuzz-artifacts/<target>/.
#   scripts/fuzz.sh            # the test command's smoke run
#   scripts/fuzz.sh 3600 --keep   # a long run that grows the corpora
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

secs="${1:-10}"
keep="${2:-}"
targets=(signal requests brick kiosk_files share_decode share_session)
triple="$(rustc -vV | sed -n 's/^host: //p')"
# What cargo-fuzz passes, minus the sanitizer (-Zsanitizer needs nightly); debug assertions and
# overflow checks on, so arithmetic on hostile input panics here if it can anywhere.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
log "building the fuzz targets"
# --target keeps the flags off build scripts and proc macros.
cargo build --locked --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
unset RUSTFLAGS

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
printf '%-14s %12s %8s\n' target executions seconds
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t" "$CARGO_TARGET_DIR/fuzz-artifacts/$t"
  cp -r "fuzz/corpus/$t/." "$scratch/$t/"
  set +e
  "$CARGO_TARGET_DIR/$triple/release/$t" "$scratch/$t" -max_total_time="$secs" -max_len=65536 \
    -artifact_prefix="$CARGO_TARGET_DIR/fuzz-artifacts/$t/" -print_final_stats=1 >"$scratch/$t.log" 2>&1
  rc=$?
  set -e
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log" | tail -n1)"
  printf '%-14s %12s %8s\n' "$t" "${runs:-?}" "$secs"
  if [ "$rc" -ne 0 ]; then
    log "fuzz target $t failed (exit $rc): its input is in $CARGO_TARGET_DIR/fuzz-artifacts/$t/"
    tail -n 40 "$scratch/$t.log" >&2
    status=1
  elif [ "$keep" = "--keep" ]; then
    "$CARGO_TARGET_DIR/$triple/release/$t" -merge=1 "fuzz/corpus/$t" "$scratch/$t" >/dev/null 2>&1
  fi
done
exit "$status"
