// The consultant's side of image sharing: files go to the laptop over the call's data channel in
// chunks, paced by the channel's buffered amount; the laptop decodes and shows them, and this page
// drives what it shows (image, slice, window, zoom, pan, pointer). The protocol is
// crates/proto/src/share.rs: JSON text for control, a 13-byte header before each chunk's bytes.
import { $ } from "./common.js";

const HEADER = 13;
const CHUNK = 16 * 1024 - HEADER;
// Pace: stop queuing at 1 MiB buffered, go on when it drains to 256 KiB.
const HIGH = 1 << 20;
const LOW = 256 << 10;
// Uncompressed DICOM (the transfer syntaxes without compression of their own) travels deflated:
// pydicom's real CT shrinks to 63 % (zlib, level 6), and a prison's link is slow.
const PLAIN_DICOM = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"]);
const PRESETS = [["default", "File's own"], ["lung", "Lung"], ["soft_tissue", "Soft tissue"], ["bone", "Bone"], ["brain", "Brain"]];

// Tests and support staff read the share's state here (no file contents, only what is shown).
const state = {
  pc: null, channel: null, nextShare: 1, sending: null, files: new Map(), stacks: [], log: [],
  // What the last share put on the way: files, how many deflated, bytes before and after.
  sent: { share: 0, files: 0, deflated: 0, bytes: 0, wire: 0 },
  // Whether uncompressed DICOM is deflated on the way (the benchmark turns it off to compare).
  deflate: true,
  view: { stack: 0, frame: 0, window: { kind: "default" }, zoom: 1, pan_x: 0, pan_y: 0, playing: false },
};
window.scShare = state;

function say(text, problem = false) {
  $("share-status").textContent = text;
  $("share-status").dataset.problem = problem ? "yes" : "no";
}

function sendJson(msg) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify(msg));
}

function chunk(share, file, offset, bytes) {
  const out = new Uint8Array(HEADER + bytes.byteLength);
  const head = new DataView(out.buffer);
  head.setUint8(0, 0x43);
  head.setUint32(1, share);
  head.setUint32(5, file);
  head.setUint32(9, offset);
  out.set(bytes, HEADER);
  return out;
}

function drained(channel) {
  return new Promise((resolve) => {
    const done = () => { channel.removeEventListener("bufferedamountlow", done); channel.removeEventListener("close", done); resolve(); };
    channel.addEventListener("bufferedamountlow", done);
    channel.addEventListener("close", done);
  });
}

// Whether `file` is DICOM with an uncompressed transfer syntax, read from its file meta group
// (explicit VR little endian, right after "DICM").
async function plainDicom(file) {
  const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  const text = (from, to) => String.fromCharCode(...head.subarray(from, to));
  if (head.length < 132 || text(128, 132) !== "DICM") return false;
  const view = new DataView(head.buffer);
  for (let at = 132; at + 8 <= head.length;) {
    if (view.getUint16(at, true) !== 2) return false;
    const vr = text(at + 4, at + 6);
    const long = ["OB", "OW", "OF", "SQ", "UT", "UN"].includes(vr);
    const length = long ? view.getUint32(at + 8, true) : view.getUint16(at + 6, true);
    const start = at + (long ? 12 : 8);
    if (view.getUint16(at + 2, true) === 0x10) {
      return PLAIN_DICOM.has(text(start, Math.min(start + length, head.length)).replace(/[\0 ]+$/, ""));
    }
    at = start + length;
  }
  return false;
}

// The bytes of file `i` as they go: deflated (zlib) or as they are.
async function wireBytes(file, deflate) {
  const body = deflate ? file.stream().pipeThrough(new CompressionStream("deflate")) : file;
  return new Uint8Array(await new Response(body).arrayBuffer());
}

