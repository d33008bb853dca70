// Shared by the consultant's and IT's pages: element lookup, view switching, JSON calls with the
// server's errors in plain words, and the sign-in form and sign-out button.
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
