// A nurse of the prison's healthcare team on the team page: signs in, opens the newest outcome
// note, acknowledges it and takes a screenshot. Reports JSON lines: listed, read, acknowledged,
// then exits. Settings: SC_URL, SC_SPKI, SC_USER, SC_PASSWORD, SC_CODE (the nurse), SC_SCREENSHOT.
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver();
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${env("SC_URL")}/team/`);
  await page.fill("#username", env("SC_USER"));
  await page.fill("#password", env("SC_PASSWORD"));
  await page.fill("#code", env("SC_CODE"));
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("#notes tbody tr", { timeout: 30000 });
  say("listed", { rows: await page.$$eval("#notes tbody tr", (r) => r.map((e) => e.textContent)) });
  await page.click("#notes tbody button");
  await page.waitForSelector("#note:not([hidden])");
  say("read", { summary: await page.textContent("#note-summary") });
  await page.click("#note-acknowledge");
  await page.waitForFunction(() => document.getElementById("note-ack").textContent.startsWith("Acknowledged by"), null, { timeout: 15000 });
  say("acknowledged", { text: await page.textContent("#note-ack") });
  await page.screenshot({ path: env("SC_SCREENSHOT"), fullPage: true });
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
