// The kiosk page: renders the state the Rust core reports; holds no state of its own worth stealing.
const { invoke } = window.__TAURI__.core;

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
  } else if (view.screen === "unlocked") {
    $("prison").textContent = view.prison;
    $("staff").textContent = `Signed in: ${view.staff}`;
    $("lease").textContent = formatLeft(view.lease_secs_left);
    if (changed) $("lock").focus();
  }
}

async function refresh() {
  try {
    render(await invoke("kiosk_status"));
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
