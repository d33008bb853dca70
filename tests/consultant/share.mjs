// Drives headless Chromium as a consultant who shows images: signs in, admits the laptop, then
// follows commands from the Rust test on stdin (one JSON object a line) through the page's own
// controls, and reports every reply the laptop sends over the share channel as JSON lines.
// Commands: {"do":"share","files":[paths],"cut_after_files"?:n} | {"do":"slice","frame":n} | {"do":"play"} (play/pause) | {"do":"preset","name":s}
// | {"do":"zoom_in"} | {"do":"clear"} | {"do":"point","x":f,"y":f} | {"do":"cut"} | {"do":"screenshot","path":p} | {"do":"pad"} | {"do":"measure","x1":f,"y1":f,"x2":f,"y2":f} | {"do":"window_drag","dx":f,"dy":f} | {"do":"call"}
// | {"do":"laptop_video"} (waits until the laptop's video is decoded here) | {"do":"sent"} (what the last share put on the way) | {"do":"deflate","on":b} (deflate uncompressed DICOM or not) | {"do":"scale","by":f} (the camera sender's scaleResolutionDownBy, as Chromium sets itself under load)
// | {"do":"end","stay"?:b} (ends the call; the driver exits unless told to stay) | {"do":"note","summary":s,"actions":s,"medication":s,"follow_up":s,"urgency":s,"screenshot"?:p}
// (after the call: writes the outcome note the page asks for, and sends it) | {"do":"quit"}.
// Settings: SC_URL, SC_USER, SC_PASSWORD, SC_CODE, SC_Y4M, SC_SPKI.
import { createInterface } from "node:readline";
import { admitFirstLaptop, env, say, startDriver, watchPage } from "./launch.mjs";

const { browser, done } = await startDriver({ y4m: env("SC_Y4M") });

