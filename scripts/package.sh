#!/usr/bin/env bash
# Builds the release binaries and the two Debian packages (installer/README.md) into OUT_DIR
# (default: dist/). Usage: scripts/package.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

out="${1:-dist}"
prepare
cargo build --locked --release -p sc-kiosk -p sc-server --bins
bash installer/build-deb.sh "$CARGO_TARGET_DIR/release" "$out"
