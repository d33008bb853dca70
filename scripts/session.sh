#!/usr/bin/env bash
# Runs a command inside a private desktop session: a D-Bus session bus (from dbus-run-session)
# with gnome-keyring's Secret Service unlocked, an Xvfb display and a window manager.
# Usage: dbus-run-session -- scripts/session.sh COMMAND...   Everything it starts it stops.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

session_dir="$(mktemp -d /tmp/secureconsult-session.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${keyring_pid:-}" ]; then kill "$keyring_pid" 2>/dev/null || true; fi
  rm -rf "$session_dir"
}
trap cleanup EXIT

# A keyring of this session's own, so tests never touch the user's.
export XDG_DATA_HOME="$session_dir/data"
export XDG_RUNTIME_DIR="$session_dir/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
eval "$(printf 'session-password' | gnome-keyring-daemon --unlock --components=secrets)"
keyring_pid="${GNOME_KEYRING_PID:-}"

if [ -z "${SC_NO_DISPLAY:-}" ]; then
  display="$(free_display)"
  Xvfb ":$display" -screen 0 "${SC_SCREEN:-1280x800x24}" -nolisten tcp >"$session_dir/xvfb.log" 2>&1 &
  pids+=("$!")
  export DISPLAY=":$display"
  for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
  matchbox-window-manager -use_titlebar no >"$session_dir/wm.log" 2>&1 &
  pids+=("$!")
fi

"$@"
