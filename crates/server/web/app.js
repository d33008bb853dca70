// The consultant's page: sign in, see today's appointments and who waits, admit, and run the call in
// the browser's own WebRTC, relay-only through the TURN server the care server names.
import { $, api, keepFocus, signInOut, view } from "./common.js";
import * as share from "./share.js";

const state = { ws: null, pc: null, local: null, appointments: [], waiting: [], pending: [], preview: null, reconnect: null, notes: [], note: null, confirmed: new Set() };
// Tests and support staff read call statistics from here (no secrets live on this object).
window.scCall = state;

function fmtTime(secs) {
  return new Date(secs * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const MEDIA = { audio: true, video: { width: 640, height: 480 } };
// How long a dropped call waits to come back before it ends (the laptop's RECONNECT_LIMIT).
const RECONNECT_LIMIT_MS = 30000;

// While a laptop waits, the consultant's camera is already open (they see themselves beside the
// list), so admitting does not wait for the camera to start; it closes when nobody waits.
function preview(on) {
  if (on && !state.preview && !state.pc) {
    const p = navigator.mediaDevices.getUserMedia(MEDIA);
    state.preview = p;
    p.then((stream) => { if (state.preview === p) { $("preview").srcObject = stream; $("preview").hidden = false; } }).catch(() => { if (state.preview === p) state.preview = null; });
  } else if (!on && state.preview) {
    const p = state.preview;
    state.preview = null;
    $("preview").hidden = true;
    $("preview").srcObject = null;
    p.then((stream) => { for (const t of stream.getTracks()) t.stop(); }).catch(() => {});
  }
}

function renderRooms() {
  preview(state.waiting.some((w) => state.appointments.some((a) => a.id === w.appointment_id)));
  const body = $("appointments").querySelector("tbody");
  keepFocus(body, () => fillRooms(body));
}

function fillRooms(body) {
  body.replaceChildren();
  for (const a of state.appointments) {
    const tr = document.createElement("tr");
    const waiting = state.waiting.find((w) => w.appointment_id === a.id);
    const patient = a.patient ? `${a.patient.prison_number} ${a.patient.initials.split("").join(".")}.` : "-";
    for (const text of [`${fmtTime(a.starts_at)}-${fmtTime(a.ends_at)}`, a.prison, patient, a.room_code, waiting ? `Laptop waiting (${waiting.nurse})` : "-"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    // A consultation that has begun and has no note yet can have one written (after a call the
    // form opens by itself; this is for "Write it later").
    if (!waiting && a.starts_at * 1000 <= Date.now() && !noted(a.id)) {
      const w = document.createElement("button");
      w.type = "button";
      w.textContent = "Write outcome note";
      w.dataset.noteFor = String(a.id);
      w.addEventListener("click", () => startNote({ appointment: a }));
      td.append(w);
    }
    if (waiting) {
      const b = document.createElement("button");
      b.textContent = "Admit";
      b.dataset.appointment = String(a.id);
      // A booked patient is admitted only once the consultant has checked who is there with the
      // nurse (the wrong-patient hazard, docs/clinical-safety.md H3).
      let checked = null;
      if (a.patient) {
        const label = document.createElement("label");
        checked = document.createElement("input");
        checked.type = "checkbox";
        checked.dataset.confirm = String(a.id);
        // Kept across the list's refreshes (each waiting-room update redraws it).
        checked.checked = state.confirmed.has(a.id);
        label.append(checked, ` I have checked with the nurse: ${patient}`);
        b.disabled = !checked.checked;
        checked.addEventListener("change", () => {
          if (checked.checked) state.confirmed.add(a.id); else state.confirmed.delete(a.id);
          b.disabled = !checked.checked;
        });
        td.append(label, " ");
      }
      b.addEventListener("click", () => send({ type: "admit", appointment_id: a.id, patient_confirmed: !!(checked && checked.checked) }));
      td.append(b);
    }
    tr.append(td);
    body.append(tr);
  }
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function endCall(reason) {
  const ended = state.appointmentId;
  if (state.reconnect) clearTimeout(state.reconnect);
  state.reconnect = null;
  share.detach();
  if (state.pc) state.pc.close();
  state.pc = null;
  state.appointmentId = null;
  if (state.local) for (const t of state.local.getTracks()) t.stop();
  state.local = null;
  $("remote").srcObject = null;
  $("local").srcObject = null;
  $("call-state").textContent = reason || "";
  state.lastEnd = reason;
  // After a consultation, the outcome note (unless this appointment has one: then its addendum
  // is a choice on the list).
  const appointment = state.appointments.find((a) => a.id === ended);
  if (appointment && !noted(appointment.id)) startNote({ appointment, ended: reason });
  else view("rooms");
}

// ---- Outcome notes ----

const noted = (appointmentId) => state.notes.some((n) => n.appointment_id === appointmentId && !n.addendum_to);
const patientWords = (p) => (p ? `${p.prison_number} (${p.initials.split("").join(".")}.)` : "not named in the booking");
const URGENCY = { routine: "Routine", soon: "Soon", urgent: "Urgent" };

function renderNotes() {
  const body = $("my-notes").querySelector("tbody");
  keepFocus(body, () => fillNotes(body));
  $("my-notes-empty").hidden = state.notes.length > 0;
}

function fillNotes(body) {
  body.replaceChildren();
  for (const n of state.notes) {
    const tr = document.createElement("tr");
    tr.dataset.note = String(n.id);
    const ack = n.acknowledged ? `Yes: ${n.acknowledged.by}, ${new Date(n.acknowledged.at * 1000).toLocaleString()}` : n.overdue ? "Not yet (overdue)" : "Not yet";
    for (const text of [`${new Date(n.created_at * 1000).toLocaleString()}${n.addendum_to ? " (addendum)" : ""}`, n.prison, patientWords(n.patient), URGENCY[n.urgency] || n.urgency, ack]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Add addendum";
    b.dataset.addendumTo = String(n.id);
    b.addEventListener("click", () => startNote({ addendumTo: n }));
    td.append(b);
    tr.append(td);
    body.append(tr);
  }
}

// Every booking the prison teams have made with this consultant, up to 90 days ahead.
async function loadBookings() {
  const bookings = await api("/v1/consult/bookings");
  const body = $("bookings").querySelector("tbody");
  body.replaceChildren();
  for (const a of bookings) {
    const tr = document.createElement("tr");
    const when = `${new Date(a.starts_at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" })}-${fmtTime(a.ends_at)}`;
    for (const text of [when, a.prison, patientWords(a.patient), a.room_code]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  $("bookings-empty").hidden = bookings.length > 0;
}

async function loadNotes() {
  state.notes = await api("/v1/consult/notes");
  renderNotes();
  renderRooms();
}

function startNote(note) {
  state.note = note;
  $("note-form").reset();
  $("note-error").textContent = "";
  $("note-ended").textContent = note.ended || "";
  if (note.addendumTo) {
    const n = note.addendumTo;
    $("note-heading").textContent = "Addendum to an outcome note";
    $("note-about").textContent = `Adds to your note of ${new Date(n.created_at * 1000).toLocaleString()} for ${n.prison}, patient ${patientWords(n.patient)}.`;
  } else {
    const a = note.appointment;
    $("note-heading").textContent = "Outcome note for the prison's healthcare team";
    $("note-about").textContent = `Appointment ${fmtTime(a.starts_at)}-${fmtTime(a.ends_at)} at ${a.prison}, patient ${patientWords(a.patient)}.`;
  }
  view("note");
  $("note-heading").focus();
}

$("note-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const note = state.note;
  if (!note) return;
  $("note-error").textContent = "";
  const body = {
    summary: $("note-summary").value,
    actions: $("note-actions").value,
    medication: $("note-medication").value,
    follow_up: $("note-follow-up").value,
    follow_up_on: $("note-follow-up-on").value,
    urgency: (document.querySelector('input[name="urgency"]:checked') || {}).value || "",
  };
  const path = note.addendumTo ? `/v1/consult/notes/${note.addendumTo.id}/addendum` : `/v1/consult/appointments/${note.appointment.id}/note`;
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    state.note = null;
    await loadNotes();
    view("rooms");
    $("call-state").textContent = "";
    $("rooms-error").textContent = "";
  } catch (e) {
    $("note-error").textContent = e.message;
  }
});
$("note-later").addEventListener("click", () => { state.note = null; view("rooms"); });

// The laptop's word on its link. While it says sound only, this page stops sending video too (its
// camera's track is taken off the sender, so no video packets cross the prison's link) and says
// so; when the link recovers the camera goes back on. Its voice is capped at 16 kbit/s: Chromium's
// default 32 kbit/s in 20 ms packets is ~60 kbit/s on the wire, all of a 64 kbit/s link, and at
// 24 kbit/s with its feedback it still filled the link towards the laptop, whose queue stood at
// 1.3 s until the laptop's offer for long packets came (~30 s in). At 16 the queue drains in
// seconds; in the 60 ms RED packets the laptop asks for later, the repeat fits (~41 kbit/s).
// (The nurse's "Audio only" says sound only too, and caps it alike.) While it says weak, the voice
// is capped at 20 kbit/s, so RED's repeat (asked for once the link has carried video a while)
// costs about what the voice did alone: uncapped on a 256 kbit/s link, the repeat's extra ~30
// kbit/s held this page's video to the laptop in Chromium's pacer for up to 2.4 s.
async function onQuality(quality) {
  state.quality = quality;
  showQuality(quality);
  const pc = state.pc;
  if (!pc) return;
  await state.media;
  const camera = state.local && state.local.getVideoTracks()[0];
  for (const sender of pc.getSenders()) {
    const video = sender.track ? sender.track.kind === "video" : sender === state.videoSender;
    if (!video) continue;
    state.videoSender = sender;
    await sender.replaceTrack(quality === "sound_only" ? null : camera || null).catch((e) => console.warn(`video sender: ${e}`));
    await videoActive(sender, quality !== "sound_only");
  }
  // The quality now, not the one this call began with: another word may have come meanwhile.
  await leanVoice(pc, state.quality);
}

function showQuality(quality) {
  const words = { good: "Connection: good", weak: "Connection: weak", sound_only: "Poor connection: sound only" };
  $("call-state").textContent = words[quality] || quality;
  $("call-state").dataset.quality = quality;
}

const SOUND_ONLY_VOICE_BPS = 16000;
const WEAK_VOICE_BPS = 20000;

// Sound only also stops the video's stream, not only its frames: with the track gone, the video
// already encoded stayed queued in the browser's pacer (1-1.9 s of it on the 64 kbit/s link at a
// first call's start) and went on filling the link towards the laptop for seconds.
async function videoActive(sender, active) {
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length || params.encodings[0].active === active) return;
  params.encodings[0].active = active;
  await sender.setParameters(params).catch((e) => console.warn(`video sender: ${e}`));
}

async function leanVoice(pc, quality) {
  const cap = { sound_only: SOUND_ONLY_VOICE_BPS, weak: WEAK_VOICE_BPS }[quality];
  for (const sender of pc.getSenders()) {
    if (!sender.track || sender.track.kind !== "audio") continue;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) continue;
    const enc = params.encodings[0];
    if (cap) {
      enc.maxBitrate = cap;
    } else {
      delete enc.maxBitrate;
    }
    await sender.setParameters(params).catch((e) => console.warn(`audio sender: ${e}`));
  }
}

async function startCall(msg) {
  // Kept for a resume: after the care server restarts, this page asks to take the call up again.
  state.appointmentId = msg.appointment_id;
  view("call");
  $("call-state").textContent = "Connecting...";
  state.pending = [];
  // A candidate pool of one starts the relay allocation now, while the laptop's offer is on its way.
  const pc = new RTCPeerConnection({ iceServers: msg.ice_servers, iceTransportPolicy: "relay", iceCandidatePoolSize: 1 });
  state.pc = pc;
  share.attach(pc);
  // A new offer may change the voice's format (RED, long packets): the quality's voice cap follows it.
  pc.onsignalingstatechange = () => {
    if (pc.signalingState === "stable" && state.quality !== "good") leanVoice(pc, state.quality);
  };
  // Handlers first: the laptop's offer can arrive while the camera is still opening, and
  // candidates gathered before a handler exists are lost.
  pc.ontrack = (ev) => {
    if (!$("remote").srcObject) $("remote").srcObject = new MediaStream();
    $("remote").srcObject.addTrack(ev.track);
  };
  pc.onicecandidateerror = (ev) => console.warn(`ICE candidate error ${ev.errorCode} ${ev.errorText} (${ev.url})`);
  pc.onicecandidate = (ev) => {
    if (ev.candidate) send({ type: "candidate", candidate: ev.candidate.toJSON() });
  };
  state.quality = "good";
  state.videoSender = null;
  // A dropped link is not the end: the laptop restarts ICE (its new offer is answered as any
  // other), and the call ends only after RECONNECT_LIMIT_MS, as the laptop's own rules do.
  pc.onconnectionstatechange = () => {
    const s = pc.connectionState;
    if (s === "disconnected" || s === "failed") {
      $("call-state").textContent = "Reconnecting...";
      $("call-state").dataset.quality = "reconnecting";
      if (!state.reconnect) {
        state.reconnect = setTimeout(() => {
          state.reconnect = null;
          send({ type: "hang_up" });
          endCall(`The connection to the laptop was lost and did not come back within ${RECONNECT_LIMIT_MS / 1000} seconds.`);
        }, RECONNECT_LIMIT_MS);
      }
      return;
    }
    if (state.reconnect && s === "connected") {
      clearTimeout(state.reconnect);
      state.reconnect = null;
      onQuality(state.quality || "good");
      return;
    }
    // Connected, the laptop's word on the link shows, whichever came first: it is sent as the
    // laptop connects, and shown "connected" here overwrote it for the rest of a good call.
    if (s === "connected") {
      showQuality(state.quality || "good");
    } else {
      $("call-state").textContent = s;
    }
  };
  // The answer waits for local media so it offers our camera and microphone (already open when
  // the waiting room's preview was).
  const opened = state.preview || navigator.mediaDevices.getUserMedia(MEDIA);
  state.preview = null;
  $("preview").hidden = true;
  $("preview").srcObject = null;
  state.media = opened.then((stream) => {
    state.local = stream;
    $("local").srcObject = stream;
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
  });
  await state.media;
}

async function onOffer(sdp) {
  const pc = state.pc;
  if (!pc) return;
  await state.media;
  await pc.setRemoteDescription({ type: "offer", sdp });
  await placeCamera(pc, sdp);
  for (const c of state.pending) await pc.addIceCandidate(c).catch(() => {});
  state.pending = [];
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: "answer", sdp: answer.sdp });
}

// The laptop may offer its video and ours on sections of their own (its video protected with
// FEC, ours plain, so this browser keeps its whole rate for picture): our camera goes on the video
// section the laptop receives on, wherever the offer put it, and no other. Not while the link is
// sound only (`onQuality` puts the camera back).
async function placeCamera(pc, sdp) {
  const receives = new Set();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = (section.match(/^a=mid:(\S+)/m) || [])[1];
    if (section.startsWith("video") && mid !== undefined && !/^a=(sendonly|inactive)\s*$/m.test(section)) receives.add(mid);
  }
  const video = pc.getTransceivers().filter((t) => t.receiver.track.kind === "video" && t.mid !== null && !t.stopped);
  const target = video.find((t) => receives.has(t.mid));
  const camera = state.local && state.local.getVideoTracks()[0];
  if (!target || !camera) return;
  for (const t of video) {
    if (t === target || t.sender.track !== camera) continue;
    await t.sender.replaceTrack(null).catch((e) => console.warn(`video sender: ${e}`));
    t.direction = "recvonly";
  }
  if (target.direction !== "sendrecv") target.direction = "sendrecv";
  if (state.videoSender !== target.sender) {
    state.videoSender = target.sender;
    target.sender.setStreams(state.local);
    if (state.quality !== "sound_only") {
      await target.sender.replaceTrack(camera).catch((e) => console.warn(`video sender: ${e}`));
    }
  }
}

async function onCandidate(c) {
  const pc = state.pc;
  if (!pc) return;
  if (!pc.remoteDescription) { state.pending.push(c); return; }
  await pc.addIceCandidate(c).catch((e) => console.warn("candidate refused", e));
}

// The signalling socket. The call does not depend on it (its media runs through the relay): when
// it drops mid-call (the care server restarting) the page reconnects and resumes the call, as the
// laptop does, and the call goes on meanwhile.
function connect() {
  const ws = new WebSocket(`wss://${location.host}/v1/consult/signal`);
  state.ws = ws;
  ws.onopen = () => {
    state.retries = 0;
    if (state.pc && state.appointmentId !== null && state.appointmentId !== undefined) {
      send({ type: "resume", appointment_id: state.appointmentId });
    }
  };
  ws.onmessage = async (ev) => {
    const msg = JSON.parse(ev.data);
    switch (msg.type) {
      case "waiting_room": state.waiting = msg.waiting; renderRooms(); break;
      case "admitted": await startCall(msg); break;
      case "offer": await onOffer(msg.sdp); break;
      case "candidate": await onCandidate(msg.candidate); break;
      case "quality": onQuality(msg.quality); break;
      case "hung_up": endCall("The laptop ended the call."); break;
      case "peer_left": endCall("The laptop left."); break;
      case "resumed": state.resumed = (state.resumed || 0) + 1; onQuality(state.quality || "good"); break;
      case "error":
        if (state.pc && (msg.kind === "not_resumable" || msg.kind === "session_ended")) { endCall(msg.message); break; }
        $("rooms-error").textContent = msg.message; console.warn(`server: ${msg.kind}: ${msg.message}`); break;
    }
  };
  ws.onclose = () => {
    state.ws = null;
    if (state.pc) $("call-state").textContent = "Reconnecting to the care server...";
    // Soon at first (a restart takes a second or two), then every 2 s.
    const wait = Math.min(250 * 2 ** (state.retries || 0), 2000);
    state.retries = (state.retries || 0) + 1;
    setTimeout(() => { if (document.body.dataset.view !== "signin") connect(); }, wait);
  };
}

async function enter(name) {
  $("who").textContent = name;
  $("logout").hidden = false;
  state.appointments = await api("/v1/consult/appointments");
  await Promise.all([loadNotes(), loadBookings()]);
  view("rooms");
  connect();
}

signInOut("/consult/login", "/consult/logout", enter);
share.wire();
// Each finished share is recorded by the care server under this call (counts only).
window.scShare.onShareDone = (record) => send({ type: "share_done", ...record });
$("end").addEventListener("click", () => { send({ type: "hang_up" }); endCall("You ended the call."); });
$("mute").addEventListener("click", () => {
  const t = state.local && state.local.getAudioTracks()[0];
  if (!t) return;
  t.enabled = !t.enabled;
  $("mute").textContent = t.enabled ? "Mute" : "Unmute";
});
$("camera").addEventListener("click", () => {
  const t = state.local && state.local.getVideoTracks()[0];
  if (!t) return;
  t.enabled = !t.enabled;
  $("camera").textContent = t.enabled ? "Camera off" : "Camera on";
});

// Acknowledgements by the prison's team appear without a reload.
setInterval(() => { if (document.body.dataset.view === "rooms") Promise.all([loadNotes(), loadBookings()]).catch(() => {}); }, 30000);
api("/v1/consult/me").then((me) => enter(me.name)).catch(() => view("signin"));
