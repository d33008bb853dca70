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
# shellcheck disable=SC2317 # run by the EXIT trap (0.9 takes it for unreachable once the script calls exit)
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
# In the foreground, as a child of this script: `--unlock` alone forks and names no pid, so the
# daemon was never ours to watch or stop. The command starts only once the Secret Service answers
# with its default collection unlocked: a client that came first would have the bus start a second,
# locked keyring of its own ("result not returned from SS API").
printf 'session-password' | gnome-keyring-daemon --foreground --unlock --components=secrets \
  >"$session_dir/keyring.log" 2>&1 &
keyring_pid="$!"
# Asked by NameHasOwner first: a call to the service itself before the daemon holds its name would
# have the bus start that second keyring, and this one would quit ("another secret service is running").
keyring_unlocked() {
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true' &&
    dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets/aliases/default \
    org.freedesktop.DBus.Properties.Get string:org.freedesktop.Secret.Collection string:Locked 2>/dev/null |
    grep -q 'boolean false'
}
for _ in $(seq 1 100); do keyring_unlocked && break; sleep 0.1; done
if ! keyring_unlocked; then
  echo "session.sh: gnome-keyring's Secret Service did not come up unlocked within 10 s:" >&2
  cat "$session_dir/keyring.log" >&2
  exit 1
fi

if [ -z "${SC_NO_DISPLAY:-}" ]; then
  display="$(free_display)"
  Xvfb ":$display" -screen 0 "${SC_SCREEN:-1280x800x24}" -nolisten tcp >"$session_dir/xvfb.log" 2>&1 &
  pids+=("$!")
  export DISPLAY=":$display"
  for _ in $(seq 1 100); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done
  matchbox-window-manager -use_titlebar no >"$session_dir/wm.log" 2>&1 &
  pids+=("$!")
fi

status=0
"$@" || status=$?
# A keyring that died under the tests makes every later keystore call fail alike: say so plainly.
if ! kill -0 "$keyring_pid" 2>/dev/null; then
  echo "session.sh: gnome-keyring-daemon (pid $keyring_pid) exited while the command ran; its output:" >&2
  cat "$session_dir/keyring.log" >&2
fi
exit "$status"
