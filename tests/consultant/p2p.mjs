// One side of a Chromium <-> Chromium call for the shaped-link benchmark: the peer every kiosk figure
// is measured beside, on the same link, relay and clip. Relay-only through the TURN server given;
// signalling goes through the Rust harness: this side's description and candidates come out as
// {"event":"signal",...} lines, the other side's go in on stdin as {"do":"signal",...}. Four times a
// second it reports what it receives ({"event":"page",...}, the same fields as call.mjs's).
// Settings: SC_URL (any page of the care server, for a secure context), SC_SPKI, SC_Y4M,
// SC_ROLE (offer | answer), SC_TURN_URL, SC_TURN_USER, SC_TURN_PASS.
import { createInterface } from "node:readline";
import { env, say, startDriver } from "./launch.mjs";

const { browser, done } = await startDriver({ y4m: env("SC_Y4M") });

try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") say("console", { text: m.text() }); });
  await page.goto(`${env("SC_URL")}/consult/`);
  await page.exposeFunction("scSignal", (m) => say("signal", m));
  await page.evaluate(async ({ role, turn }) => {
    const pc = new RTCPeerConnection({ iceServers: [turn], iceTransportPolicy: "relay" });
    window.scPeer = pc;
    const pending = [];
    pc.onicecandidate = (ev) => { if (ev.candidate) window.scSignal({ candidate: ev.candidate.toJSON() }); };
    // Played out: Chromium counts received and concealed audio samples only for audio that is
    // played. The hospital's side draws in the consultant page's own call view (#remote and the
    // self-view #local, at the sizes its style gives them), as the consultant page shows the
    // laptop, so that its CPU is the same page's beside the kiosk's consultant; the prison's side
    // plays into a bare <video> at its own size (the kiosk's engine in this benchmark draws
    // nothing; the call benchmark measures its window).
    const hospital = role === "answer";
    if (hospital) (await import("/consult/common.js")).view("call");
    const remote = hospital ? document.getElementById("remote") : document.body.appendChild(document.createElement("video"));
    remote.autoplay = true;
    remote.srcObject = new MediaStream();
    pc.ontrack = (ev) => {
      remote.srcObject.addTrack(ev.track);
      remote.play().catch(() => {});
    };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    if (hospital) document.getElementById("local").srcObject = stream;
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    window.scApply = async (m) => {
      if (m.sdp) {
        await pc.setRemoteDescription({ type: m.type, sdp: m.sdp });
        for (const c of pending.splice(0)) await pc.addIceCandidate(c).catch(() => {});
        if (m.type === "offer") {
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          window.scSignal({ type: "answer", sdp: answer.sdp });
        }
      } else if (m.candidate) {
        if (pc.remoteDescription) await pc.addIceCandidate(m.candidate).catch(() => {});
        else pending.push(m.candidate);
      }
    };
    // As a browser app would: restart ICE when the connection fails (the offerer only).
    pc.onconnectionstatechange = async () => {
      if (pc.connectionState === "failed" && role === "offer") {
        const offer = await pc.createOffer({ iceRestart: true });
        await pc.setLocalDescription(offer);
        window.scSignal({ type: "offer", sdp: offer.sdp });
      }
    };
    if (role === "offer") {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      window.scSignal({ type: "offer", sdp: offer.sdp });
    }
  }, {
    role: env("SC_ROLE"),
    turn: { urls: [env("SC_TURN_URL")], username: env("SC_TURN_USER"), credential: env("SC_TURN_PASS") },
  });
  say("ready");

  const reporter = setInterval(() => {
    page.evaluate(async () => {
      const pc = window.scPeer;
      const got = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, freezeCount: 0, audioPackets: 0, concealed: 0, samples: 0 };
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") {
          got.framesDecoded = r.framesDecoded || 0;
          got.frameWidth = r.frameWidth || 0;
          got.frameHeight = r.frameHeight || 0;
          got.freezeCount = r.freezeCount || 0;
          // How its losses were repaired (retransmission, FEC) and how long frames waited, for
          // the benchmark's report beside the kiosk's.
          got.videoPacketsLost = r.packetsLost || 0;
          got.videoPackets = r.packetsReceived || 0;
          got.nackCount = r.nackCount || 0;
          got.retransmittedReceived = r.retransmittedPacketsReceived || 0;
          got.fecPacketsReceived = r.fecPacketsReceived || 0;
          got.fecPacketsDiscarded = r.fecPacketsDiscarded || 0;
          got.jitterBufferDelay = r.jitterBufferEmittedCount ? r.jitterBufferDelay / r.jitterBufferEmittedCount : 0;
          // How long frames and the voice wait before they are shown and played: summed (seconds)
          // with their counts, so the benchmark takes the mean over its own window.
          got.videoHeldSum = r.jitterBufferDelay || 0;
          got.videoEmitted = r.jitterBufferEmittedCount || 0;
          got.videoCodec = (r.codecId && stats.get(r.codecId)?.mimeType) || null;
        }
        // What it sends, and how long its pacer held it: beside what the consultant's page sends
        // the laptop (call.mjs), for the benchmark's trace.
        if (r.type === "outbound-rtp" && r.kind === "video") {
          got.sentVideoPackets = r.packetsSent || 0;
          got.sendTargetKbps = Math.round((r.targetBitrate || 0) / 1000);
          got.sendHeight = r.frameHeight || 0;
          got.sendDelay = r.totalPacketSendDelay || 0;
          got.videoBytesSent = (r.bytesSent || 0) + (r.headerBytesSent || 0);
          got.framesEncoded = r.framesEncoded || 0;
        }
        if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
          got.rtt = r.currentRoundTripTime || 0;
          if (r.availableOutgoingBitrate) got.sendAvailableKbps = Math.round(r.availableOutgoingBitrate / 1000);
        }
        // The far side's receiver reports on this side's video, as call.mjs reads the kiosk's.
        if (r.type === "remote-inbound-rtp" && r.kind === "video") {
          got.remoteJitterMs = 1000 * (r.jitter || 0);
          got.remoteFractionLost = r.fractionLost || 0;
        }
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          got.audioPackets = r.packetsReceived || 0;
          got.concealed = r.concealedSamples || 0;
          got.samples = r.totalSamplesReceived || 0;
          got.audioHeldSum = r.jitterBufferDelay || 0;
          got.audioEmitted = r.jitterBufferEmittedCount || 0;
        }
      });
      return { at: Date.now(), callState: pc.connectionState, ...got };
    }).then((p) => say("page", p)).catch(() => {});
  }, 250);

  const commands = createInterface({ input: process.stdin });
  for await (const line of commands) {
    const cmd = JSON.parse(line);
    if (cmd.do === "signal") await page.evaluate((m) => window.scApply(m), cmd.message);
    if (cmd.do === "end") break;
  }
  clearInterval(reporter);
  await done(0);
} catch (e) {
  say("error", { message: String(e && e.stack || e) });
  await done(1);
}
