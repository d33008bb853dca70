#!/usr/bin/env bash
# The demo: a care server with embedded SQLite and demo data, an enrolled laptop, the kiosk window.
# With a desktop session it opens the window there; with no display it runs the window under Xvfb,
# signs in with the keyboard as a nurse would, and saves screenshots under artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

prepare
cargo build --locked -p sc-server -p sc-kiosk --bins
# Sample X-ray, CT and MR files for the consultant to share (pydicom's test files).
dicom_test_files

if [ -n "${DISPLAY:-}" ] && [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  exec scripts/demo-session.sh
fi
log "no desktop session here: running the kiosk under Xvfb with a private keyring"
SC_DEMO_HEADLESS=1 exec dbus-run-session -- scripts/session.sh scripts/demo-session.sh
