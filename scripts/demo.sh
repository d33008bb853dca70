#!/usr/bin/env bash
# The demo: a care server with embedded SQLite and demo data, coturn, an enrolled laptop, the kiosk window.
# With a desktop session it opens the window there and you play the consultant in your own browser.
# With no display it runs everything under Xvfb: the nurse signs in with the keyboard, a headless
# Chromium plays the consultant (admits the laptop, shares a CT), and each step's screenshot is saved
# under artifacts/. Whatever it started is stopped when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

stop_own_processes_on_exit

prepare
# The same build as the test command's, so neither rebuilds after the other.
cargo build --locked --workspace --bins
# Sample X-ray, CT and MR files for the consultant to share (pydicom's test files).
dicom_test_files

if [ -n "${DISPLAY:-}" ] && [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  run_in_background scripts/demo-session.sh
else
  log "no desktop session here: running the kiosk under Xvfb with a private keyring"
  consultant_driver
  SC_DEMO_HEADLESS=1 run_in_background dbus-run-session -- scripts/session.sh scripts/demo-session.sh
fi