// Sends `files` as one share; the laptop's replies say how it went.
async function shareFiles(list) {
  const files = [...list].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const channel = state.channel;
  if (!files.length) return;
  if (!channel || channel.readyState !== "open") { say("The laptop is not connected for images yet.", true); return; }
  // A new share replaces one still being sent (the laptop drops the old one too).
  if (state.sending) { state.sending.stopped = true; state.sending.accepted(false); }
  const share = state.nextShare++;
  state.files.set(share, files);
  const sending = { share, channel, accepted: null, stopped: false };
  sending.answer = new Promise((resolve) => { sending.accepted = resolve; });
  state.sending = sending;
  $("share-progress").value = 0;
  $("share-progress").hidden = false;
  $("share-cancel").hidden = false;
  say(`Sending ${files.length} file${files.length > 1 ? "s" : ""} to the laptop…`);
  let deflate;
  try {
    deflate = await Promise.all(files.map((f) => (state.deflate ? plainDicom(f) : false)));
  } catch (e) {
    stopSending();
    say(`A file could not be read: ${e.message}`, true);
    return;
  }
  sendJson({ type: "share", share, sizes: files.map((f) => f.size), deflate });
  state.sent = { share, files: 0, deflated: 0, bytes: 0, wire: 0 };
  if (!(await sending.answer)) return;
  channel.bufferedAmountLowThreshold = LOW;
  // The next file is read (and compressed) while this one is on its way.
  const prepare = (i) => wireBytes(files[i], deflate[i]).catch((e) => e);
  let next = prepare(0);
  for (let i = 0; i < files.length; i++) {
    const bytes = await next;
    if (i + 1 < files.length) next = prepare(i + 1);
    if (sending.stopped || channel.readyState !== "open") return;
    if (bytes instanceof Error) {
      sendJson({ type: "cancel", share });
      stopSending();
      say(`${files[i].name} could not be read: ${bytes.message}`, true);
      return;
    }
    if (deflate[i]) sendJson({ type: "deflated", share, file: i, bytes: bytes.byteLength });
    Object.assign(state.sent, {
      files: i + 1, deflated: state.sent.deflated + (deflate[i] ? 1 : 0),
      bytes: state.sent.bytes + files[i].size, wire: state.sent.wire + bytes.byteLength,
    });
    for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
      if (sending.stopped || channel.readyState !== "open") return;
      if (channel.bufferedAmount > HIGH) await drained(channel);
      if (sending.stopped || channel.readyState !== "open") return;
      channel.send(chunk(share, i, offset, bytes.subarray(offset, offset + CHUNK)));
    }
  }
}

function stopSending() {
  if (state.sending) state.sending.stopped = true;
  if (state.sending && state.sending.accepted) state.sending.accepted(false);
  state.sending = null;
  $("share-cancel").hidden = true;
  $("share-progress").hidden = true;
}

function stackLabel(s, i) {
  const files = state.files.get(s.share) || [];
  const name = files[s.first_file] ? files[s.first_file].name : `Image ${i + 1}`;
  const what = s.kind === "dicom" ? (s.modality || "DICOM") : s.kind.toUpperCase();
  return `${i + 1}. ${name} - ${what} ${s.width}x${s.height}${s.frames > 1 ? `, ${s.frames} slices` : ""}`;
}

function renderStacks() {
  const select = $("stack");
  select.replaceChildren(...state.stacks.map((s, i) => Object.assign(document.createElement("option"), { value: String(i), textContent: stackLabel(s, i) })));
  $("share-view").hidden = state.stacks.length === 0;
  renderView();
}

