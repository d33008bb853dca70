# Shared by demo.sh, test.sh and bench.sh: package checks and the shared build directory.
# shellcheck shell=bash

# Debian packages by purpose. Checked first, installed only when missing, so re-runs are fast.
PKGS_BUILD="build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libsoup-3.0-dev \
libjavascriptcoregtk-4.1-dev libgtk-3-dev librsvg2-dev libxdo-dev libayatana-appindicator3-dev \
libvpx-dev libopus-dev libasound2-dev libclang-dev clang cmake"
PKGS_RUNTIME="dbus dbus-x11 gnome-keyring xvfb xauth matchbox-window-manager imagemagick xdotool oathtool procps \
coturn chromium"

log() { printf '\033[1m[secureconsult]\033[0m %s\n' "$*" >&2; }

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
  fi
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || { log "cargo is required (rustup.rs)"; exit 1; }
}

# Everything a script needs before it builds: the toolchain and the Debian packages.
prepare() {
  ensure_rust
  # shellcheck disable=SC2086
  ensure_packages $PKGS_BUILD $PKGS_RUNTIME
  log "building (target dir: $CARGO_TARGET_DIR)"
}

# One build directory outside the clone, shared by every checkout on this machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/secureconsult/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Picks a free X display number.
free_display() {
  local n
  for n in $(seq 90 140); do
    [ -e "/tmp/.X${n}-lock" ] || [ -e "/tmp/.X11-unix/X${n}" ] || { echo "$n"; return; }
  done
  echo 199
}

# The consultant in call tests and the benchmark: Debian's Chromium driven by playwright-core
# (no browser download). Node.js from Debian only when the machine has none.
consultant_driver() {
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
  if [ ! -d tests/consultant/node_modules/playwright-core ]; then
    (cd tests/consultant && npm ci --no-audit --no-fund)
  fi
}
