#!/usr/bin/env bash
# The benchmark command: prints the figures (release build, real server, keystore and window).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

prepare
cargo build --locked --release --workspace --bins
consultant_driver
dicom_test_files
# The storage figures (issue #17) set SQLite beside PostgreSQL, on a private cluster; the shaped
# links' consultant speaks with espeak-ng's voice (sc_e2e::media::write_voice_wav).
ensure_packages postgresql espeak-ng
pgdir="$(mktemp -d /tmp/sc-pg.XXXXXX)"
trap 'scripts/postgres.sh stop "$pgdir"' EXIT
SC_BENCH_DATABASE_URL="$(scripts/postgres.sh start "$pgdir")"
export SC_BENCH_DATABASE_URL
# The load figures hold 2,000 connections, both ends in one process: raise the descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The bench's own logs go to a file, not the screen; a failure prints their end (a panic's message
# was lost once when they went to /dev/null).
mkdir -p artifacts/bench
errlog=artifacts/bench/stderr.log
if ! dbus-run-session -- scripts/session.sh cargo bench --locked -p sc-e2e --bench figures 2>"$errlog"; then
  tail -n 60 "$errlog" >&2
  log "the benchmark failed; its whole log: $errlog"
  exit 1
fi