function renderView() {
  const v = state.view;
  const s = state.stacks[v.stack];
  if (!s) return;
  $("stack").value = String(v.stack);
  $("slice").max = String(s.frames - 1);
  $("slice").value = String(v.frame);
  $("slice").disabled = s.frames < 2;
  $("slice-label").textContent = s.frames > 1 ? `Slice ${v.frame + 1} of ${s.frames}` : "";
  // A loop plays at the file's own rate on the laptop; the page shows where it was last told.
  $("play").hidden = s.frames < 2;
  $("play").textContent = v.playing ? "Pause" : `Play (${Math.round(1000 / (s.frame_ms || 100))} frames/s)`;
  $("play").setAttribute("aria-pressed", String(Boolean(v.playing)));
  const kind = v.window.kind === "preset" ? v.window.name : "default";
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === kind));
  for (const b of document.querySelectorAll("[data-window]")) b.disabled = s.kind !== "dicom";
  $("zoom-label").textContent = `${Math.round(v.zoom * 100)}%`;
  // The pad has the image's shape; pictures are shown from the consultant's own file.
  $("pad").style.aspectRatio = `${s.width} / ${s.height}`;
  const files = state.files.get(s.share) || [];
  const file = files[s.first_file];
  if (s.kind !== "dicom" && file && $("pad-img").dataset.src !== `${s.share}/${s.first_file}`) {
    if ($("pad-img").src.startsWith("blob:")) URL.revokeObjectURL($("pad-img").src);
    $("pad-img").src = URL.createObjectURL(file);
    $("pad-img").dataset.src = `${s.share}/${s.first_file}`;
  }
  const preview = state.preview && state.preview.stack === v.stack ? state.preview : null;
  if (s.kind === "dicom" && preview && $("pad-img").dataset.src !== `preview/${preview.stack}/${preview.frame}/${preview.png.length}`) {
    if ($("pad-img").src.startsWith("blob:")) URL.revokeObjectURL($("pad-img").src);
    $("pad-img").src = `data:image/png;base64,${preview.png}`;
    $("pad-img").dataset.src = `preview/${preview.stack}/${preview.frame}/${preview.png.length}`;
  }
  $("pad-img").hidden = s.kind === "dicom" && !preview;
  $("pad-note").hidden = !$("pad-img").hidden;
}

// The consultant changed something: the whole view goes to the laptop.
function setView(change) {
  Object.assign(state.view, change);
  const s = state.stacks[state.view.stack];
  if (s) state.view.frame = Math.max(0, Math.min(state.view.frame, s.frames - 1));
  state.view.zoom = Math.max(1, Math.min(16, state.view.zoom));
  state.view.pan_x = Math.max(-0.5, Math.min(0.5, state.view.pan_x));
  state.view.pan_y = Math.max(-0.5, Math.min(0.5, state.view.pan_y));
  renderView();
  sendJson({ type: "view", ...state.view });
}

function onReply(msg) {
  // The log keeps what happened, not pictures: a preview is logged by its size.
  state.log.push({ at: Date.now(), msg: msg.type === "preview" ? { ...msg, png: msg.png.length } : msg });
  if (state.onReply) state.onReply(msg);
  const sending = state.sending;
  switch (msg.type) {
    case "accepted": if (sending && sending.share === msg.share) sending.accepted(true); break;
    case "progress":
      if (sending && sending.share === msg.share) {
        $("share-progress").value = msg.total ? Math.round((100 * msg.received) / msg.total) : 100;
        say(`On the laptop: ${$("share-progress").value}% (${msg.files} of ${(state.files.get(msg.share) || []).length} files)`);
      }
      break;
    case "stacks": state.stacks = msg.stacks; renderStacks(); break;
    case "file_failed": {
      const f = (state.files.get(msg.share) || [])[msg.file];
      state.failures = (state.failures || []).concat(`${f ? f.name : `File ${msg.file + 1}`}: ${msg.message}`);
      break;
    }
    case "done": {
      if (sending && sending.share === msg.share) stopSending();
      const failures = state.failures || [];
      state.failures = [];
      say(`The laptop shows ${msg.shown} file${msg.shown === 1 ? "" : "s"}.${failures.length ? ` Not shown: ${failures.join("; ")}` : ""}`, failures.length > 0);
      // The audit log records the share: counts and modalities, never names or pictures.
      const files = state.files.get(msg.share) || [];
      const modalities = [...new Set(state.stacks.filter((s) => s.share === msg.share)
        .map((s) => (s.kind === "dicom" ? (s.modality || "").toUpperCase().replace(/[^A-Z0-9 _]/g, "").slice(0, 16) || "OT" : "picture")))];
      if (state.onShareDone) {
        state.onShareDone({ files: files.length, shown: msg.shown, failed: msg.failed, bytes: files.reduce((n, f) => n + f.size, 0), modalities });
      }
      break;
    }
    case "share_failed":
      if (sending && sending.share !== msg.share) break; // an older share, replaced by this one
      if (sending) stopSending();
      say(`Not sent: ${msg.message}`, true);
      break;
    case "shown":
      state.pausedByNurse = Boolean(msg.by_nurse && state.view.playing && !msg.view.playing && msg.view.zoom === state.view.zoom);
      state.view = msg.view;
      state.shown = msg;
      renderView();
      // The nurse either paused a playing loop (it stops on a frame) or reset the view.
      if (msg.by_nurse) say(state.pausedByNurse ? "The nurse paused the image." : "The nurse reset the image.");
      if (msg.by_nurse && !state.pausedByNurse) forgetMeasurement();
      break;
    case "preview":
      // What the prisoner sees, small: the pad shows it for DICOM, which the browser cannot draw.
      state.preview = msg;
      renderView();
      break;
    case "measured":
      // The laptop's figure, the one the patient's screen shows beside the line.
      state.measured = msg;
      $("measure-label").textContent = msg.line ? `Distance: ${msg.label}` : "";
      drawLine(msg.line);
      break;
    case "cleared": state.stacks = []; state.preview = null; forgetMeasurement(); renderStacks(); say("The laptop's images are cleared."); break;
    case "error": console.warn(`laptop: ${msg.message}`); break;
  }
}

