#!/usr/bin/env bash
# The demo's steps inside a desktop session (real or the private one from session.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh

bin="$CARGO_TARGET_DIR/debug"
demo="${SC_DEMO_DIR:-$PWD/artifacts/demo}"
artifacts="$PWD/artifacts"
rm -rf "$demo"
mkdir -p "$demo" "$artifacts"
server_dir="$demo/care-server"
kiosk_dir="$demo/kiosk"
password="demo-password-nurse"

server_pid=""
kiosk_pid=""
cleanup() {
  [ -n "$kiosk_pid" ] && kill "$kiosk_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  # The demo laptop's keys leave the keystore with it.
  rm -rf "$kiosk_dir"
}
trap cleanup EXIT

care() { "$bin/care-server" --data-dir "$server_dir" "$@"; }

log "care server: keys, database and demo data in $server_dir"
care init >/dev/null
care add-prison "HMP Demo" >/dev/null
staff_out="$(printf '%s\n' "$password" | care add-staff --username nurse.demo --name "Nurse Demo" --role nurse --prison "HMP Demo")"
totp_secret="$(printf '%s\n' "$staff_out" | sed -n 's/^TOTP secret (shown once): //p')"
totp_of() { sed -n 's/^TOTP secret (shown once): //p'; }
consultant_secret="$(printf '%s\n' "$password" | care add-staff --username dr.demo --name "Dr Demo" --role consultant | totp_of)"
it_secret="$(printf '%s\n' "$password" | care add-staff --username it.demo --name "IT Demo" --role it | totp_of)"
care add-appointment --consultant dr.demo --prison "HMP Demo" --in-minutes 5 >/dev/null
token="$(care enrol-token --prison "HMP Demo")"

care serve --listen 127.0.0.1:0 >"$demo/server.out" 2>"$demo/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^listening on //p' "$demo/server.out")"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$demo/server.log" >&2; log "the care server did not start"; exit 1; }
log "care server listening on $url"

log "enrolling the demo laptop (IT staff step)"
"$bin/secureconsult-kiosk" --data-dir "$kiosk_dir" enrol --server "$url" --token "$token"

code="$(oathtool --totp -b "$totp_secret")"
cat >&2 <<TXT

  Sign in on the kiosk as the demo nurse:
    user name : nurse.demo
    password  : $password
    code      : $code   (changes every 30 s: oathtool --totp -b $totp_secret)

  The consultant's page: $url/consult/  (dr.demo, same password, code: oathtool --totp -b $consultant_secret)
  IT staff's admin page: $url/admin/    (it.demo, same password, code: oathtool --totp -b $it_secret)
  (the certificate is from the demo's own CA: import $server_dir/ca.crt.pem into the browser)
  Images to share from the consultant's page during the call: ${SC_DICOM_DIR:-pydicom's test files}
  (e.g. CT_small.dcm, rtdose.dcm (multi-frame), MR_small*.dcm (a series), MR_small_jpeg_ls_lossless.dcm (refused))

TXT

"$bin/secureconsult-kiosk" --data-dir "$kiosk_dir" 2>"$demo/kiosk.log" &
kiosk_pid=$!

if [ -z "${SC_DEMO_HEADLESS:-}" ]; then
  log "the kiosk window is open; close it (or Ctrl+C) to end the demo"
  wait "$kiosk_pid" || true
  exit 0
fi

shot() { import -window root "$1"; }
brand_at_top() { [ "$(convert "$1" -format '%[pixel:p{10,10}]' info:)" = "srgb(11,110,79)" ]; }
has_button() { [ "$(convert "$1" -fill black +opaque '#0b6e4f' -fill white -opaque '#0b6e4f' -format '%[fx:mean>0.002]' info:)" = 1 ]; }

for _ in $(seq 1 120); do
  shot "$artifacts/demo-lock-screen.png"
  has_button "$artifacts/demo-lock-screen.png" && break
  sleep 0.5
done
log "lock screen: $artifacts/demo-lock-screen.png"

code="$(oathtool --totp -b "$totp_secret")"
xdotool type --delay 40 nurse.demo; xdotool key Tab
xdotool type --delay 40 "$password"; xdotool key Tab
xdotool type --delay 40 "$code"; xdotool key Return
for _ in $(seq 1 120); do
  shot "$artifacts/demo-unlocked.png"
  brand_at_top "$artifacts/demo-unlocked.png" && break
  sleep 0.5
done
if brand_at_top "$artifacts/demo-unlocked.png"; then
  log "signed in; unlocked screen: $artifacts/demo-unlocked.png"
else
  log "the kiosk did not unlock; see $demo/kiosk.log"; exit 1
fi
log "server audit log (newest last):"
care audit --limit 6 >&2
