#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs every test on real parts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

ensure_rust
# shellcheck disable=SC2086
ensure_packages $PKGS_BUILD $PKGS_RUNTIME

log "building (target dir: $CARGO_TARGET_DIR)"
cargo build --locked --workspace --bins
log "running the tests"
# The e2e tests look for binaries beside themselves, in the same target dir.
export RUST_BACKTRACE="${SC_BACKTRACE:-0}"
dbus-run-session -- scripts/session.sh cargo test --locked --workspace "$@"