function adopt(channel) {
  channel.binaryType = "arraybuffer";
  state.channel = channel;
  channel.onmessage = (ev) => {
    if (typeof ev.data !== "string") return;
    try { onReply(JSON.parse(ev.data)); } catch (e) { console.warn("garbled reply from the laptop", e); }
  };
  channel.onclose = () => {
    if (state.channel !== channel) return;
    state.channel = null;
    if (state.sending) {
      stopSending();
      say("The transfer to the laptop was cut. Images already shown stay; share the rest again.", true);
    }
    // The call may well go on: open a new channel for the next share.
    const pc = state.pc;
    if (pc && pc.connectionState === "connected") setTimeout(() => { if (state.pc === pc && !state.channel) adopt(pc.createDataChannel("share")); }, 300);
  };
}

// A new call: the laptop opens the share channel in its offer.
export function attach(pc) {
  state.pc = pc;
  state.channel = null;
  state.stacks = [];
  state.files = new Map();
  state.view = { stack: 0, frame: 0, window: { kind: "default" }, zoom: 1, pan_x: 0, pan_y: 0, playing: false };
  renderStacks();
  say("");
  pc.ondatachannel = (ev) => { if (ev.channel.label === "share") adopt(ev.channel); };
}

export function detach() {
  stopSending();
  state.pc = null;
  if (state.channel) state.channel.close();
  state.channel = null;
  state.stacks = [];
  state.files = new Map();
  if ($("pad-img").src) URL.revokeObjectURL($("pad-img").src);
  $("pad-img").removeAttribute("src");
  delete $("pad-img").dataset.src;
}

// Support and tests: end the channel as a network cut would (`onReply`, if set, sees each reply).
state.cut = () => { if (state.channel) state.channel.close(); };

function forgetMeasurement() {
  state.measured = null;
  $("measure-label").textContent = "";
  drawLine(null);
}

function drawLine(line) {
  $("pad-line").hidden = !line;
  if (!line) return;
  const l = $("pad-line-l");
  l.setAttribute("x1", String(line[0][0])); l.setAttribute("y1", String(line[0][1]));
  l.setAttribute("x2", String(line[1][0])); l.setAttribute("y2", String(line[1][1]));
}

function pointerAt(ev) {
  const r = $("pad").getBoundingClientRect();
  return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
}

