// IT staff's page: sign in, the laptops with their prison, last contact, state and last posture
// report, bricking with a reason, each brick's state (pending until the laptop's signed receipt is verified), the staff
// accounts (disable a leaver, reset a password or TOTP seed, lift a lock-out), and the audit log
// with its chain checked by the server. Every value is set with textContent: host names
// come from laptops and are not trusted.
import { $, api as call, signInOut, view } from "./common.js";

const state = { target: null, timer: null, staff: null };

// What each staff action asks for and where it goes.
const STAFF_ACTIONS = {
  disable: { label: "Disable the account of", input: "Reason (kept in the audit log)", type: "text", path: "disable", field: "reason" },
  password: { label: "Set a new password for", input: "New password (at least 12 characters)", type: "password", path: "password", field: "password" },
  unlock: { label: "Lift the lock-out of", input: "Reason (kept in the audit log)", type: "text", path: "unlock", field: "reason" },
};

// A lapsed session sends the page back to sign-in.
async function api(path, options = {}) {
  try {
    return await call(path, options);
  } catch (e) {
    if (e.status === 401 && document.body.dataset.view !== "signin") {
      stopPolling();
      view("signin");
    }
    throw e;
  }
}

const fmtTime = (secs) => (secs == null ? "never" : new Date(secs * 1000).toLocaleString());

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    tr.append(td);
  }
  return tr;
}

function stateText(d) {
  if (!d.brick) return d.state;
  return d.brick.state === "wiped" ? `wiped (receipt verified ${fmtTime(d.brick.wiped_at)})` : "bricked, wipe pending";
}

// The last posture report: what failed (the audit log's words), or that it passed; the whole
// report in words beneath.
function postureText(d) {
  if (!d.posture) return "not reported";
  const p = d.posture;
  const verdict = p.failing.length ? `refused at ${p.stage}: ${p.failing.join(", ")}` : `passed at ${p.stage}`;
  return `${verdict} (${fmtTime(p.at)}). ${p.summary}`;
}

function renderDevices(devices) {
  const body = $("devices").querySelector("tbody");
  body.replaceChildren();
  for (const d of devices) {
    // IT staff know a laptop by its asset tag; the id (and serial) beneath it for the audit log.
    const name = d.asset_tag ? `${d.asset_tag} (serial ${d.serial || "unknown"}; ${d.id})` : d.id;
    const tr = row([name, d.prison, d.hostname, fmtTime(d.last_contact), stateText(d), postureText(d)]);
    tr.dataset.device = d.id;
    tr.dataset.state = d.brick ? d.brick.state : d.state;
    const td = document.createElement("td");
    if (d.state === "active") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "danger";
      b.textContent = "Brick...";
      b.dataset.brick = d.id;
      b.addEventListener("click", () => {
        state.target = d.id;
        $("brick-target").textContent = `${d.asset_tag || d.hostname} (${d.prison})`;
        $("brick-reason").value = "";
        $("brick-form").hidden = false;
        $("brick-reason").focus();
      });
      td.append(b);
    }
    tr.append(td);
    body.append(tr);
  }
}

function staffButton(text, onClick, danger = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (danger) b.className = "danger";
  b.addEventListener("click", onClick);
  return b;
}

function askStaff(kind, who) {
  const a = STAFF_ACTIONS[kind];
  state.staff = { kind, who };
  $("staff-action").textContent = a.label;
  $("staff-target").textContent = who;
  $("staff-input-label").textContent = a.input;
  $("staff-input").type = a.type;
  $("staff-input").value = "";
  $("staff-form").hidden = false;
  $("staff-input").focus();
}

