// Drives headless Chromium as the consultant: signs in on the care server's page, admits the
// waiting laptop, and reports the call's statistics as JSON lines on stdout for the Rust test.
// Settings come from the environment (SC_URL, SC_USER, SC_PASSWORD, SC_CODE, SC_Y4M, SC_SPKI,
// SC_END = "consultant" | "kiosk", SC_HOLD_MS, SC_HEADLESS).
import { admitFirstLaptop, env, say, startDriver, watchPage } from "./launch.mjs";

const { browser, done } = await startDriver({ y4m: env("SC_Y4M") });

try {
  const page = watchPage(await browser.newPage());
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") say("console", { text: m.text() }); });
  const admittedAt = await admitFirstLaptop(page);
  // Four times a second: what the page shows of the laptop's link, whether it sends video, and what
  // it received; `at` is the wall clock (ms), so the test can line reports up with its own events.
  const reporter = setInterval(() => {
    page.evaluate(async () => {
      const pc = window.scCall.pc;
      const got = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, freezeCount: 0, audioPackets: 0, concealed: 0, samples: 0 };
      if (pc) (await pc.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") {
          got.framesDecoded = r.framesDecoded || 0;
          got.frameWidth = r.frameWidth || 0;
          got.frameHeight = r.frameHeight || 0;
          got.freezeCount = r.freezeCount || 0;
          // Why frames go missing: received but not decoded, or never complete.
          got.framesReceived = r.framesReceived || 0;
          got.framesDropped = r.framesDropped || 0;
          got.videoPacketsLost = r.packetsLost || 0;
          got.videoPackets = r.packetsReceived || 0;
          got.nackCount = r.nackCount || 0;
          got.pliCount = r.pliCount || 0;
          got.jitterBufferDelay = r.jitterBufferEmittedCount ? r.jitterBufferDelay / r.jitterBufferEmittedCount : 0;
          // The least delay Chromium was told to hold the video for (the kiosk's playout-delay
          // extension, or lip sync), summed over the frames it let go, in seconds.
          got.videoMinimumDelay = r.jitterBufferMinimumDelay || 0;
          got.videoEmitted = r.jitterBufferEmittedCount || 0;
          // Summed (seconds) with its count, so the benchmark takes the mean over its own window.
          got.videoHeldSum = r.jitterBufferDelay || 0;
        }
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          got.audioPackets = r.packetsReceived || 0;
          got.concealed = r.concealedSamples || 0;
          got.samples = r.totalSamplesReceived || 0;
          // Why the voice is concealed: packets lost, rebuilt from in-band FEC, or late.
          got.audioLost = r.packetsLost || 0;
          got.audioFec = r.fecPacketsReceived || 0;
          got.audioFecDiscarded = r.fecPacketsDiscarded || 0;
          got.concealmentEvents = r.concealmentEvents || 0;
          got.audioJitterBufferMs = r.jitterBufferEmittedCount ? (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount : 0;
          got.audioTargetMs = r.jitterBufferEmittedCount ? (1000 * (r.jitterBufferTargetDelay || 0)) / r.jitterBufferEmittedCount : 0;
          got.audioHeldSum = r.jitterBufferDelay || 0;
          got.audioEmitted = r.jitterBufferEmittedCount || 0;
        }
        // What this page sends the laptop, and what the laptop's receiver reports say it lost
        // after its retransmissions came (or did not).
        if (r.type === "outbound-rtp" && r.kind === "video") {
          got.sentVideoPackets = r.packetsSent || 0;
          got.retransmittedSent = r.retransmittedPacketsSent || 0;
          got.nacksReceived = r.nackCount || 0;
          // Why Chromium sends the laptop less than its camera gives ("bandwidth", "cpu"), and at
          // what rate and size.
          got.sendLimit = r.qualityLimitationReason || null;
          got.sendTargetKbps = Math.round((r.targetBitrate || 0) / 1000);
          got.sendHeight = r.frameHeight || 0;
          // How long its packets waited in Chromium's pacer, in all (seconds).
          got.sendDelay = r.totalPacketSendDelay || 0;
          got.videoBytesSent = (r.bytesSent || 0) + (r.headerBytesSent || 0);
          got.framesEncoded = r.framesEncoded || 0;
        }
        if (r.type === "outbound-rtp" && r.kind === "audio") {
          // What the page's voice costs the laptop's downlink.
          got.voiceBytesSent = (r.bytesSent || 0) + (r.headerBytesSent || 0);
          got.voicePacketsSent = r.packetsSent || 0;
          got.voiceTargetKbps = Math.round((r.targetBitrate || 0) / 1000);
        }
        if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
          got.sendAvailableKbps = Math.round(r.availableOutgoingBitrate / 1000);
        }
        if (r.type === "remote-inbound-rtp" && r.kind === "video") {
          got.kioskVideoLost = r.packetsLost || 0;
          // The kiosk's receiver reports as Chromium reads them: the interarrival jitter its own
          // arrival times show (ms) and the share it last reported lost, beside the pair's.
          got.kioskJitterMs = 1000 * (r.jitter || 0);
          got.kioskFractionLost = r.fractionLost || 0;
          // The round trip Chromium measures from the laptop's receiver reports (0: none yet).
          got.rtt = r.roundTripTime || 0;
        }
      });
      return {
        at: Date.now(),
        quality: window.scCall.quality || null,
        resumed: window.scCall.resumed || 0,
        callState: document.getElementById("call-state").textContent,
        videoSending: Boolean(pc && pc.getSenders().some((s) => s.track && s.track.kind === "video")),
        // Whether the video sender's stream is on (sound only turns it off, not only its track).
        videoActive: window.scCall.videoSender ? (window.scCall.videoSender.getParameters().encodings?.[0]?.active ?? null) : null,
        // The cap the page put on its voice (sound only), or null.
        voiceMaxBitrate: ((pc && pc.getSenders().find((s) => s.track && s.track.kind === "audio")) || { getParameters: () => ({}) })
          .getParameters().encodings?.[0]?.maxBitrate ?? null,
        ...got,
      };
    }).then((p) => say("page", p)).catch(() => {});
  }, 250);

  const stats = async () => page.evaluate(async () => {
    const out = { video: null, audio: null, pair: null, ended: false };
    // A short call (the bench's connect-time calls last 3 s) can end, by the kiosk, before the
    // page has seen its first 30 frames: the page has then let its connection go.
    const pc = window.scCall.pc;
    if (!pc) return { ...out, ended: true };
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") out.video = { framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0 };
      if (s.type === "inbound-rtp" && s.kind === "audio") out.audio = { totalAudioEnergy: s.totalAudioEnergy || 0, packetsReceived: s.packetsReceived || 0 };
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        if (pair) out.pair = { local: byId.get(pair.localCandidateId)?.candidateType, remote: byId.get(pair.remoteCandidateId)?.candidateType };
      }
    });
    return out;
  });
  let s = await stats();
  let firstFrameMs = null;
  for (let i = 0; i < 300 && !s.ended && !(s.video && s.video.framesDecoded >= 30 && s.audio && s.audio.totalAudioEnergy > 0 && s.pair); i++) {
    if (firstFrameMs === null && s.video && s.video.framesDecoded > 0) firstFrameMs = Date.now() - admittedAt;
    await page.waitForTimeout(firstFrameMs === null ? 10 : 100);
    s = await stats();
  }
  say("stats", { ...s, firstFrameMs });

  // Keep the call up a while (the window test takes its screenshot meanwhile).
  await page.waitForTimeout(Number(process.env.SC_HOLD_MS || 0));
  if (process.env.SC_END === "consultant") {
    await page.click("#end");
    say("ended", { by: "consultant" });
  } else {
    // Back to the list, or on to the outcome note the page asks for after a consultation.
    await page.waitForFunction(() => ["rooms", "note"].includes(document.body.dataset.view), null, { timeout: 60000 });
    say("ended", { by: "kiosk", reason: await page.evaluate(() => window.scCall.lastEnd) });
  }
  clearInterval(reporter);
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
