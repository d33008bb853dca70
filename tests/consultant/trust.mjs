// Opens the consultant's page as a hospital browser would, with nothing relaxed: no certificate
// pin, no flag that ignores certificate errors; the browser trusts what its own store holds (the
// test gives it a store with one CA). Signs in and reports the certificate the page came with.
// Reports JSON lines: loaded {issuer, subject, protocol}, signed_in, done. Settings: SC_URL (by
// host name), SC_HOST_MAP ("name 127.0.0.1"), SC_USER, SC_PASSWORD, SC_CODE; HOME holds the
// browser's certificate store (.pki/nssdb).
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver();
try {
  const page = await browser.newPage();
  const resp = await page.goto(`${env("SC_URL")}/consult/`);
  const tls = await resp.securityDetails();
  say("loaded", { status: resp.status(), issuer: tls && tls.issuer, subject: tls && tls.subjectName, protocol: tls && tls.protocol });
  await page.fill("#username", env("SC_USER"));
  await page.fill("#password", env("SC_PASSWORD"));
  await page.fill("#code", env("SC_CODE"));
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("#view-rooms:not([hidden])", { timeout: 30000 });
  say("signed_in", { who: await page.textContent("#who") });
  say("done");
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
