// The consultant's whole flow by keyboard alone in headless Chromium: sign in (Tab, typing,
// Return), confirm the booked patient (Space) and admit (Return), open the file chooser on the
// image picker (Return; the chooser is the operating system's, so the file is handed to it as a
// person would pick it), set a window preset on the laptop (Return), end the call (Return), and
// write and send the outcome note the page then asks for (typing, arrow keys, Return). Reports JSON
// lines: signed_in, confirmed (redrawn), admitted, connected, shown, windowed, ended, note_sent, done.
// Settings: SC_URL, SC_SPKI, SC_USER, SC_PASSWORD, SC_CODE, SC_Y4M, SC_FILE (a DICOM file);
// SC_SECOND_LAPTOP (set: wait after the tick until a second laptop waits, and report the tick).
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver({ y4m: env("SC_Y4M") });

// Presses Tab until the focus is on `selector`: the control is reachable by keyboard.
async function tabTo(page, selector, limit = 80) {
  for (let i = 0; i < limit; i++) {
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

// Waits for the laptop to report an image shown (through a window preset when `preset`).
const shownWhere = (page, preset) => page.waitForFunction(
  (preset) => window.scShare.log.some((e) => e.msg.type === "shown" && (!preset || (e.msg.view.window && e.msg.view.window.kind === "preset"))),
  preset, { timeout: 60000 });

try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  // Listened for from the start: Playwright intercepts the file chooser only while something
  // listens, and turns that on without waiting for it; a chooser opened before it took hold is a
  // real (headless, unseen) dialog, and while it stays open no later press opens one.
  page.on("filechooser", () => {});
  await page.goto(`${env("SC_URL")}/consult/`);
  await page.waitForSelector("#signin");
  await tabTo(page, "#username");
  await page.keyboard.type(env("SC_USER"));
  await page.keyboard.press("Tab");
  await page.keyboard.type(env("SC_PASSWORD"));
  await page.keyboard.press("Tab");
  await page.keyboard.type(env("SC_CODE"));
  await page.keyboard.press("Enter");
  await page.waitForSelector("#view-rooms:not([hidden])", { timeout: 30000 });
  say("signed_in");

  await page.waitForSelector("button[data-appointment]", { timeout: 60000 });
  if (await page.$("input[data-confirm]")) {
    await tabTo(page, "input[data-confirm]");
    await page.keyboard.press("Space");
    say("confirmed");
    // SC_SECOND_LAPTOP: the test brings a second laptop into the waiting room now, which redraws
    // the list; the tick (and the focus) must survive it.
    if (process.env.SC_SECOND_LAPTOP) {
      await page.waitForFunction(() => window.scCall.waiting.length >= 2, null, { timeout: 60000 });
      say("redrawn", { ticked: await page.$eval("input[data-confirm]", (c) => c.checked), focus: await page.evaluate(() => document.activeElement && document.activeElement.dataset.confirm) });
    }
  }
  await tabTo(page, "button[data-appointment]");
  await page.keyboard.press("Enter");
  say("admitted");
  await page.waitForFunction(() => window.scCall.pc && window.scCall.pc.connectionState === "connected", null, { timeout: 60000 });
  await page.waitForFunction(() => window.scShare.channel && window.scShare.channel.readyState === "open", null, { timeout: 30000 });
  say("connected");

  // Return on the picker opens the chooser. Tried up to three times, each from the focus again:
  // once, under the full suite's load, the first press opened nothing.
  let chooser = null;
  for (let i = 0; i < 3 && !chooser; i++) {
    await tabTo(page, "#files");
    const opened = page.waitForEvent("filechooser", { timeout: 10000 }).catch(() => null);
    await page.keyboard.press("Enter");
    chooser = await opened;
  }
  if (!chooser) {
    const focus = await page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
    throw new Error(`Return on the image picker opened no file chooser (focus on ${focus})`);
  }
  await chooser.setFiles(env("SC_FILE"));
  await shownWhere(page, false);
  say("shown");
  await page.waitForFunction(() => !document.querySelector('[data-window]:not([data-window="default"])').disabled, null, { timeout: 30000 });
  await tabTo(page, '[data-window]:not([data-window="default"])');
  await page.keyboard.press("Enter");
  await shownWhere(page, true);
  say("windowed");

  await tabTo(page, "#end");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#view-note:not([hidden])", { timeout: 15000 });
  say("ended");
  await tabTo(page, "#note-summary");
  await page.keyboard.type("CT reviewed together: no acute change.");
  await page.keyboard.press("Tab");
  await page.keyboard.type("None.");
  await tabTo(page, 'input[name="urgency"]:checked');
  await page.keyboard.press("ArrowRight"); // soon
  await tabTo(page, "#note-send");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#my-notes tbody tr", { timeout: 15000 });
  say("note_sent", { rows: await page.$$eval("#my-notes tbody tr", (r) => r.map((e) => e.textContent)) });
  say("done");
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
