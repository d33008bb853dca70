// The care pathway in headless Chromium, by keyboard wherever a person would use one: a nurse
// signs in on the prison team's page and books an appointment; the consultant signs in, sees it,
// and writes the outcome note of an earlier appointment that has begun (Tab, typing, arrow keys
// and Return only); the nurse sees the note, opens it, acknowledges it and exports it as FHIR; the
// consultant then sees the acknowledgement. Reports JSON lines: team_signed_in, booked,
// consultant_sees_booking, note_sent, team_lists, team_reads, acknowledged, exported,
// consultant_sees_ack, done. Settings: SC_URL, SC_SPKI; SC_USER, SC_PASSWORD, SC_CODE (the
// consultant); SC_NURSE_USER, SC_NURSE_CODE (same password); SC_BOOK_PATIENT (prison number);
// SC_EXPORT (where the FHIR file goes); SC_SHOTS (a folder for screenshots).
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver();
const shot = (page, name) => page.screenshot({ path: `${env("SC_SHOTS")}/${name}.png`, fullPage: true });

// Presses Tab until the focus is on `selector` (at most `limit` times): the control is reachable
// by keyboard, in the page's own order.
async function tabTo(page, selector, limit = 60) {
  for (let i = 0; i < limit; i++) {
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`${selector} is not reachable with Tab`);
}

async function signInByKeyboard(page, path, user, code, ready) {
  await page.goto(`${env("SC_URL")}${path}`);
  await page.waitForSelector("#signin");
  await tabTo(page, "#username");
  await page.keyboard.type(user);
  await page.keyboard.press("Tab");
  await page.keyboard.type(env("SC_PASSWORD"));
  await page.keyboard.press("Tab");
  await page.keyboard.type(code);
  await page.keyboard.press("Enter");
  await page.waitForSelector(ready, { timeout: 30000 });
}

try {
  const viewport = { width: 1280, height: 900 };
  const team = await (await browser.newContext({ viewport, acceptDownloads: true })).newPage();
  const consult = await (await browser.newContext({ viewport })).newPage();

  // The nurse books, on the team page.
  await signInByKeyboard(team, "/team/", env("SC_NURSE_USER"), env("SC_NURSE_CODE"), "#view-team:not([hidden])");
  say("team_signed_in", { who: await team.textContent("#who") });
  const when = await team.evaluate(() => {
    const d = new Date(Date.now() + 2 * 3600 * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await team.selectOption("#book-consultant", env("SC_USER"));
  await team.fill("#book-when", when);
  await team.fill("#book-number", env("SC_BOOK_PATIENT"));
  await team.fill("#book-initials", "A.B.");
  await team.click("#book button[type=submit]");
  await team.waitForFunction(() => document.getElementById("book-status").textContent.startsWith("Booked"), null, { timeout: 15000 });
  say("booked", { status: await team.textContent("#book-status"), rows: await team.$$eval("#bookings tbody tr", (r) => r.map((e) => e.textContent)) });
  await shot(team, "team-booked");

  // The consultant sees it, and writes an earlier appointment's note by keyboard.
  await signInByKeyboard(consult, "/consult/", env("SC_USER"), env("SC_CODE"), "#appointments tbody tr");
  say("consultant_sees_booking", { rows: await consult.$$eval("#appointments tbody tr", (r) => r.map((e) => e.textContent)) });
  await tabTo(consult, "button[data-note-for]");
  await consult.keyboard.press("Enter");
  await consult.waitForSelector("#view-note:not([hidden])");
  await tabTo(consult, "#note-summary");
  await consult.keyboard.type("Healing well; no sign of infection.");
  await consult.keyboard.press("Tab");
  await consult.keyboard.type("Change the dressing every other day.");
  await consult.keyboard.press("Tab");
  await consult.keyboard.type("Paracetamol 1 g up to four times a day if needed.");
  await consult.keyboard.press("Tab");
  await consult.keyboard.type("Video review in two weeks");
  await tabTo(consult, 'input[name="urgency"]:checked');
  await consult.keyboard.press("ArrowRight"); // soon
  await consult.keyboard.press("ArrowRight"); // urgent
  await shot(consult, "consultant-note");
  await tabTo(consult, "#note-send");
  await consult.keyboard.press("Enter");
  await consult.waitForSelector("#my-notes tbody tr", { timeout: 15000 });
  say("note_sent", { rows: await consult.$$eval("#my-notes tbody tr", (r) => r.map((e) => e.textContent)), view: await consult.evaluate(() => document.body.dataset.view) });

  // The nurse reads, acknowledges and exports it.
  await team.reload();
  await team.waitForSelector("#notes tbody tr", { timeout: 15000 });
  say("team_lists", { rows: await team.$$eval("#notes tbody tr", (r) => r.map((e) => e.textContent)) });
  await tabTo(team, "#notes tbody button");
  await team.keyboard.press("Enter");
  await team.waitForSelector("#note:not([hidden])");
  say("team_reads", { summary: await team.textContent("#note-summary"), medication: await team.textContent("#note-medication"), meta: await team.textContent("#note-meta") });
  await tabTo(team, "#note-acknowledge");
  await team.keyboard.press("Enter");
  await team.waitForFunction(() => document.getElementById("note-ack").textContent.startsWith("Acknowledged by"), null, { timeout: 15000 });
  say("acknowledged", { text: await team.textContent("#note-ack") });
  const [download] = await Promise.all([team.waitForEvent("download"), team.click("#note-export")]);
  await download.saveAs(env("SC_EXPORT"));
  say("exported", { name: download.suggestedFilename() });
  await shot(team, "team-note");

  // The consultant's list shows who acknowledged it.
  await consult.reload();
  await consult.waitForFunction(() => [...document.querySelectorAll("#my-notes tbody tr")].some((r) => r.textContent.includes("Yes:")), null, { timeout: 15000 });
  say("consultant_sees_ack", { rows: await consult.$$eval("#my-notes tbody tr", (r) => r.map((e) => e.textContent)) });
  say("done");
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
