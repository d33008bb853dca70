// Audits the pages' accessibility with axe-core (WCAG 2.x rules) in headless Chromium: the
// consultant's page signed out and signed in (a booking listed) and its outcome-note form, the
// admin page signed out and signed in (a laptop listed), the prison team's page signed out and
// signed in (a note listed, then open), and the kiosk's own page (ui/index.html, each screen in turn).
// Reports one JSON line per page: {"event":"audit","page":...,"violations":[{id,impact,help,nodes}]},
// then "done". Settings: SC_URL, SC_SPKI; SC_USER, SC_PASSWORD, SC_CODE (the consultant);
// SC_IT_USER, SC_IT_CODE (IT staff, same password); SC_NURSE_USER, SC_NURSE_CODE (a nurse, same
// password); SC_KIOSK_UI (the kiosk page's folder).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { env, say, startDriver } from "./launch.mjs";

const axe = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const { browser, done } = await startDriver();

// The pages' CSP allows only their own scripts; the auditor is injected past it (nothing else is).
const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 800 } });

async function audit(page, name) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: axe });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  say("audit", {
    page: name,
    violations: result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    })),
  });
}

async function signIn(page, path, user, code, ready) {
  await page.goto(`${env("SC_URL")}${path}`);
  await page.waitForSelector("#signin");
  await audit(page, `${path} signed out`);
  await page.fill("#username", user);
  await page.fill("#password", env("SC_PASSWORD"));
  await page.fill("#code", code);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector(ready, { timeout: 30000 });
  await audit(page, `${path} signed in`);
}

try {
  const page = await context.newPage();
  await signIn(page, "/consult/", env("SC_USER"), env("SC_CODE"), "#appointments tbody tr");
  await page.click("button[data-note-for]");
  await page.waitForSelector("#view-note:not([hidden])");
  await audit(page, "/consult/ outcome note form");
  await signIn(await context.newPage(), "/admin/", env("SC_IT_USER"), env("SC_IT_CODE"), "#devices tbody tr");
  const team = await context.newPage();
  await signIn(team, "/team/", env("SC_NURSE_USER"), env("SC_NURSE_CODE"), "#notes tbody tr");
  await team.click("#notes tbody button");
  await team.waitForSelector("#note:not([hidden])");
  await audit(team, "/team/ outcome note open");

  const kiosk = await context.newPage();
  await kiosk.goto(pathToFileURL(`${env("SC_KIOSK_UI")}/index.html`).href);
  const screens = await kiosk.$$eval(".screen", (s) => s.map((e) => e.id));
  for (const id of screens) {
    await kiosk.evaluate((id) => { for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== id; }, id);
    await audit(kiosk, `kiosk ${id}`);
  }
  say("done");
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
