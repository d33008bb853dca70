#!/usr/bin/env bash
# The demo's steps inside a desktop session (a real one, or the private one from session.sh).
# Headless (SC_DEMO_HEADLESS=1): the nurse signs in with the keyboard, a headless Chromium plays the
# consultant, and each step is checked on a screenshot; a step that fails names itself and its log.
# Started by scripts/demo.sh, which stops whatever this starts.
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
turn_secret="demo-turn-$RANDOM$RANDOM$RANDOM"

# The step under way and its log, for the message if it fails.
step="start"
step_log="$demo/server.log"
begin() {
  step="$1"
  step_log="$2"
  log "step: $step"
}
fail() {
  log "demo step '$step' failed: $1; see $step_log"
  exit 1
}
trap 'log "demo step \"$step\" failed (exit $?); see $step_log"' ERR

care() { "$bin/care-server" --data-dir "$server_dir" "$@"; }
totp_of() { sed -n 's/^TOTP secret (shown once): //p'; }

begin "care server data" "$demo/server.log"
care init >/dev/null
care add-prison "HMP Demo" >/dev/null
nurse_secret="$(printf '%s\n' "$password" | care add-staff --username nurse.demo --name "Nurse Demo" --role nurse --prison "HMP Demo" | totp_of)"
consultant_secret="$(printf '%s\n' "$password" | care add-staff --username dr.demo --name "Dr Demo" --role consultant --hospital "St Demo Hospital" | totp_of)"
it_secret="$(printf '%s\n' "$password" | care add-staff --username it.demo --name "IT Demo" --role it | totp_of)"
# The prison's healthcare team lead, who reads the consultants' outcome notes on the team page.
lead_secret="$(printf '%s\n' "$password" | care add-staff --username nurse.lead --name "Lead Nurse Demo" --role nurse --prison "HMP Demo" | totp_of)"
care add-appointment --consultant dr.demo --prison "HMP Demo" --in-minutes 5 --patient A1234BC --initials JS >/dev/null
token="$(care enrol-token --prison "HMP Demo")"

begin "TURN relay (coturn)" "$demo/turn.log"
turn_port="$(free_port udp)"
turn_relay=$((40000 + turn_port % 10000))
mapfile -t turn_deny < <(coturn_deny_args 127.0.0.1)
# UDP only: the port was found free for UDP; a TCP listener on it can find it taken (a test run saw
# coturn retry that bind in its loop and answer the laptop's allocation too late to connect).
turnserver -n --no-cli --no-tls --no-dtls --no-tcp --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
  --listening-port="$turn_port" --min-port="$turn_relay" --max-port=$((turn_relay + 200)) \
  --allow-loopback-peers "${turn_deny[@]}" \
  --use-auth-secret --static-auth-secret="$turn_secret" --realm=secureconsult.demo \
  --pidfile="$demo/turn.pid" --db="$demo/turndb" --log-file=stdout --simple-log >"$demo/turn.log" 2>&1 &
for _ in $(seq 1 150); do
  grep -q "Total General servers" "$demo/turn.log" && break
  sleep 0.1
done
grep -q "Total General servers" "$demo/turn.log" || fail "coturn did not start"
cat >"$server_dir/care-server.toml" <<TOML
[turn]
urls = ["turn:127.0.0.1:$turn_port?transport=udp"]
TOML

begin "care server" "$demo/server.log"
SC_TURN_SECRET="$turn_secret" "$bin/care-server" --data-dir "$server_dir" serve --listen 127.0.0.1:0 \
  >"$demo/server.out" 2>"$demo/server.log" &
url=""
for _ in $(seq 1 100); do
  # The file may not exist yet (the server's shell opens it a moment after the fork).
  url="$(sed -n 's/^listening on //p' "$demo/server.out" 2>/dev/null || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || fail "the care server did not start"
log "care server listening on $url"

begin "enrol the laptop" "$demo/enrol.log"
printf '%s\n' "$token" | "$bin/secureconsult-kiosk" --data-dir "$kiosk_dir" enrol --server "$url" --token-file - 2>"$demo/enrol.log"

