// Shared by the browser drivers: settings from the environment, JSON-line reports on stdout, and
// Chromium launched the one way the tests need (fake media, the test server's key pinned).
import { chromium } from "playwright-core";

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};

// Whether the browser or a page went away before the driver closed it: an error event carries it,
// so a failure says the browser died under the driver rather than the page misbehaving (seen once
// in CI as "Target page, context or browser has been closed", which Chromium killed mid-call gives).
let gone = null;

export const say = (event, data = {}) =>
  console.log(JSON.stringify({ event, ...data, ...(event === "error" && gone ? { gone } : {}) }));

// Reports a page of the driver's that crashed (its renderer died), for the error that follows.
export function watchPage(page) {
  page.on("crash", () => {
    gone = gone || `a page crashed at ${new Date().toISOString()}`;
    say("page_crash");
  });
  return page;
}

// `y4m`: the fake camera's clip, when the page takes a call; SC_WAV, when set, the fake
// microphone's voice (looped) instead of Chromium's beep.
export async function launch({ y4m } = {}) {
  const wav = process.env.SC_WAV;
  return chromium.launch({
    executablePath: process.env.SC_CHROMIUM || "/usr/bin/chromium",
    args: [
      // SC_HEADLESS=0 draws on the X display instead (the benchmark's like-for-like peer).
      ...(process.env.SC_HEADLESS === "0" ? ["--window-size=1280,800", "--disable-backgrounding-occluded-windows"] : ["--headless=new"]),
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
      ...(y4m ? ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        `--use-file-for-fake-video-capture=${y4m}`, ...(wav ? [`--use-file-for-fake-audio-capture=${wav}`] : [])] : []),
      // Trust exactly the test server's key, as a pin would; nothing else is relaxed. Without
      // SC_SPKI nothing is relaxed at all: the browser trusts what its own store trusts.
      ...(process.env.SC_SPKI ? [`--ignore-certificate-errors-spki-list=${process.env.SC_SPKI}`] : []),
      // A host name for the test server, as a hospital's DNS would give it (SC_HOST_MAP: "name ip").
      ...(process.env.SC_HOST_MAP ? [`--host-resolver-rules=MAP ${process.env.SC_HOST_MAP}`] : []),
    ],
  });
}

// Signs the consultant in, admits the first laptop that waits, and resolves once the call connects
// (with ICE diagnostics reported if it does not). Returns when admitted, in ms since the epoch.
export async function admitFirstLaptop(page) {
  await page.goto(`${env("SC_URL")}/consult/`);
  await page.fill("#username", env("SC_USER"));
  await page.fill("#password", env("SC_PASSWORD"));
  await page.fill("#code", env("SC_CODE"));
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("button[data-appointment]", { timeout: 60000 });
  say("waiting");
  // A booking that names its patient: the consultant checks them with the nurse, then admits.
  const confirm = await page.$("input[data-confirm]");
  if (confirm) { await confirm.check(); say("patient_confirmed"); }
  const admittedAt = Date.now();
  await page.click("button[data-appointment]");
  await page.waitForFunction(() => window.scCall.pc && window.scCall.pc.connectionState === "connected", null, { timeout: 60000 })
    .catch(async (e) => {
      const diag = await page.evaluate(() => {
        const pc = window.scCall.pc;
        return pc ? { gathering: pc.iceGatheringState, ice: pc.iceConnectionState, state: pc.connectionState,
          local: pc.localDescription && pc.localDescription.sdp.split("\r\n").filter((l) => l.startsWith("a=candidate")) } : { lastEnd: window.scCall.lastEnd };
      });
      say("diagnostics", diag);
      throw e;
    });
  say("connected");
  return admittedAt;
}

// Launches Chromium for a driver: returns it with `done(code)`, which closes it and exits; an
// unhandled rejection is reported as an error event and ends the driver.
export async function startDriver(options) {
  const browser = await launch(options);
  let closing = false;
  browser.on("disconnected", () => {
    if (!closing) {
      gone = gone || `the browser went away at ${new Date().toISOString()}`;
      say("browser_gone");
    }
  });
  const done = async (code) => { closing = true; await browser.close().catch(() => {}); process.exit(code); };
  process.on("unhandledRejection", async (e) => { say("error", { message: String(e && e.stack || e) }); await done(1); });
  return { browser, done };
}