try {
  const page = watchPage(await browser.newPage());
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") say("console", { text: m.text() }); });
  await admitFirstLaptop(page);
  await page.waitForFunction(() => window.scShare.channel && window.scShare.channel.readyState === "open", null, { timeout: 30000 });
  say("share_open");

  // Forward the laptop's replies and the page's status line as they come (one read at a time, so
  // no reply is skipped or repeated).
  let seen = 0;
  let status = "";
  let forwarding = true;
  const forwarder = (async () => {
    while (forwarding) {
      const { log, text, problem } = await page.evaluate((from) => ({
        log: window.scShare.log.slice(from), text: document.getElementById("share-status").textContent,
        problem: document.getElementById("share-status").dataset.problem === "yes",
      }), seen).catch(() => ({ log: [], text: status }));
      seen += log.length;
      for (const entry of log) say("kiosk", entry);
      if (text !== status) { status = text; say("page_status", { text, problem }); }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();

  const commands = createInterface({ input: process.stdin });
  for await (const line of commands) {
    const cmd = JSON.parse(line);
    switch (cmd.do) {
      case "share":
        // cut_after_files: the page cuts the channel the moment the laptop has that many files.
        if (cmd.cut_after_files) {
          await page.evaluate((n) => {
            window.scShare.onReply = (m) => { if (m.type === "progress" && m.files >= n) { window.scShare.onReply = null; window.scShare.cut(); } };
          }, cmd.cut_after_files);
        }
        say("sharing", { at: Date.now() });
        await page.setInputFiles("#files", cmd.files);
        break;
      case "slice": await page.locator("#slice").fill(String(cmd.frame)); break;
      case "play": await page.click("#play"); break;
      case "preset": await page.click(`[data-window="${cmd.name}"]`); break;
      case "zoom_in": await page.click("#zoom-in"); break;
      case "clear": await page.click("#share-clear"); break;
      case "point": {
        await page.locator("#pad").scrollIntoViewIfNeeded();
        const box = await page.locator("#pad").boundingBox();
        await page.mouse.move(box.x + box.width * cmd.x, box.y + box.height * cmd.y, { steps: 3 });
        break;
      }
      case "screenshot": await page.screenshot({ path: cmd.path, fullPage: true }); break;
      case "measure": {
        // Measure mode, a drag from (x1, y1) to (x2, y2) on the pad (fractions), measure mode off
        // again only when asked ({"do":"measure","off":true}).
        if (cmd.off) { await page.click("#measure"); break; }
        await page.click("#measure");
        await page.locator("#pad").scrollIntoViewIfNeeded();
        const box = await page.locator("#pad").boundingBox();
        await page.mouse.move(box.x + box.width * cmd.x1, box.y + box.height * cmd.y1);
        await page.mouse.down();
        await page.mouse.move(box.x + box.width * cmd.x2, box.y + box.height * cmd.y2, { steps: 5 });
        await page.mouse.up();
        break;
      }
      case "window_drag": {
        // Shift+drag from the pad's centre by (dx, dy) of its size: the window, as PACS viewers do.
        await page.locator("#pad").scrollIntoViewIfNeeded();
        const box = await page.locator("#pad").boundingBox();
        const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
        await page.mouse.move(cx, cy);
        await page.keyboard.down("Shift");
        await page.mouse.down();
        await page.mouse.move(cx + box.width * cmd.dx, cy + box.height * cmd.dy, { steps: 8 });
        await page.mouse.up();
        await page.keyboard.up("Shift");
        break;
      }
      case "pad": {
        // What the pointer pad shows: the laptop's preview (a data URL) or the consultant's own file.
        const pad = await page.evaluate(() => {
          const img = document.getElementById("pad-img");
          return { hidden: img.hidden, src: img.src, width: img.naturalWidth, height: img.naturalHeight, measure: document.getElementById("measure-label").textContent };
        });
        say("pad", pad);
        break;
      }
      case "cut": await page.evaluate(() => window.scShare.cut()); break;
      case "scale": {
        const sent = await page.evaluate(async (by) => {
          const sender = window.scCall.pc.getSenders().find((s) => s.track && s.track.kind === "video");
          const p = sender.getParameters();
          if (!p.encodings || p.encodings.length === 0) p.encodings = [{}];
          p.encodings[0].scaleResolutionDownBy = by;
          await sender.setParameters(p);
          return sender.getParameters().encodings[0].scaleResolutionDownBy;
        }, cmd.by);
        say("scaled", { by: sent });
        break;
      }
      case "laptop_video": {
        // Waits (up to 30 s) until the laptop's video has been decoded here: on a link it has not
        // measured the laptop starts its video a few seconds into the call.
        let frames = 0;
        for (let i = 0; i < 120 && frames < 10; i++) {
          frames = await page.evaluate(async () => {
            let n = 0;
            const pc = window.scCall.pc;
            if (pc) (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") n = Math.max(n, r.framesDecoded || 0); });
            return n;
          });
          if (frames < 10) await new Promise((r) => setTimeout(r, 250));
        }
        say("laptop_video", { framesDecoded: frames });
        break;
      }
      case "sent": say("sent", await page.evaluate(() => window.scShare.sent)); break;
      case "deflate": await page.evaluate((on) => { window.scShare.deflate = on; }, cmd.on); break;
      case "call": {
        const s = await page.evaluate(async () => {
          const pc = window.scCall.pc;
          let frames = 0;
          if (pc) (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded || 0; });
          return { state: pc ? pc.connectionState : "none", framesDecoded: frames, channel: window.scShare.channel ? window.scShare.channel.readyState : "none" };
        });
        say("call", s);
        break;
      }
      case "end":
        forwarding = false;
        await forwarder;
        await page.click("#end");
        say("ended", { by: "consultant" });
        if (!cmd.stay) await done(0);
        break;
      case "note": {
        await page.waitForSelector("#view-note:not([hidden])", { timeout: 15000 });
        await page.fill("#note-summary", cmd.summary);
        await page.fill("#note-actions", cmd.actions || "");
        await page.fill("#note-medication", cmd.medication || "");
        await page.fill("#note-follow-up", cmd.follow_up || "");
        await page.check(`input[name="urgency"][value="${cmd.urgency || "routine"}"]`);
        if (cmd.screenshot) await page.screenshot({ path: cmd.screenshot, fullPage: true });
        await page.click("#note-send");
        await page.waitForSelector("#my-notes tbody tr", { timeout: 15000 });
        say("note_sent", { rows: await page.$$eval("#my-notes tbody tr", (r) => r.map((e) => e.textContent)) });
        break;
      }
      case "quit": await done(0); break;
      default: say("error", { message: `unknown command ${line}` });
    }
    say("did", { what: cmd.do });
  }
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
