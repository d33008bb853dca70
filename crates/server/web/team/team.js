// The prison healthcare team's page: the consultants' outcome notes for this prison (newest
// first, urgent unacknowledged ones flagged overdue; opening one, acknowledging it and exporting it
// are each recorded by the server), and booking, moving and cancelling this prison's appointments.
// Every value is set with textContent.
import { $, api as call, keepFocus, signInOut, view } from "./common.js";

const state = { notes: [], bookings: [], change: null, open: null };
window.scTeam = state;

// A lapsed session sends the page back to sign-in.
async function api(path, options = {}) {
  try {
    return await call(path, options);
  } catch (e) {
    if (e.status === 401 && document.body.dataset.view !== "signin") view("signin");
    throw e;
  }
}

const fmtTime = (secs) => new Date(secs * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
const patientText = (p) => (p ? `${p.prison_number} (${p.initials.split("").join(".")}.)` : "not named");
const URGENCY = { routine: "Routine", soon: "Soon (within days)", urgent: "Urgent (today)" };

function cell(tr, text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function statusText(n) {
  if (n.acknowledged) return `Acknowledged by ${n.acknowledged.by}, ${fmtTime(n.acknowledged.at)}`;
  return n.overdue ? "OVERDUE: not acknowledged" : "New: not acknowledged";
}

function renderNotes() {
  const body = $("notes").querySelector("tbody");
  keepFocus(body, () => fillNotes(body));
  const waiting = state.notes.filter((n) => !n.acknowledged);
  const overdue = waiting.filter((n) => n.overdue).length;
  $("notes-summary").textContent = state.notes.length === 0 ? "No outcome notes yet."
    : waiting.length === 0 ? "Every note has been acknowledged."
      : `${waiting.length} not acknowledged${overdue ? `, ${overdue} overdue` : ""}.`;
}

function fillNotes(body) {
  body.replaceChildren();
  for (const n of state.notes) {
    const tr = document.createElement("tr");
    tr.dataset.note = String(n.id);
    cell(tr, `${fmtTime(n.created_at)}${n.addendum_to ? " (addendum)" : ""}`);
    cell(tr, patientText(n.patient));
    cell(tr, n.hospital ? `${n.consultant}, ${n.hospital}` : n.consultant);
    cell(tr, URGENCY[n.urgency] || n.urgency);
    cell(tr, n.follow_up_on || "-");
    cell(tr, statusText(n), n.overdue ? "overdue" : null);
    const read = document.createElement("button");
    read.type = "button";
    read.textContent = "Read";
    read.dataset.read = String(n.id);
    read.setAttribute("aria-label", `Read the note about ${patientText(n.patient)} from ${n.consultant}`);
    read.addEventListener("click", () => openNote(n.id));
    cell(tr, "").append(read);
    body.append(tr);
  }
}

async function loadNotes() {
  state.notes = await api("/v1/team/notes");
  renderNotes();
}

function renderOpen() {
  const n = state.open;
  $("note").hidden = !n;
  if (!n) return;
  $("note-title").textContent = n.addendum_to ? "Addendum to an outcome note" : "Outcome note";
  $("note-meta").textContent = `Patient ${patientText(n.patient)}. From ${n.consultant}${n.hospital ? `, ${n.hospital}` : ""}, sent ${fmtTime(n.created_at)}, about the appointment of ${fmtTime(n.appointment_starts_at)}. Urgency: ${URGENCY[n.urgency] || n.urgency}.`;
  $("note-summary").textContent = n.summary;
  $("note-actions").textContent = n.actions || "None given.";
  $("note-medication").textContent = n.medication || "None given.";
  $("note-follow-up").textContent = [n.follow_up_on, n.follow_up].filter(Boolean).join(": ") || "None given.";
  $("note-ack").textContent = statusText(n);
  $("note-acknowledge").hidden = !!n.acknowledged;
  $("note-export").href = `/v1/team/notes/${n.id}/fhir`;
}

async function openNote(id) {
  $("notes-error").textContent = "";
  try {
    state.open = await api(`/v1/team/notes/${id}`);
    renderOpen();
    $("note-title").setAttribute("tabindex", "-1");
    $("note-title").focus();
  } catch (e) {
    $("notes-error").textContent = e.message;
  }
}

$("note-acknowledge").addEventListener("click", async () => {
  const n = state.open;
  if (!n) return;
  try {
    const header = await api(`/v1/team/notes/${n.id}/acknowledge`, { method: "POST" });
    state.open = { ...n, ...header };
    renderOpen();
    await loadNotes();
    $("note-close").focus();
  } catch (e) {
    $("notes-error").textContent = e.message;
  }
});
$("note-close").addEventListener("click", () => {
  const id = state.open && state.open.id;
  state.open = null;
  renderOpen();
  const row = id && $("notes").querySelector(`tr[data-note="${id}"] button`);
  if (row) row.focus();
});

// ---- Bookings ----

// A datetime-local value (the browser's local time) as Unix seconds, or null.
function unixOf(value) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

function renderBookings() {
  const body = $("bookings").querySelector("tbody");
  keepFocus(body, () => fillBookings(body));
}

function fillBookings(body) {
  body.replaceChildren();
  for (const a of state.bookings) {
    const tr = document.createElement("tr");
    tr.dataset.appointment = String(a.id);
    cell(tr, `${fmtTime(a.starts_at)} (${Math.round((a.ends_at - a.starts_at) / 60)} min)`);
    cell(tr, a.consultant_hospital ? `${a.consultant}, ${a.consultant_hospital}` : a.consultant);
    cell(tr, patientText(a.patient));
    cell(tr, a.room_code);
    const actions = cell(tr, "");
    for (const [what, label] of [["move", "Move"], ["cancel", "Cancel"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.dataset.change = `${a.id}:${what}`;
      b.setAttribute("aria-label", `${label} the appointment at ${fmtTime(a.starts_at)} for ${patientText(a.patient)}`);
      b.addEventListener("click", () => startChange(a, what));
      actions.append(b, " ");
    }
    body.append(tr);
  }
}

async function loadBookings() {
  state.bookings = await api("/v1/team/appointments");
  renderBookings();
}

function startChange(a, what) {
  state.change = { id: a.id, what };
  $("change").hidden = false;
  $("change-error").textContent = "";
  $("change-title").textContent = what === "move" ? `Move the appointment at ${fmtTime(a.starts_at)}` : `Cancel the appointment at ${fmtTime(a.starts_at)} for ${patientText(a.patient)}`;
  $("change-move").hidden = what !== "move";
  $("change-cancel").hidden = what !== "cancel";
  $("change-confirm").textContent = what === "move" ? "Move it" : "Cancel it";
  $("change-confirm").className = what === "cancel" ? "danger" : "";
  (what === "move" ? $("change-when") : $("change-reason")).focus();
}

function endChange() {
  const id = state.change && state.change.id;
  state.change = null;
  $("change").hidden = true;
  const row = id && $("bookings").querySelector(`tr[data-appointment="${id}"] button`);
  if (row) row.focus();
}

$("change-back").addEventListener("click", endChange);
$("change").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const c = state.change;
  if (!c) return;
  $("change-error").textContent = "";
  try {
    if (c.what === "move") {
      const starts_at = unixOf($("change-when").value);
      if (starts_at === null) throw new Error("Choose the new date and time.");
      await api(`/v1/team/appointments/${c.id}/reschedule`, { method: "POST", body: JSON.stringify({ starts_at, minutes: Number($("change-minutes").value) }) });
    } else {
      await api(`/v1/team/appointments/${c.id}/cancel`, { method: "POST", body: JSON.stringify({ reason: $("change-reason").value }) });
    }
    $("change-reason").value = "";
    await loadBookings();
    endChange();
  } catch (e) {
    $("change-error").textContent = e.message;
  }
});

$("book").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("book-error").textContent = "";
  $("book-status").textContent = "";
  try {
    const starts_at = unixOf($("book-when").value);
    if (starts_at === null) throw new Error("Choose the date and time.");
    const made = await api("/v1/team/appointments", {
      method: "POST",
      body: JSON.stringify({ consultant: $("book-consultant").value, starts_at, minutes: Number($("book-minutes").value), prison_number: $("book-number").value, initials: $("book-initials").value }),
    });
    $("book-number").value = "";
    $("book-initials").value = "";
    // "Booked" once the list below holds the booking (it was said first, and a reader who looked
    // at the list then did not find it there); said even if the list fails to load.
    try {
      await loadBookings();
    } finally {
      $("book-status").textContent = `Booked. Room code ${made.room_code}.`;
    }
  } catch (e) {
    $("book-error").textContent = e.message;
  }
});

async function enter(name) {
  const me = await api("/v1/team/me");
  $("who").textContent = `${name || me.name}, ${me.prison}`;
  $("logout").hidden = false;
  const consultants = await api("/v1/team/consultants");
  $("book-consultant").replaceChildren(...consultants.map((c) => {
    const o = document.createElement("option");
    o.value = c.username;
    o.textContent = c.hospital ? `${c.name}, ${c.hospital}` : c.name;
    return o;
  }));
  await Promise.all([loadNotes(), loadBookings()]);
  view("team");
  $("notes").querySelector("button") ? $("notes").querySelector("button").focus() : $("book-consultant").focus();
}

signInOut("/team/login", "/team/logout", enter);
// New notes appear without a reload.
setInterval(() => { if (document.body.dataset.view === "team") loadNotes().catch(() => {}); }, 30000);
api("/v1/team/me").then((me) => enter(me.name)).catch(() => view("signin"));