dicom="${SC_DICOM_DIR:-the pydicom test files}"
cat >&2 <<TXT

  Sign in on the kiosk as the demo nurse:
    user name : nurse.demo
    password  : $password
    code      : $(oathtool --totp -b "$nurse_secret")   (changes every 30 s: oathtool --totp -b $nurse_secret)

  The consultant's page: $url/consult/  (dr.demo, same password, code: oathtool --totp -b $consultant_secret)
  IT staff's admin page: $url/admin/    (it.demo, same password, code: oathtool --totp -b $it_secret)
  The prison team's page: $url/team/    (nurse.lead or nurse.demo, same password, code: oathtool --totp -b $lead_secret)
  (the certificate is from the demo's own CA: import $server_dir/ca.crt.pem into the browser)
  Images to share from the consultant's page during the call: $dicom
  (e.g. CT_small.dcm, rtdose.dcm (multi-frame), MR_small*.dcm (a series), MR_small_jpeg_ls_lossless.dcm (refused))

TXT

begin "kiosk window" "$demo/kiosk.log"
# A laptop without a camera (this machine, Xvfb) sends a test pattern and a tone instead.
media="${SC_KIOSK_MEDIA:-}"
if [ -z "$media" ] && { [ -n "${SC_DEMO_HEADLESS:-}" ] || ! compgen -G "/dev/video*" >/dev/null; }; then
  media="synthetic"
fi
SC_KIOSK_MEDIA="$media" SC_KIOSK_BIND=127.0.0.1:0 RUST_LOG=info \
  "$bin/secureconsult-kiosk" --data-dir "$kiosk_dir" 2>"$demo/kiosk.log" &
kiosk_pid=$!

if [ -z "${SC_DEMO_HEADLESS:-}" ]; then
  log "the kiosk window is open; close it (or Ctrl+C) to end the demo"
  wait "$kiosk_pid" || true
  exit 0
fi

# ---- Headless: each step waits for what a person would see, on a screenshot. ----

shot() { import -window root "$1" 2>/dev/null; }
pixel() { convert "$1" -format "%[pixel:p{$2,$3}]" info:; }
brand_at_top() { [ "$(pixel "$1" 10 10)" = "srgb(11,110,79)" ]; }
on_lock_screen() { [ "$(pixel "$1" 10 10)" = "srgb(244,247,246)" ] && has_brand "$1" 0.002; }
# More than `$2` of the screen in the brand colour (buttons, the top bar).
has_brand() { [ "$(convert "$1" -fill black +opaque '#0b6e4f' -fill white -opaque '#0b6e4f' -format "%[fx:mean>$2]" info:)" = 1 ]; }
luma() { convert "$1" -colorspace Gray -format "%[fx:int(255*p{$2,$3})]" info:; }
# The consultant's camera clip (bright left, dark right) fills the video area.
shows_consultant() { [ "$(luma "$1" 384 350)" -gt 150 ] && [ "$(luma "$1" 896 350)" -lt 100 ]; }
kiosk_alive() { kill -0 "$kiosk_pid" 2>/dev/null || fail "the kiosk exited"; }

# Screenshots into $1 until `$2 $1` holds, for at most $3 seconds.
wait_for_screen() {
  local file="$1" check="$2" secs="$3" i
  for i in $(seq 1 $((secs * 2))); do
    kiosk_alive
    shot "$file"
    "$check" "$file" && return 0
    [ "$i" -lt $((secs * 2)) ] && sleep 0.5
  done
  return 1
}

begin "lock screen" "$demo/kiosk.log"
wait_for_screen "$artifacts/demo-lock-screen.png" on_lock_screen 60 || fail "no lock screen"
log "lock screen: $artifacts/demo-lock-screen.png"

begin "nurse signs in" "$demo/kiosk.log"
code="$(oathtool --totp -b "$nurse_secret")"
xdotool type --delay 40 nurse.demo
xdotool key Tab
xdotool type --delay 40 "$password"
xdotool key Tab
xdotool type --delay 40 "$code"
xdotool key Return
# Two Join buttons below the top bar (today's appointment's and the room-code form's), not one.
appointment_listed() {
  brand_at_top "$1" &&
    [ "$(convert "$1" -crop 1280x680+0+120 -fill black +opaque '#0b6e4f' -fill white -opaque '#0b6e4f' -format '%[fx:mean>0.015]' info:)" = 1 ]
}
wait_for_screen "$artifacts/demo-unlocked.png" appointment_listed 60 || fail "the kiosk did not unlock"
log "unlocked, with today's appointment: $artifacts/demo-unlocked.png"

begin "consultant signs in" "$demo/consultant.log"
# The consultant's camera: a clip of known content (bright left, dark right) for Chromium's fake camera.
python3 - "$demo/consultant.y4m" <<'PY'
import sys
w, h = 640, 480
row = bytes([200] * (w // 2) + [60] * (w // 2))
with open(sys.argv[1], "wb") as f:
    f.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
    for _ in range(15):
        f.write(b"FRAME\n" + row * h + bytes([128]) * (w * h // 2))
PY
spki="$(openssl pkey -in "$server_dir/server.key.pem" -pubout -outform DER | openssl dgst -sha256 -binary | base64)"
mkfifo "$demo/consultant.in"
SC_URL="$url" SC_USER=dr.demo SC_PASSWORD="$password" SC_CODE="$(oathtool --totp -b "$consultant_secret")" \
  SC_Y4M="$demo/consultant.y4m" SC_SPKI="$spki" SC_HEADLESS=1 \
  node tests/consultant/share.mjs <"$demo/consultant.in" >"$demo/consultant.jsonl" 2>"$demo/consultant.log" &
consultant_pid=$!
exec 3>"$demo/consultant.in"
tell() { printf '%s\n' "$1" >&3; }
# Waits up to $2 seconds for a line of the consultant's reports matching $1.
wait_for_consultant() {
  local i
  for i in $(seq 1 $(($2 * 4))); do
    grep -q "$1" "$demo/consultant.jsonl" && return 0
    grep -q '"event":"error"' "$demo/consultant.jsonl" && fail "the consultant's browser reported an error"
    kill -0 "$consultant_pid" 2>/dev/null || fail "the consultant's browser exited"
    kiosk_alive
    [ "$i" -lt $(($2 * 4)) ] && sleep 0.25
  done
  return 1
}

begin "nurse joins the appointment" "$demo/kiosk.log"
# The first appointment's Join button has the focus.
xdotool key Return

begin "consultant admits the laptop" "$demo/consultant.log"
wait_for_consultant '"event":"share_open"' 90 || fail "the call did not connect"

begin "the call on the kiosk" "$demo/kiosk.log"
wait_for_screen "$artifacts/demo-call.png" shows_consultant 30 || fail "the consultant's video is not on the kiosk"
log "in the call: $artifacts/demo-call.png"

begin "consultant shares a CT" "$demo/consultant.log"
tell "{\"do\":\"share\",\"files\":[\"$SC_DICOM_DIR/CT_small.dcm\"]}"
wait_for_consultant '"type":"shown"' 60 || fail "the kiosk did not show the CT"

begin "the CT on the kiosk" "$demo/kiosk.log"
# The viewer draws the image at the left, in greys of many levels, and moves the consultant's video
# into the column at the top right.
ct_drawn() {
  [ "$(luma "$1" 1030 128)" -gt 150 ] && [ "$(luma "$1" 1190 128)" -lt 100 ] &&
    [ "$(convert "$1" -crop 600x500+170+100 -colorspace HSL -channel G -separate -format '%[fx:mean<0.05]' info:)" = 1 ] &&
    [ "$(convert "$1" -crop 600x500+170+100 -colorspace Gray -format '%[fx:standard_deviation>0.08]' info:)" = 1 ]
}
wait_for_screen "$artifacts/demo-ct.png" ct_drawn 30 || fail "the CT is not on the kiosk's screen"
log "the shared CT: $artifacts/demo-ct.png"
# The laptop starts its video a few seconds into a call on a link it has not measured yet.
tell '{"do":"laptop_video"}'
wait_for_consultant '"framesDecoded":[1-9][0-9]' 40 || fail "the laptop's video is not on the consultant's page"
tell "{\"do\":\"screenshot\",\"path\":\"$artifacts/demo-consultant.png\"}"
wait_for_consultant '"what":"screenshot"' 30 || fail "no screenshot of the consultant's page"
log "the consultant's page: $artifacts/demo-consultant.png"

begin "consultant ends the call" "$demo/kiosk.log"
tell '{"do":"end","stay":true}'
wait_for_screen "$artifacts/demo-after-call.png" appointment_listed 30 || fail "the kiosk did not return to its appointments"

begin "consultant writes the outcome note" "$demo/consultant.log"
tell "{\"do\":\"note\",\"summary\":\"Small lung nodule on the CT, likely benign.\",\"actions\":\"Book a repeat CT in 3 months.\",\"medication\":\"No change.\",\"follow_up\":\"Video review with the CT result\",\"urgency\":\"soon\",\"screenshot\":\"$artifacts/demo-note.png\"}"
wait_for_consultant '"event":"note_sent"' 30 || fail "the outcome note was not sent"
log "the outcome note: $artifacts/demo-note.png"
tell '{"do":"quit"}'
exec 3>&-

begin "the prison team acknowledges the note" "$demo/team.log"
SC_URL="$url" SC_USER=nurse.lead SC_PASSWORD="$password" SC_CODE="$(oathtool --totp -b "$lead_secret")" SC_SPKI="$spki" \
  SC_SCREENSHOT="$artifacts/demo-team.png" node tests/consultant/team.mjs >"$demo/team.jsonl" 2>"$demo/team.log" ||
  fail "the team page driver failed: $(cat "$demo/team.jsonl")"
grep -q '"event":"acknowledged"' "$demo/team.jsonl" || fail "the note was not acknowledged"
log "the prison team's page: $artifacts/demo-team.png"

begin "audit log" "$demo/server.log"
log "server audit log (newest last):"
care audit --limit 16 >&2
log "demo finished: screenshots in $artifacts (demo-*.png)"
