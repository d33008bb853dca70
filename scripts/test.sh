#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs every test on real parts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

prepare
prepare_tests
cargo build --locked --workspace --bins
consultant_driver
dicom_test_files
log "running the tests"
# The e2e tests look for binaries beside themselves, in the same target dir.
export RUST_BACKTRACE="${SC_BACKTRACE:-0}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
dbus-run-session -- scripts/session.sh cargo test --locked --no-fail-fast --workspace --lib --bins --tests "$@" 2>&1 | tee "$out"
status="${PIPESTATUS[0]}"
if [ "$#" -eq 0 ]; then
  # The care server's storage tests again on PostgreSQL, on a private cluster stopped afterwards.
  pgdir="$(mktemp -d /tmp/sc-pg.XXXXXX)"
  trap 'rm -f "$out"; scripts/postgres.sh stop "$pgdir"' EXIT
  if url="$(scripts/postgres.sh start "$pgdir")"; then
    log "the care server's tests on PostgreSQL"
    SC_TEST_DATABASE_URL="$url" SC_TEST_DATABASE_TLS_URL="$(cat "$pgdir/tls.url")" SC_TEST_DATABASE_CA="$pgdir/tls/ca.pem" \
      cargo test --locked --no-fail-fast -p sc-server --lib --test it 2>&1 | tee -a "$out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    # And the end-to-end flows whose server is in the test (tests/src/lib.rs: CareServer); built
    # as the whole workspace, so its dependencies' features match the first pass (no rebuild).
    SC_TEST_DATABASE_URL="$url" dbus-run-session -- scripts/session.sh cargo test --locked --no-fail-fast --workspace \
      --test e2e -- activation:: authz_matrix:: brick:: care_pathway:: faults:: instances:: signalling:: 2>&1 | tee -a "$out"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  else
    log "PostgreSQL did not start"
    status=1
  fi
  # Every parser of untrusted bytes under libFuzzer, briefly (scripts/fuzz.sh 3600 for long runs).
  scripts/fuzz.sh "${SC_FUZZ_SECS:-10}" || status=1
fi
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;/) p += $(i-1); if ($i ~ /^failed;/) f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