export function wire() {
  const presets = $("presets");
  for (const [name, label] of PRESETS) {
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: label });
    b.dataset.window = name;
    b.addEventListener("click", () => setView({ window: name === "default" ? { kind: "default" } : { kind: "preset", name } }));
    presets.append(b);
  }
  $("files").addEventListener("change", () => { const f = [...$("files").files]; $("files").value = ""; shareFiles(f); });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); shareFiles(ev.dataTransfer.files); });
  $("share-cancel").addEventListener("click", () => {
    if (state.sending) sendJson({ type: "cancel", share: state.sending.share });
    stopSending();
    say("Stopped sending.");
  });
  $("share-clear").addEventListener("click", () => sendJson({ type: "clear" }));
  $("stack").addEventListener("change", () => {
    // A measurement belongs to its image: the laptop drops it too.
    forgetMeasurement();
    setView({ stack: Number($("stack").value), frame: 0, zoom: 1, pan_x: 0, pan_y: 0 });
  });
  $("slice").addEventListener("input", () => setView({ frame: Number($("slice").value), playing: false }));
  $("play").addEventListener("click", () => setView({ playing: !state.view.playing }));
  $("zoom-in").addEventListener("click", () => setView({ zoom: state.view.zoom * 1.5 }));
  $("zoom-out").addEventListener("click", () => setView({ zoom: state.view.zoom / 1.5 }));
  $("zoom-reset").addEventListener("click", () => setView({ zoom: 1, pan_x: 0, pan_y: 0 }));
  // Measure mode: the next drag on the pad is a measurement; pressed again, it takes it away.
  $("measure").addEventListener("click", () => {
    state.measuring = !state.measuring;
    $("measure").setAttribute("aria-pressed", String(state.measuring));
    if (!state.measuring && state.measured && state.measured.line) sendJson({ type: "measure", line: null });
  });
  // On the pad: moving points; dragging pans (or measures, or with Shift or the right button sets
  // the window, as PACS viewers do); the wheel scrolls slices.
  const pad = $("pad");
  let drag = null;
  let pending = null;
  let windowing = null;
  pad.addEventListener("contextmenu", (ev) => ev.preventDefault());
  pad.addEventListener("pointerdown", (ev) => {
    const at = pointerAt(ev);
    const shown = state.shown || { center: 0, width: 1 };
    const kind = state.measuring ? "measure" : ev.button === 2 || ev.shiftKey ? "window" : "pan";
    drag = { kind, at, pan: [state.view.pan_x, state.view.pan_y], center: shown.center, width: Math.max(1, shown.width) };
    pad.setPointerCapture(ev.pointerId);
  });
  pad.addEventListener("pointerup", (ev) => {
    if (drag && drag.kind === "measure") sendJson({ type: "measure", line: [drag.at, pointerAt(ev)] });
    drag = null;
  });
  pad.addEventListener("pointermove", (ev) => {
    const at = pointerAt(ev);
    if (drag && drag.kind === "measure") {
      drawLine([drag.at, at]);
      return;
    }
    if (drag && drag.kind === "window") {
      // Across the pad: the width from nothing to three times what it was; down: the level by
      // one and a half widths. At most one view per animation frame.
      const width = Math.max(1, drag.width * (1 + 2 * (at[0] - drag.at[0])));
      const center = drag.center + 1.5 * drag.width * (at[1] - drag.at[1]);
      if (!windowing) requestAnimationFrame(() => { setView({ window: windowing }); windowing = null; });
      windowing = { kind: "custom", center, width };
      return;
    }
    if (drag) {
      const z = state.view.zoom;
      setView({ pan_x: drag.pan[0] - (at[0] - drag.at[0]) / z, pan_y: drag.pan[1] - (at[1] - drag.at[1]) / z });
      return;
    }
    // At most one pointer message per animation frame.
    if (!pending) requestAnimationFrame(() => { sendJson({ type: "pointer", at: pending }); pending = null; });
    pending = at;
    $("pad-pointer").style.left = `${at[0] * 100}%`;
    $("pad-pointer").style.top = `${at[1] * 100}%`;
    $("pad-pointer").hidden = false;
  });
  pad.addEventListener("pointerleave", () => { sendJson({ type: "pointer", at: null }); $("pad-pointer").hidden = true; });
  pad.addEventListener("wheel", (ev) => { ev.preventDefault(); setView({ frame: state.view.frame + Math.sign(ev.deltaY), playing: false }); }, { passive: false });
}