async function newSeed(who) {
  $("admin-error").textContent = "";
  try {
    const seed = await api(`/v1/admin/staff/${encodeURIComponent(who)}/totp`, { method: "POST", body: "{}" });
    // Shown once: hand it to the account's owner for their authenticator.
    $("staff-secret").textContent = `New TOTP secret for ${who} (shown once): ${seed.totp_secret} - ${seed.otpauth_uri}`;
    $("staff-secret").hidden = false;
    await refresh();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
}

function renderStaff(rows) {
  const body = $("staff").querySelector("tbody");
  body.replaceChildren();
  for (const s of rows) {
    const stateLabel = s.state === "locked" ? `locked until ${fmtTime(s.locked_until)}` : s.state;
    const tr = row([s.username, s.display_name, s.role, s.prison, stateLabel]);
    tr.dataset.staff = s.username;
    tr.dataset.state = s.state;
    const td = document.createElement("td");
    if (s.state !== "disabled") {
      if (s.state === "locked") td.append(staffButton("Lift lock-out...", () => askStaff("unlock", s.username)));
      td.append(staffButton("Reset password...", () => askStaff("password", s.username)));
      td.append(staffButton("New TOTP seed", () => newSeed(s.username)));
      td.append(staffButton("Disable...", () => askStaff("disable", s.username), true));
    }
    tr.append(td);
    body.append(tr);
  }
}

function renderBricks(bricks) {
  const body = $("bricks").querySelector("tbody");
  body.replaceChildren();
  for (const b of bricks) {
    const tr = row([fmtTime(b.created_at), b.device_id, b.by, b.reason, b.state === "wiped" ? "wiped, receipt verified" : "pending"]);
    tr.dataset.command = b.command_id;
    tr.dataset.state = b.state;
    body.append(tr);
  }
}

function renderAudit(audit) {
  const chain = $("chain");
  chain.dataset.state = audit.chain.state;
  chain.className = audit.chain.state === "intact" ? "" : "error";
  chain.textContent = audit.chain.state === "intact"
    ? `Chain intact: ${audit.chain.rows} rows, newest hash ${audit.chain.head}`
    : `Chain BROKEN at row ${audit.chain.id}: ${audit.chain.why}`;
  const body = $("audit").querySelector("tbody");
  body.replaceChildren();
  for (const r of [...audit.rows].reverse()) {
    body.append(row([String(r.id), fmtTime(r.at), r.event, r.outcome, r.reason, r.device_id, r.staff, r.detail]));
  }
}

async function refresh() {
  try {
    const [devices, bricks, staff, audit] = await Promise.all([
      api("/v1/admin/devices"), api("/v1/admin/bricks"), api("/v1/admin/staff"), api("/v1/admin/audit?limit=200"),
    ]);
    renderDevices(devices);
    renderBricks(bricks);
    renderStaff(staff);
    renderAudit(audit);
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function enter(name) {
  $("who").textContent = name;
  $("logout").hidden = false;
  view("admin");
  await refresh();
  stopPolling();
  // Bricks settle when the laptop answers: a light poll shows it without a reload.
  state.timer = setInterval(refresh, 2000);
}

$("brick-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("admin-error").textContent = "";
  try {
    await api(`/v1/admin/devices/${encodeURIComponent(state.target)}/brick`, { method: "POST", body: JSON.stringify({ reason: $("brick-reason").value }) });
    $("brick-form").hidden = true;
    await refresh();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
});
$("brick-cancel").addEventListener("click", () => { $("brick-form").hidden = true; });
$("staff-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("admin-error").textContent = "";
  const a = STAFF_ACTIONS[state.staff.kind];
  try {
    const body = JSON.stringify({ [a.field]: $("staff-input").value });
    await api(`/v1/admin/staff/${encodeURIComponent(state.staff.who)}/${a.path}`, { method: "POST", body });
    $("staff-input").value = "";
    $("staff-form").hidden = true;
    await refresh();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
});
$("staff-cancel").addEventListener("click", () => { $("staff-form").hidden = true; });
signInOut("/admin/login", "/admin/logout", enter);

api("/v1/admin/me").then((me) => enter(me.name)).catch(() => view("signin"));
