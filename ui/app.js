// The kiosk page: renders the state the Rust core reports; holds no state of its own worth stealing.
import { createRenderer } from "./video.js";

const { invoke, Channel } = window.__TAURI__.core;

const $ = (id) => document.getElementById(id);
let current = null;

function show(screen) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== `screen-${screen}`;
  document.body.dataset.screen = screen;
}

function formatLeft(secs) {
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60);
  return h > 0 ? `${h} h ${m} min left` : `${Math.max(m, secs > 0 ? 1 : 0)} min left`;
}

function render(view) {
  const changed = !current || current.screen !== view.screen;
  current = view;
  show(view.screen);
  if (view.screen === "locked") {
    const notice = $("notice");
    notice.hidden = !view.notice;
    notice.textContent = view.notice ? view.notice.message : "";
    notice.dataset.kind = view.notice ? view.notice.kind : "";
    if (changed) {
      $("password").value = "";
      $("code").value = "";
      $("username").focus();
    }
  } else if (view.screen === "disabled") {
    $("disabled-text").textContent = view.message;
  } else if (view.screen === "unlocked") {
    $("prison").textContent = view.prison;
    $("staff").textContent = `Signed in: ${view.staff}`;
    $("lease").textContent = formatLeft(view.lease_secs_left);
    if (changed) {
      loadAppointments();
      loadOutcomeNotes();
    }
  }
}

// One line when consultants' outcome notes await the healthcare team: where to read them, never
// what they say (this screen faces the patient too, and is never shown during a call).
async function loadOutcomeNotes() {
  const line = $("outcome-notes");
  try {
    const { unacknowledged } = await invoke("outcome_notes");
    line.hidden = unacknowledged === 0;
    line.textContent = unacknowledged === 1 ? "1 new outcome note for the healthcare team. Read it on the team page."
      : `${unacknowledged} new outcome notes for the healthcare team. Read them on the team page.`;
  } catch {
    // Only a reminder: the appointments' own error says what is wrong with the connection.
    line.hidden = true;
  }
}

// ---- Appointments and the call ----

const fmtTime = (secs) => new Date(secs * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

async function loadAppointments() {
  const list = $("appointments");
  try {
    const appts = await invoke("appointments");
    list.replaceChildren();
    for (const a of appts) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = `${fmtTime(a.starts_at)}-${fmtTime(a.ends_at)}  ${a.consultant}`;
      // Who to bring: the nurse checks the prison number and initials before joining.
      if (a.patient) {
        const who = document.createElement("strong");
        who.className = "patient";
        who.textContent = `Patient ${a.patient.prison_number} (${a.patient.initials.split("").join(".")}.)`;
        label.append(document.createElement("br"), who);
      }
      const join = document.createElement("button");
      join.type = "button";
      join.textContent = "Join";
      join.dataset.room = a.room_code;
      join.addEventListener("click", () => joinRoom(a.room_code));
      li.append(label, join);
      list.append(li);
    }
    $("no-appointments").hidden = appts.length > 0;
    const first = list.querySelector("button");
    (first || $("room-code")).focus();
  } catch (e) {
    $("no-appointments").hidden = false;
    $("no-appointments").textContent = e && e.message ? e.message : "Appointments could not be loaded.";
    $("room-code").focus();
  }
}

async function joinRoom(code) {
  $("room-error").hidden = true;
  $("call-notice").hidden = true;
  try {
    await invoke("join", { roomCode: code });
    renderCall({ phase: "joining" });
  } catch (e) {
    $("room-error").textContent = e && e.message ? e.message : "Could not join.";
    $("room-error").hidden = false;
  }
}

$("room-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  joinRoom($("room-code").value);
});

const toggles = { mute: ["Mute", "Unmute"], camera: ["Camera off", "Camera on"], "audio-only": ["Audio only", "Video on"] };
let withWhom = null;
function renderCall(phase) {
  const inCall = phase.phase === "in_call" || phase.phase === "connecting";
  const screen = inCall ? "call" : "waiting";
  const changed = !current || current.screen !== screen;
  current = { screen };
  show(screen);
  if (phase.phase === "joining") $("waiting-text").textContent = "Joining the waiting room…";
  // Who the call is with, named while waiting and on the call screen (the phases after waiting
  // do not repeat the appointment).
  if (phase.appointment) withWhom = phase.appointment;
  if (phase.phase === "waiting") {
    const from = withWhom.consultant_hospital ? ` (${withWhom.consultant_hospital})` : "";
    $("waiting-text").textContent = `Waiting for ${withWhom.consultant}${from} to let you in.`;
  }
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = withWhom ? `With ${withWhom.consultant}` : "";
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = (withWhom && withWhom.consultant_hospital) || "";
  $("call-with").replaceChildren(who, where);
  if (phase.phase === "connecting") $("call-phase").textContent = "Connecting…";
  if (phase.phase === "in_call") {
    // The connection indicator: a dot coloured by quality beside the words.
    const quality = phase.quality || "good";
    $("quality").dataset.quality = quality;
    $("quality").title = { good: "Good connection", weak: "Weak connection", sound_only: "Sound only" }[quality];
    $("call-phase").textContent = phase.notice || (quality === "weak" ? "In call · weak connection" : "In call");
    $("switch-camera").hidden = phase.cameras < 2;
    // The consultant drives the shared images; the nurse sees progress and problems, and may reset.
    const images = phase.images || {};
    const said = images.receiving != null ? `Receiving images… ${images.receiving}%` : images.notice || (images.images ? `${images.images} image${images.images > 1 ? "s" : ""} from the consultant` : "");
    $("images-status").textContent = said;
    $("images-status").hidden = !said;
    $("images-status").title = said;
    // The strip is narrow: the images' news takes the place of "In call".
    $("call-phase").hidden = Boolean(said) && !phase.notice;
    $("images-status").dataset.problem = images.receiving == null && images.notice ? "yes" : "no";
    $("reset-view").hidden = !images.images;
    $("pause-images").hidden = !images.playing;
    const state = { mute: phase.muted, camera: !phase.camera, "audio-only": phase.audio_only };
    for (const [id, pressed] of Object.entries(state)) {
      $(id).setAttribute("aria-pressed", String(pressed));
      $(id).textContent = toggles[id][pressed ? 1 : 0];
    }
  }
  if (changed && screen === "waiting") $("leave").focus();
  // In the call the focus is in its controls, so the nurse can reach End call by keyboard (Mute is
  // harmless to press by accident; End call is not).
  if (changed && screen === "call") $("mute").focus();
}

