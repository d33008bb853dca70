# Shared by demo.sh, test.sh and bench.sh: package checks and the shared build directory.
# shellcheck shell=bash

# Debian packages by purpose. Checked first, installed only when missing, so re-runs are fast.
PKGS_BUILD="build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libsoup-3.0-dev \
libjavascriptcoregtk-4.1-dev libgtk-3-dev librsvg2-dev libxdo-dev libayatana-appindicator3-dev \
libvpx-dev libopus-dev libasound2-dev libclang-dev clang cmake"
PKGS_RUNTIME="dbus dbus-x11 gnome-keyring xvfb xauth matchbox-window-manager imagemagick xdotool oathtool procps strace \
coturn chromium openssl python3 iproute2 nftables"
# Only the tests: a clock set wrong for one process (libfaketime), and the kiosk session headless
# (cage, its Xwayland, grim for screenshots, xmessage as a second program); lintian for the .debs;
# xmllint to validate the generated Windows policy against policy/windows/schema; DCMTK, the
# reference renderer the image decoder is compared with (e2e::reference); PostgreSQL, the second
# storage backend, whose own cluster the test script starts (scripts/postgres.sh); HAProxy, the
# load balancer in front of two care server instances (e2e::instances); espeak-ng, the voice the
# consultant's Chromium speaks on the shaped links and in the benchmark (sc_e2e::media).
PKGS_TEST="faketime cage grim xwayland x11-utils lintian libxml2-utils dcmtk libnss3-tools postgresql haproxy espeak-ng"

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

# What only the tests need, on top of prepare's.
prepare_tests() {
  # shellcheck disable=SC2086
  ensure_packages $PKGS_TEST
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
  if [ ! -d tests/consultant/node_modules/playwright-core ] || [ ! -d tests/consultant/node_modules/axe-core ] || [ ! -d tests/consultant/node_modules/fhir ]; then
    (cd tests/consultant && npm ci --no-audit --no-fund)
  fi
}

# The DICOM test files: the pydicom wheel's data/test_files (real CT, MR in several transfer
# syntaxes, JPEG, RLE, JPEG 2000, multi-frame, and deliberately broken files), pinned by version.
PYDICOM_VERSION="3.0.2"
dicom_test_files() {
  local dir="${SC_DICOM_CACHE:-$HOME/.cache/secureconsult/pydicom}"
  export SC_DICOM_DIR="$dir/test_files"
  [ -f "$dir/test_files/CT_small.dcm" ] && [ -f "$dir/.version-$PYDICOM_VERSION" ] && return 0
  command -v python3 >/dev/null 2>&1 || ensure_packages python3
  python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
  log "fetching pydicom $PYDICOM_VERSION's test files into $dir"
  rm -rf "$dir" && mkdir -p "$dir"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "pydicom==$PYDICOM_VERSION" -d "$dir/wheel"
  python3 - "$dir" <<'PY'
import glob, os, sys, zipfile
dest = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(dest, "wheel", "*.whl"))[0])
for name in wheel.namelist():
    if "/data/test_files/" in name and not name.endswith("/"):
        target = os.path.join(dest, "test_files", name.split("/data/test_files/", 1)[1])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            out.write(wheel.read(name))
PY
  touch "$dir/.version-$PYDICOM_VERSION"
}

# A free port on 127.0.0.1 (udp or tcp): bound, noted, let go; the caller binds it a moment later.
free_port() {
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

# Tags every process this script starts from now on (the tag is inherited through the environment,
# also by daemons that leave the process tree) and, on exit, interruption or failure, stops them all.
stop_own_processes_on_exit() {
  SC_RUN_TAG="secureconsult-$$-$RANDOM$RANDOM"
  export SC_RUN_TAG
  trap stop_tagged_processes EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Every process but this shell whose environment carries this run's tag.
tagged_processes() {
  local f pid
  for f in /proc/[0-9]*/environ; do
    pid="${f#/proc/}"
    pid="${pid%/environ}"
    # Not this shell, nor the subshell listing them.
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    grep -qszxF "SC_RUN_TAG=$SC_RUN_TAG" "$f" 2>/dev/null && echo "$pid"
  done
  return 0
}

stop_tagged_processes() {
  local round pids
  for round in $(seq 1 20); do
    mapfile -t pids < <(tagged_processes)
    [ "${#pids[@]}" -eq 0 ] && return 0
    # TERM first (each cleans up after itself), KILL what is left after five seconds.
    if [ "$round" -le 10 ]; then kill -TERM "${pids[@]}" 2>/dev/null || true; else kill -KILL "${pids[@]}" 2>/dev/null || true; fi
    sleep 0.5
  done
  return 0
}

# Runs a command in the background and waits for it, so that a signal to this script is handled at
# once (bash defers traps while a foreground command runs); returns the command's status.
run_in_background() {
  "$@" &
  wait "$!"
}

# Prints turnserver's --denied-peer-ip arguments (scripts/turn-denied-peers.txt), then
# --allowed-peer-ip=$1: the relay's own address, which the other peer's relayed address is on.
coturn_deny_args() {
  local range
  while IFS= read -r range; do
    case "$range" in '' | '#'*) continue ;; esac
    printf -- '--denied-peer-ip=%s\n' "$range"
  done <"$(dirname "${BASH_SOURCE[0]}")/turn-denied-peers.txt"
  printf -- '--allowed-peer-ip=%s\n' "$1"
}
