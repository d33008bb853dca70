// Drives headless Chromium as IT staff on the care server's admin page: signs in, finds the laptop
// SC_DEVICE, bricks it with the reason SC_REASON, and waits until the page shows the wipe
// verified; then disables the account SC_LEAVER from the staff table. Reports JSON lines: listed,
// bricked, wiped (with the audit chain's state), staff_disabled, error.
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver();

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") say("console", { text: m.text() }); });
  await page.goto(`${env("SC_URL")}/admin/`);
  await page.fill("#username", env("SC_USER"));
  await page.fill("#password", env("SC_PASSWORD"));
  await page.fill("#code", env("SC_CODE"));
  await page.click("#signin button[type=submit]");
  const device = env("SC_DEVICE");
  const row = `tr[data-device="${device}"]`;
  await page.waitForSelector(row, { timeout: 30000 });
  const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent));
  say("listed", { cells, state: await page.getAttribute(row, "data-state") });

  await page.click(`button[data-brick="${device}"]`);
  await page.fill("#brick-reason", env("SC_REASON"));
  await page.click("#brick-confirm");
  await page.waitForSelector(`${row}[data-state="pending"], ${row}[data-state="wiped"]`, { timeout: 30000 });
  await page.waitForSelector("#brick-form", { state: "hidden", timeout: 5000 });
  say("bricked", { at: Date.now() });

  await page.waitForSelector(`${row}[data-state="wiped"]`, { timeout: 60000 });
  const brick = await page.$$eval("#bricks tbody tr", (trs) => trs.map((tr) => ({ state: tr.dataset.state, cells: [...tr.children].map((td) => td.textContent) })));
  const chain = await page.$eval("#chain", (p) => ({ state: p.dataset.state, text: p.textContent }));
  const audit = await page.$$eval("#audit tbody tr", (trs) => trs.map((tr) => tr.children[2].textContent));
  if (process.env.SC_SCREENSHOT) await page.screenshot({ path: process.env.SC_SCREENSHOT, fullPage: true });
  say("wiped", { at: Date.now(), bricks: brick, chain, audit });

  const leaver = `tr[data-staff="${env("SC_LEAVER")}"]`;
  await page.waitForSelector(`${leaver}[data-state="active"]`, { timeout: 10000 });
  await page.click(`${leaver} button.danger`);
  await page.fill("#staff-input", "left the service");
  await page.click("#staff-confirm");
  await page.waitForSelector(`${leaver}[data-state="disabled"]`, { timeout: 10000 });
  await page.waitForSelector("#staff-form", { state: "hidden", timeout: 5000 });
  const buttons = await page.$$eval(`${leaver} button`, (bs) => bs.length);
  say("staff_disabled", { cells: await page.$$eval(`${leaver} td`, (tds) => tds.map((td) => td.textContent)), buttons });
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