$("leave").addEventListener("click", () => invoke("hang_up"));
$("end-call").addEventListener("click", () => invoke("hang_up"));
$("switch-camera").addEventListener("click", () => invoke("switch_camera").catch(() => {}));
$("reset-view").addEventListener("click", () => invoke("reset_view").catch(() => {}));
$("pause-images").addEventListener("click", () => invoke("pause_images").catch(() => {}));
for (const [id, option] of [["mute", "mute"], ["camera", "camera"], ["audio-only", "audio_only"]]) {
  $(id).addEventListener("click", () => {
    const pressed = $(id).getAttribute("aria-pressed") !== "true";
    // The camera button is "off" when pressed.
    const on = option === "camera" ? !pressed : pressed;
    invoke("set_call_option", { option, on }).catch(() => {});
  });
}

// Decoded frames arrive raw; keep only the newest and draw it on the next animation frame.
function videoInto(canvas, command) {
  let renderer = null;
  let pending = null;
  try {
    renderer = createRenderer(canvas);
  } catch (e) {
    console.error("video unavailable", e);
  }
  const channel = new Channel();
  channel.onmessage = (buffer) => {
    if (!pending) requestAnimationFrame(() => { if (renderer && pending) renderer.draw(pending); pending = null; });
    pending = buffer;
  };
  invoke(command, { onFrame: channel })
    .then((pageDraws) => { if (pageDraws === false) document.body.dataset.video = "native"; })
    .catch((e) => console.error("no video channel", e));
}
videoInto($("remote"), "watch_video");
videoInto($("self-view"), "watch_self_view");

async function refresh() {
  try {
    const view = await invoke("kiosk_status");
    if (view.screen === "unlocked") {
      const phase = await invoke("call_status");
      if (phase && phase.phase !== "ended") {
        renderCall(phase);
        return;
      }
      if (phase && phase.phase === "ended") {
        await invoke("dismiss_call");
        $("call-notice").textContent = phase.reason;
        $("call-notice").hidden = false;
        current = null; // re-enter the appointments screen
      }
    }
    render(view);
  } catch (e) {
    console.error("status failed", e);
  }
}

$("sign-in").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("form-error");
  err.hidden = true;
  const args = { username: $("username").value, password: $("password").value, code: $("code").value };
  $("password").value = "";
  $("code").value = "";
  render({ screen: "signing_in" });
  try {
    render(await invoke("sign_in", args));
  } catch (e) {
    await refresh();
    err.textContent = e && e.message ? e.message : "Sign-in failed.";
    err.hidden = false;
  }
});

$("lock").addEventListener("click", async () => render(await invoke("lock")));

// Activity postpones the idle lock; tell the core at most every few seconds.
let lastActivity = 0;
function activity() {
  const now = Date.now();
  if (now - lastActivity > 5000) {
    lastActivity = now;
    invoke("activity").catch(() => {});
  }
}
for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
  window.addEventListener(type, activity, { passive: true });
}

// Nothing but the one flow: no context menu, no reload, print, find, zoom or devtools keys, no drops.
window.addEventListener("contextmenu", (e) => e.preventDefault());
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
window.addEventListener("keydown", (e) => {
  const k = e.key.toLowerCase();
  const blocked = ["f1", "f3", "f5", "f7", "f11", "f12"].includes(k) ||
    ((e.ctrlKey || e.metaKey) && ["r", "p", "f", "g", "s", "o", "n", "t", "w", "u", "j", "+", "-", "=", "0"].includes(k)) ||
    (e.altKey && ["arrowleft", "arrowright", "home", "f4"].includes(k));
  if (blocked) e.preventDefault();
}, { capture: true });

show("starting");
invoke("check_server").then(render).catch(refresh);
setInterval(refresh, 1000);
setInterval(() => invoke("check_server").catch(() => {}), 15000);
