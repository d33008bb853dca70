#!/usr/bin/env bash
# Refreshes the README's pictures (docs/pictures/) from the demo's own screenshots: runs the README's
# demo command headless (the same run the demo test checks), then scales each step's screenshot down.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

env -u DISPLAY -u DBUS_SESSION_BUS_ADDRESS scripts/demo.sh
mkdir -p docs/pictures
for name in lock-screen unlocked call ct consultant note team; do
  # Half size, 64 colours: legible, and small enough to keep in the repository.
  convert "artifacts/demo-$name.png" -resize 50% -colors 64 -strip "docs/pictures/$name.png"
done
log "pictures refreshed in docs/pictures: $(cd docs/pictures && echo *.png)"
