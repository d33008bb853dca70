// Shared by the staff pages (consultant, IT, team): element lookup, view switching, JSON calls with
// the server's errors in plain words, the sign-in form and sign-out button, and lists that keep the
// keyboard focus when they refresh.
export const $ = (id) => document.getElementById(id);

export function view(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  document.body.dataset.view = name;
}

// Throws an Error whose message is fit to show, with the HTTP status as `status`.
export async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", headers: { "content-type": "application/json" }, ...options });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const msg = body.error === "locked_out" ? `Locked out for ${Math.ceil(body.retry_after_secs / 60)} minutes.`
      : body.error === "refused" ? "Sign-in refused." : (body.message || `Error ${resp.status}`);
    throw Object.assign(new Error(msg), { status: resp.status });
  }
  return body;
}

// Wires the #signin form to `loginPath` (then `enter(name)`) and #logout to `logoutPath`.
export function signInOut(loginPath, logoutPath, enter) {
  $("signin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("signin-error").textContent = "";
    try {
      const me = await api(loginPath, { method: "POST", body: JSON.stringify({ username: $("username").value, password: $("password").value, code: $("code").value }) });
      $("password").value = "";
      $("code").value = "";
      await enter(me.name);
    } catch (e) {
      $("signin-error").textContent = e.message;
    }
  });
  $("logout").addEventListener("click", async () => { await api(logoutPath, { method: "POST" }).catch(() => {}); location.reload(); });
}

// Rebuilds `container`'s contents with `rebuild()`, keeping the keyboard focus on the same control
// (found again by its first data attribute) when it was inside: a list that refreshes itself must
// not throw a keyboard user back to the top of the page.
export function keepFocus(container, rebuild) {
  const a = document.activeElement;
  const key = a && a !== container && container.contains(a) ? Object.entries(a.dataset)[0] : null;
  rebuild();
  if (!key) return;
  const attr = `data-${key[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const again = container.querySelector(`[${attr}="${CSS.escape(key[1])}"]`);
  if (again) again.focus();
}
