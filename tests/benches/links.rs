//! Calls on shaped prison links (issue #12): for each profile, a call from the kiosk's engine to a
//! Chromium consultant, and beside it, in the same run, on the same link, relay and clip, a call
//! between two Chromiums (one where the kiosk sits). Each receiving side's audio concealment, video
//! frame rate and size, freezes a minute (the W3C `freezeCount` on every side: 5 s or more without
//! a frame is a pause, not a freeze) and CPU; after the outage, how long each side's picture took
//! to come back. Printed as a table and written as JSON (`artifacts/bench/links.json`).
//!
//! `SC_BENCH_LINK_SECS` sets each call's length (default 60); `SC_BENCH_LINK_PROFILES` picks
//! profiles by name (comma-separated; default all). For tuning, `SC_BENCH_TRACE=1` prints the
//! kiosk's estimate, measured loss and what it sends each second, and `SC_BENCH_PAIR=0` leaves out
//! the Chromium pair (its columns then read "-"). `SC_BENCH_LINK_RUNS` (default 1) repeats each
//! profile's calls and prints each figure's median over the runs, with each run's freezes beside it:
//! one 60-90 s call is too short to tell 2 freezes a minute from 4 (the same code ranged 3.8-12 a
//! minute between single runs). `SC_BENCH_LINK_MEMORY=1` keeps the kiosk's link record
//! (`sc_call::link_memory`) from one run of a profile to the next, as at a prison; without it every
//! call starts as on a new link.

use sc_e2e::link::{Link, LinkCounts, Profile, QdiscCounts, OUTAGE};
use sc_e2e::shaped::{attempt, attempt_watching, hospital_sending, peer_call, Content};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first seconds of a call are the controllers finding the link; figures start after them.
const SETTLE: f64 = 10.0;
/// When the outage starts, after the call connects.
const OUTAGE_AT: Duration = Duration::from_secs(15);

fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

/// What one receiving side saw, from its reports: (wall ms, frames, width, height, audio packets
/// or samples received, concealed/lost, freezes), and how long the voice and the picture were held
/// before they were played and shown, summed (ms) with how many times, so a window's mean is the
/// difference of its ends.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: f64,
    frames: f64,
    width: f64,
    height: f64,
    audio: f64,
    concealed: f64,
    freezes: f64,
    voice_held: Held,
    picture_held: Held,
}

/// A running sum of how long something was held, ms, and over how many.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    sum_ms: f64,
    count: f64,
}

impl Held {
    /// The mean from `first` to `self`.
    fn mean_since(self, first: Held) -> Option<f64> {
        let n = self.count - first.count;
        (n > 0.0).then(|| (self.sum_ms - first.sum_ms) / n)
    }

    fn plus(self, ms: f64) -> Held {
        Held { sum_ms: self.sum_ms + ms, count: self.count + 1.0 }
    }
}

/// The figures of one receiving side over a window.
#[derive(Debug, Clone, Default)]
struct Side {
    concealment: Option<f64>,
    fps: Option<f64>,
    size: String,
    /// The picture's size over the time it was shown, thousands of pixels on the mean.
    mean_kpixels: Option<f64>,
    freezes_per_min: Option<f64>,
    recovery: Option<f64>,
    cpu: Option<f64>,
    /// How long the voice and the picture were held, ms, on the mean.
    voice_held: Option<f64>,
    picture_held: Option<f64>,
    /// How long the figures were measured over, s.
    window: Option<f64>,
}

impl Side {
    fn json(&self) -> Value {
        json!({
            "concealment_pct": self.concealment.map(|c| c * 100.0),
            "fps": self.fps,
            "resolution": self.size,
            "mean_kpixels": self.mean_kpixels,
            "freezes_per_min": self.freezes_per_min,
            "recovery_after_outage_ms": self.recovery,
            "cpu_cores": self.cpu,
            "voice_held_ms": self.voice_held,
            "picture_held_ms": self.picture_held,
            "window_s": self.window,
        })
    }
}

/// How long a side's reports run on from `from` (ms).
fn span(samples: &[Sample], from: f64) -> f64 {
    samples.iter().rev().find(|s| s.at >= from).map_or(0.0, |s| s.at - from)
}

/// The length all four sides' figures are measured over: the shortest side's, so a ratio
/// compares like with like. On the outage profile the ten dead seconds are a share of the window:
/// a side measured a second shorter reads ~0.3 points more concealed for the same ten seconds (the
/// calls' reports ran 58.0-60.0 s in two runs, issue #12).
fn common_span(spans: &[f64]) -> Option<f64> {
    spans.iter().copied().filter(|s| *s > 0.0).min_by(f64::total_cmp)
}

/// A side's figures over its reports from `from`, for `len` ms if given (else to its last).
fn figures(samples: &[Sample], from: f64, len: Option<f64>, back: Option<f64>, cpu: Option<f64>) -> Side {
    let until = len.map_or(f64::INFINITY, |l| from + l);
    let window: Vec<&Sample> = samples.iter().filter(|s| s.at >= from && s.at <= until).collect();
    // The last report whose counters did not go back: while a renegotiation is applied Chromium's
    // stats can briefly leave the video's receiver out (0 frames, 0x0), which read as negative fps.
    let first = window.first();
    let last = first.and_then(|f| window.iter().rev().find(|s| s.frames >= f.frames && s.audio >= f.audio));
    let (Some(first), Some(last)) = (first, last) else {
        return Side { cpu, ..Side::default() };
    };
    let secs = (last.at - first.at) / 1000.0;
    let audio = last.audio - first.audio;
    let recovery = back.and_then(|b| {
        let at_back = samples.iter().rev().find(|s| s.at <= b).map_or(0.0, |s| s.frames);
        samples.iter().find(|s| s.at > b && s.frames > at_back + 5.0).map(|s| s.at - b)
    });
    Side {
        concealment: (audio > 0.0).then(|| (last.concealed - first.concealed) / audio),
        fps: (secs > 0.0).then(|| (last.frames - first.frames) / secs),
        size: shown_longest(&window).unwrap_or_else(|| "none".to_owned()),
        mean_kpixels: shown_mean_kpixels(&window),
        freezes_per_min: (secs > 0.0).then(|| (last.freezes - first.freezes) * 60.0 / secs),
        recovery,
        cpu,
        voice_held: last.voice_held.mean_since(first.voice_held),
        picture_held: last.picture_held.mean_since(first.picture_held),
        window: Some(secs),
    }
}

/// The picture size a side showed for the longest time over `window` (each report's size counted
/// until the next report). The size the last report named was the figure before: a sender that
/// stepped down for the last few seconds of a 60 s call read as that size for the whole call
/// (on the prison profile Chromium sent the kiosk 640x480 until 54 s into one call and 320x240 for
/// its last nine seconds, until the last two of another, and both runs read 320x240). A stretch
/// with no frame shown counts for no size: a call sound only read as the size of its last frame.
fn shown_longest(window: &[&Sample]) -> Option<String> {
    let mut shown: Vec<((f64, f64), f64)> = Vec::new();
    for (size, ms) in shown_sizes(window) {
        match shown.iter_mut().find(|(k, _)| *k == size) {
            Some((_, total)) => *total += ms,
            None => shown.push((size, ms)),
        }
    }
    shown.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|((w, h), _)| format!("{w}x{h}"))
}

/// The picture's size over the time it was shown, thousands of pixels on the mean: the longest
/// size alone hides a side that spent a third of a call smaller (the step profile: the kiosk
/// showed Chromium's 320x240 for 25 s where the pair's receiver kept 480x360, and the longest
/// size said only that; issue #12).
fn shown_mean_kpixels(window: &[&Sample]) -> Option<f64> {
    let (px_ms, ms) =
        shown_sizes(window).fold((0.0, 0.0), |(px_ms, total), ((w, h), ms)| (px_ms + w * h * ms, total + ms));
    (ms > 0.0).then(|| px_ms / ms / 1000.0)
}

/// Each stretch between two reports in which frames were shown: its size (as the first report
/// named it) and how long, ms. A stretch with no frame shown counts for no size.
fn shown_sizes<'a>(window: &'a [&Sample]) -> impl Iterator<Item = ((f64, f64), f64)> + 'a {
    window.windows(2).filter_map(|pair| {
        let (s, next) = (pair[0], pair[1]);
        (s.width > 0.0 && s.height > 0.0 && next.frames > s.frames).then_some(((s.width, s.height), next.at - s.at))
    })
}

/// A Chromium page's report as a sample: its concealed samples over the samples it received; its
/// `jitterBufferDelay` (each audio sample's, each frame's wait from its packets' arrival to its
/// playing or decoding, lip sync's share included) over the count emitted.
fn page_sample(p: &Value) -> Sample {
    let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
    Sample {
        at: f("at"),
        frames: f("framesDecoded"),
        width: f("frameWidth"),
        height: f("frameHeight"),
        audio: f("samples"),
        concealed: f("concealed"),
        freezes: f("freezeCount"),
        voice_held: Held { sum_ms: 1000.0 * f("audioHeldSum"), count: f("audioEmitted") },
        picture_held: Held { sum_ms: 1000.0 * f("videoHeldSum"), count: f("videoEmitted") },
    }
}

/// The kiosk engine's stats as a sample: the voice's samples concealed (a packet not there in its
/// turn, one lost and not rebuilt from the next one's repeat or FEC, the stream gone) over all it
/// played since its first packet, as Chromium counts `concealedSamples` over
/// `totalSamplesReceived`. How long the voice and the picture are held is the engine's own figure
/// at each report (`audio_delay_ms`, `playout_ms`: past the fastest arrival, so a little over
/// Chromium's, which counts from each packet's own arrival), counted in the reports since `prev`
/// where the voice was played or a frame decoded.
fn engine_sample(at: f64, v: &Value, prev: Option<&Sample>) -> Sample {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let prev = prev.copied().unwrap_or_default();
    let frames = f("frames_decoded");
    let audio = f("audio_samples");
    Sample {
        at,
        frames,
        width: v["remote"][0].as_f64().unwrap_or(0.0),
        height: v["remote"][1].as_f64().unwrap_or(0.0),
        audio,
        voice_held: if audio > prev.audio { prev.voice_held.plus(f("audio_delay_ms")) } else { prev.voice_held },
        picture_held: if frames > prev.frames { prev.picture_held.plus(f("playout_ms")) } else { prev.picture_held },
        concealed: f("audio_concealed_samples"),
        freezes: f("freezes"),
    }
}

/// One second of the link for a trace: what each direction's tbf passed and dropped, what waited
/// in it when read (as ms at the profile's rate), and the random loss.
fn link_line(d: LinkCounts, rate_kbit: Option<u32>) -> String {
    let wait_ms = |backlog: u64| rate_kbit.map_or(0.0, |r| backlog as f64 * 8.0 / f64::from(r.max(1)));
    let dir = |q: QdiscCounts, lost: u64| {
        format!(
            "{:>4.0} kbit/s {:>3} pkt/s ({} queue drops, {} lost, {:>3.0} ms queued)",
            q.bytes as f64 * 8.0 / 1000.0,
            q.packets,
            q.dropped,
            lost,
            wait_ms(q.backlog)
        )
    };
    format!("link up {}, down {}", dir(d.up, d.lost_up), dir(d.down, d.lost_down))
}

fn trace() -> bool {
    std::env::var("SC_BENCH_TRACE").is_ok_and(|v| v == "1")
}

fn profiles() -> Vec<Profile> {
    let all = vec![
        Profile::good(),
        Profile::prison(),
        Profile::poor(),
        Profile::audio_only(),
        Profile::outage(OUTAGE_AT),
        Profile::step(Duration::from_secs(15), Duration::from_secs(35)),
    ];
    match std::env::var("SC_BENCH_LINK_PROFILES") {
        Ok(names) => all.into_iter().filter(|p| names.split(',').any(|n| n.trim() == p.name)).collect(),
        Err(_) => all,
    }
}

/// One profile's four receiving sides: kiosk and its consultant; Chromium at the prison and at the
/// hospital.
async fn profile_figures(profile: Profile, secs: u64) -> Value {
    // The outage profile's calls run on past the link's return, so there is a recovery to see.
    let secs = if profile.name == "outage" { secs.max((OUTAGE_AT + OUTAGE).as_secs() + 15) } else { secs };
    let outage_back = |start: f64| (profile.name == "outage").then(|| start + (OUTAGE_AT + OUTAGE).as_millis() as f64);

    // The kiosk and a Chromium consultant.
    let link = Link::new(profile.clone());
    let mut h = hospital_sending(&link, Content::Camera);
    if std::env::var("SC_BENCH_LINK_MEMORY").is_ok_and(|v| v == "1") {
        // One prison's calls one after another: each run starts from the record the runs before kept.
        let name = format!("sc-bench-link-{}-{}.json", profile.name, std::process::id());
        h.link_memory = Some(std::env::temp_dir().join(name));
    }
    let mut kiosk = Vec::new();
    let mut started: Option<f64> = None;
    let mut last = Value::Null;
    let mut last_link = LinkCounts::default();
    let mut last_page = Value::Null;
    let a = attempt_watching(&link, &h, 0, secs, |stats, page| {
        let now = wall_ms();
        // The call has started once anything arrived: on the audio-only profile no video frame may
        // ever be decoded, and the figures must still leave out the start.
        let received = |k: &str| stats[k].as_f64().unwrap_or(0.0) > 0.0;
        if started.is_none() && (received("frames_decoded") || received("audio_received")) {
            started = Some(now);
            link.start_schedule();
        }
        kiosk.push(engine_sample(now, stats, kiosk.last()));
        if trace() {
            let v = &stats["sending"]["video"];
            // What left in the last second, beside what was asked for.
            let delta = |k: &str| stats[k].as_f64().unwrap_or(0.0) - last[k].as_f64().unwrap_or(0.0);
            println!(
                "trace {} {:>5.1} s: target {:>5.0} kbit/s (limit {}, peer capped at {}), loss {:>4.1} % ({:>4.1} % over 3 s), queue {:>3.0} ms, \
                 video {}, sent {:>4.0} kbit/s {:>2.0} frames ({:.0} key, {:.0} asked, {:.0} skipped busy, {:.0} dropped \
                 by the encoder), frames decoded {} \
                 ({:.0} freezes, {:.0} keyframes asked, held {} ms, {}x{})",
                profile.name,
                stats["at_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                stats["target_kbps"].as_f64().unwrap_or(0.0),
                stats["limit_kbps"].as_f64().map_or_else(|| "-".to_owned(), |k| format!("{k:.0}")),
                stats["peer_cap_kbps"].as_f64().map_or_else(|| "-".to_owned(), |k| format!("{k:.0}")),
                100.0 * stats["link_loss"].as_f64().unwrap_or(0.0),
                100.0 * stats["window_loss"].as_f64().unwrap_or(0.0),
                stats["queue_ms"].as_f64().unwrap_or(0.0),
                if v.is_null() {
                    "none".to_owned()
                } else {
                    format!("{}x{}@{} {} kbit/s", v["width"], v["height"], v["fps"], v["kbps"])
                },
                delta("video_bytes_sent") * 8.0 / 1000.0,
                delta("frames_sent"),
                delta("keyframes_sent"),
                delta("keyframe_requests"),
                delta("frames_skipped_busy"),
                delta("frames_dropped_by_encoder"),
                stats["frames_decoded"],
                delta("freezes"),
                // A picture given up for a repair that did not come: a keyframe asked for.
                delta("keyframes_asked"),
                stats["playout_ms"],
                stats["remote"][0],
                stats["remote"][1],
            );
            // The consultant's voice at the kiosk in the last second.
            println!(
                "trace {} kiosk voice: {:.0} packets, {:.0} lost, {:.0} rebuilt ({:.0} as RED), {:.1} % concealed \
                 of {:.0} ms played, jitter buffer {} ms ({:.0} ms added, {:.0} ms cut; {} ms of it for lip sync, picture {} ms behind); \
                 {:.0} video repairs \
                 unasked, {:.0} dropped as too old; video FEC {:.0} sent, {:.0} received, {:.0} rebuilt; round trip \
                 {} ms",
                profile.name,
                delta("audio_received"),
                delta("audio_lost"),
                delta("audio_recovered"),
                delta("audio_red"),
                100.0 * delta("audio_concealed_samples") / delta("audio_samples").max(1.0),
                delta("audio_samples") / 48.0,
                stats["audio_delay_ms"],
                delta("audio_inserted_samples") / 48.0,
                delta("audio_removed_samples") / 48.0,
                stats["audio_sync_ms"],
                stats["av_skew_ms"].as_f64().map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0}")),
                delta("repairs_unasked"),
                delta("repairs_too_old"),
                delta("video_fec_sent"),
                delta("video_fec"),
                delta("video_fec_rebuilt"),
                stats["round_trip_ms"].as_u64().map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
            );
            // What the consultant's Chromium made of the kiosk's video in the last second.
            if let Some(p) = page.last() {
                let d = |k: &str| p[k].as_f64().unwrap_or(0.0) - last_page[k].as_f64().unwrap_or(0.0);
                println!(
                    "trace {} consultant: {:.0} frames received, {:.0} decoded, {:.0} dropped, {:.0} freezes, \
                     jitter buffer {:.0} ms (mean; held at least {:.0} ms), {:.0} nacks, {:.0} plis sent, rtt {:.0} ms",
                    profile.name,
                    d("framesReceived"),
                    d("framesDecoded"),
                    d("framesDropped"),
                    d("freezeCount"),
                    1000.0 * p["jitterBufferDelay"].as_f64().unwrap_or(0.0),
                    1000.0 * d("videoMinimumDelay") / d("videoEmitted").max(1.0),
                    d("nackCount"),
                    d("pliCount"),
                    1000.0 * p["rtt"].as_f64().unwrap_or(0.0),
                );
                // What the page sends the kiosk, and how long its pacer held it.
                println!(
                    "trace {} consultant sends: {:.0} kbit/s video ({} kbit/s target, {} high, limited by {}), \
                     {:.0} frames encoded, pacer held {:.0} ms (mean), {:.0} resent; estimate {} kbit/s; \
                     the kiosk reports jitter {:.0} ms, {:.1} % lost",
                    profile.name,
                    d("videoBytesSent") * 8.0 / 1000.0,
                    p["sendTargetKbps"],
                    p["sendHeight"],
                    p["sendLimit"],
                    d("framesEncoded"),
                    1000.0 * d("sendDelay") / d("sentVideoPackets").max(1.0),
                    d("retransmittedSent"),
                    p["sendAvailableKbps"],
                    p["kioskJitterMs"].as_f64().unwrap_or(0.0),
                    100.0 * p["kioskFractionLost"].as_f64().unwrap_or(0.0),
                );
                let samples = d("samples");
                println!(
                    "trace {} consultant voice: {:.0} packets, {:.0} lost, {:.0} from FEC ({:.0} FEC discarded), \
                     {:.1} % concealed ({:.0} events), jitter buffer {:.0} ms (mean; target {:.0}); \
                     sends {:.0} packets, {:.1} kbit/s (RTP; target {} kbit/s)",
                    profile.name,
                    d("audioPackets"),
                    d("audioLost"),
                    d("audioFec"),
                    d("audioFecDiscarded"),
                    if samples > 0.0 { 100.0 * d("concealed") / samples } else { 0.0 },
                    d("concealmentEvents"),
                    p["audioJitterBufferMs"].as_f64().unwrap_or(0.0),
                    p["audioTargetMs"].as_f64().unwrap_or(0.0),
                    d("voicePacketsSent"),
                    d("voiceBytesSent") * 8.0 / 1000.0,
                    p["voiceTargetKbps"],
                );
                last_page = p.clone();
            }
            // The link itself: what each direction's tbf passed and dropped, and the random loss.
            let now_link = link.counts();
            println!("trace {} {}", profile.name, link_line(now_link.since(last_link), profile.rate_kbit));
            last_link = now_link;
            last = stats.clone();
        }
        false
    })
    .await;
    drop(h);
    drop(link);
    if std::env::var("SC_BENCH_PAIR").is_ok_and(|v| v == "0") {
        let start = started.unwrap_or(0.0);
        let from = start + SETTLE * 1000.0;
        let window_from = if profile.name == "outage" { start } else { from };
        let consultant: Vec<Sample> = a.page.iter().map(page_sample).collect();
        return json!({
            "profile": profile.name,
            "kiosk_receives": figures(&kiosk, window_from, None, outage_back(start), a.cpu.0).json(),
            "consultant_receives_from_kiosk": figures(&consultant, window_from, None, outage_back(start), a.cpu.1).json(),
            "chromium_at_prison_receives": {},
            "chromium_at_hospital_receives": {},
            "kiosk_connected_after_admission_ms": a.connected_after_admission.map(|d| d.as_millis() as u64),
            "last_reports": {
                "kiosk": a.engine.iter().rev().find(|v| v["event"] == "stats"),
                "consultant": a.page.last(),
            },
        });
    }
    let start = started.unwrap_or(0.0);
    let from = start + SETTLE * 1000.0;
    let window_from = if profile.name == "outage" { start } else { from };
    let consultant: Vec<Sample> = a.page.iter().map(page_sample).collect();

    // Two Chromiums on a fresh link of the same profile.
    let link = Link::new(profile.clone());
    let h = hospital_sending(&link, Content::Camera);
    let mut peer_started: Option<f64> = None;
    let mut last_link = LinkCounts::default();
    let mut last_hospital = Value::Null;
    let mut last_prison = Value::Null;
    let p = peer_call(&link, &h, secs, |prison, hospital| {
        if trace() {
            let now_link = link.counts();
            let at_prison = prison.last().cloned().unwrap_or_default();
            // What the hospital's Chromium sends the prison's, as the consultant's page's line
            // says what it sends the kiosk.
            let at_hospital = hospital.last().cloned().unwrap_or_default();
            let d = |k: &str| at_hospital[k].as_f64().unwrap_or(0.0) - last_hospital[k].as_f64().unwrap_or(0.0);
            let heard = |k: &str| at_prison[k].as_f64().unwrap_or(0.0) - last_prison[k].as_f64().unwrap_or(0.0);
            println!(
                "trace {} pair {}; at prison: rtt {} s, {} freezes, {} nacks, voice {:.1} % concealed; hospital sends {:.0} kbit/s video \
                 ({} kbit/s target, {} high), {:.0} frames encoded, pacer held {:.0} ms (mean); estimate {} kbit/s; \
                 the prison reports jitter {:.0} ms, {:.1} % lost",
                profile.name,
                link_line(now_link.since(last_link), profile.rate_kbit),
                at_prison["rtt"],
                at_prison["freezeCount"],
                at_prison["nackCount"],
                100.0 * heard("concealed") / heard("samples").max(1.0),
                d("videoBytesSent") * 8.0 / 1000.0,
                at_hospital["sendTargetKbps"],
                at_hospital["sendHeight"],
                d("framesEncoded"),
                1000.0 * d("sendDelay") / d("sentVideoPackets").max(1.0),
                at_hospital["sendAvailableKbps"],
                at_hospital["remoteJitterMs"].as_f64().unwrap_or(0.0),
                100.0 * at_hospital["remoteFractionLost"].as_f64().unwrap_or(0.0),
            );
            last_link = now_link;
            last_hospital = at_hospital;
            last_prison = at_prison;
        }
        let up = |r: &[Value]| r.last().is_some_and(|p| p["framesDecoded"].as_f64().unwrap_or(0.0) > 0.0);
        if peer_started.is_none() && up(prison) && up(hospital) {
            peer_started = Some(wall_ms());
            link.start_schedule();
        }
        false
    })
    .await;
    drop(h);
    drop(link);
    let pstart = peer_started.unwrap_or(0.0);
    let pfrom = if profile.name == "outage" { pstart } else { pstart + SETTLE * 1000.0 };
    let prison: Vec<Sample> = p.prison.iter().map(page_sample).collect();
    let hospital_side: Vec<Sample> = p.hospital.iter().map(page_sample).collect();
    let spans =
        [span(&kiosk, window_from), span(&consultant, window_from), span(&prison, pfrom), span(&hospital_side, pfrom)];
    let len = common_span(&spans);
    println!(
        "{} reports ran {:.1} s (kiosk), {:.1} s (consultant), {:.1} s (Chromium at prison), {:.1} s (Chromium at \
         hospital); all measured over {:.1} s",
        profile.name,
        spans[0] / 1000.0,
        spans[1] / 1000.0,
        spans[2] / 1000.0,
        spans[3] / 1000.0,
        len.unwrap_or(0.0) / 1000.0
    );
    let kiosk_side = figures(&kiosk, window_from, len, outage_back(start), a.cpu.0);
    let consultant_side = figures(&consultant, window_from, len, outage_back(start), a.cpu.1);
    let chromium_prison = figures(&prison, pfrom, len, outage_back(pstart), p.cpu.0);
    let chromium_hospital = figures(&hospital_side, pfrom, len, outage_back(pstart), p.cpu.1);

    json!({
        "profile": profile.name,
        "kiosk_receives": kiosk_side.json(),
        "consultant_receives_from_kiosk": consultant_side.json(),
        "chromium_at_prison_receives": chromium_prison.json(),
        "chromium_at_hospital_receives": chromium_hospital.json(),
        "kiosk_connected_after_admission_ms": a.connected_after_admission.map(|d| d.as_millis() as u64),
        "chromium_pair_connected_after_ms": p.connected_after.map(|d| d.as_millis() as u64),
        "last_reports": {
            "kiosk": a.engine.iter().rev().find(|v| v["event"] == "stats"),
            "consultant": a.page.last(),
            "chromium_at_prison": p.prison.last(),
            "chromium_at_hospital": p.hospital.last(),
        },
    })
}

/// The receiving sides' figures in [`Side::json`]'s shape.
const SIDES: [&str; 4] = [
    "kiosk_receives",
    "chromium_at_prison_receives",
    "consultant_receives_from_kiosk",
    "chromium_at_hospital_receives",
];

/// One profile's runs as one row: each side's figures the median over the runs that have them,
/// its picture size the one most runs showed longest; the runs themselves kept under `runs`.
fn median_row(mut runs: Vec<Value>) -> Value {
    if runs.len() == 1 {
        return runs.remove(0);
    }
    let mut row = runs[0].clone();
    for side in SIDES {
        let mut merged = serde_json::Map::new();
        for key in [
            "concealment_pct",
            "fps",
            "mean_kpixels",
            "freezes_per_min",
            "recovery_after_outage_ms",
            "cpu_cores",
            "voice_held_ms",
            "picture_held_ms",
            "window_s",
        ] {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| r[side][key].as_f64()).collect();
            v.sort_by(f64::total_cmp);
            let median = match v.len() {
                0 => None,
                n if n % 2 == 1 => Some(v[n / 2]),
                n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
            };
            merged.insert(key.to_owned(), json!(median));
        }
        let mut sizes: Vec<&str> = runs.iter().filter_map(|r| r[side]["resolution"].as_str()).collect();
        sizes.sort_unstable();
        let size = sizes.iter().max_by_key(|s| sizes.iter().filter(|t| t == s).count()).copied();
        merged.insert("resolution".to_owned(), json!(size));
        row[side] = Value::Object(merged);
    }
    row["runs"] = json!(runs
        .iter()
        .map(|r| SIDES.iter().map(|s| ((*s).to_owned(), r[*s].clone())).collect::<serde_json::Map<_, _>>())
        .collect::<Vec<_>>());
    row
}

fn cell(v: &Value, key: &str, digits: usize) -> String {
    v[key].as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

fn ratio(a: &Value, b: &Value, key: &str) -> String {
    match (a[key].as_f64(), b[key].as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "-".to_owned(),
    }
}

/// Runs every profile and prints the table (kiosk beside Chromium, ratios kiosk / Chromium).
pub(crate) async fn link_figures() {
    let secs = std::env::var("SC_BENCH_LINK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let runs: usize = std::env::var("SC_BENCH_LINK_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let mut rows = Vec::new();
    for profile in profiles() {
        let mut each = Vec::new();
        for run in 1..=runs {
            eprintln!(
                "links: {} profile, {secs} s calls, run {run} of {runs} (kiosk <-> Chromium, then Chromium <-> Chromium)",
                profile.name
            );
            each.push(profile_figures(profile.clone(), secs).await);
        }
        rows.push(median_row(each));
    }
    println!(
        "shaped links, {secs} s calls, figures after the first {SETTLE} s (the whole call for the outage), over the \
         same length for all four sides; each receiving side, the kiosk's pair beside the Chromium pair on the \
         same link, relay and clip{}:",
        if runs > 1 { format!("; the median of {runs} runs") } else { String::new() }
    );
    println!(
        "{:<10} {:<34} {:>8} {:>6} {:>9} {:>5} {:>8} {:>9} {:>6} {:>8} {:>8}",
        "profile", "receiver", "conceal%", "fps", "size", "kpx", "freeze/m", "recov ms", "cpu", "voice ms", "pic ms"
    );
    for row in &rows {
        let name = row["profile"].as_str().unwrap_or("");
        for (label, key) in [
            ("kiosk (from Chromium)", "kiosk_receives"),
            ("Chromium at prison (pair)", "chromium_at_prison_receives"),
            ("consultant (from kiosk)", "consultant_receives_from_kiosk"),
            ("Chromium at hospital (pair)", "chromium_at_hospital_receives"),
        ] {
            let s = &row[key];
            println!(
                "{:<10} {:<34} {:>8} {:>6} {:>9} {:>5} {:>8} {:>9} {:>6} {:>8} {:>8}",
                name,
                label,
                cell(s, "concealment_pct", 2),
                cell(s, "fps", 1),
                s["resolution"].as_str().unwrap_or("-"),
                cell(s, "mean_kpixels", 0),
                cell(s, "freezes_per_min", 1),
                cell(s, "recovery_after_outage_ms", 0),
                cell(s, "cpu_cores", 2),
                cell(s, "voice_held_ms", 0),
                cell(s, "picture_held_ms", 0),
            );
        }
        if runs > 1 {
            let each = |key: &str| {
                row["runs"].as_array().map_or_else(String::new, |rs| {
                    rs.iter().map(|r| cell(&r[key], "freezes_per_min", 1)).collect::<Vec<_>>().join(", ")
                })
            };
            println!(
                "{:<10} freezes a minute in each run: kiosk {}; Chromium at prison {}; consultant {}; Chromium at hospital {}",
                name,
                each("kiosk_receives"),
                each("chromium_at_prison_receives"),
                each("consultant_receives_from_kiosk"),
                each("chromium_at_hospital_receives"),
            );
        }
        println!(
            "{:<10} ratios kiosk pair / Chromium pair: concealment at the prison side {}, at the hospital side {}; fps {} and {}; \
             picture size (mean pixels) {} and {}; voice held {} and {}; picture held {} and {}",
            name,
            ratio(&row["kiosk_receives"], &row["chromium_at_prison_receives"], "concealment_pct"),
            ratio(&row["consultant_receives_from_kiosk"], &row["chromium_at_hospital_receives"], "concealment_pct"),
            ratio(&row["kiosk_receives"], &row["chromium_at_prison_receives"], "fps"),
            ratio(&row["consultant_receives_from_kiosk"], &row["chromium_at_hospital_receives"], "fps"),
            ratio(&row["kiosk_receives"], &row["chromium_at_prison_receives"], "mean_kpixels"),
            ratio(&row["consultant_receives_from_kiosk"], &row["chromium_at_hospital_receives"], "mean_kpixels"),
            ratio(&row["kiosk_receives"], &row["chromium_at_prison_receives"], "voice_held_ms"),
            ratio(&row["consultant_receives_from_kiosk"], &row["chromium_at_hospital_receives"], "voice_held_ms"),
            ratio(&row["kiosk_receives"], &row["chromium_at_prison_receives"], "picture_held_ms"),
            ratio(&row["consultant_receives_from_kiosk"], &row["chromium_at_hospital_receives"], "picture_held_ms"),
        );
    }
    let connects = poor_connects().await;
    let dir = sc_e2e::artifacts_dir().join("bench");
    std::fs::create_dir_all(&dir).expect("artifacts/bench");
    let path = dir.join("links.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({ "secs": secs, "profiles": rows, "poor_connects": connects }))
            .expect("json"),
    )
    .expect("write links.json");
    println!("links: written to {}", path.display());
}

/// How reliably a call connects on the poor profile (issue #12 point 8: 3 of 6 calls once never
/// connected there): four calls from the kiosk, each admitted -> in call, and four Chromium pairs.
async fn poor_connects() -> Value {
    let link = Link::new(Profile::poor());
    let h = hospital_sending(&link, Content::Camera);
    let mut kiosk = Vec::new();
    for i in 0..4 {
        let a = attempt(&link, &h, i, 3).await;
        kiosk.push(a.connected_after_admission.map(|d| d.as_millis() as u64));
    }
    let mut pairs = Vec::new();
    for _ in 0..4 {
        let p = peer_call(&link, &h, 3, |_, _| false).await;
        pairs.push(p.connected_after.map(|d| d.as_millis() as u64));
    }
    let shown = |v: &[Option<u64>]| {
        v.iter().map(|t| t.map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms"))).collect::<Vec<_>>().join(", ")
    };
    println!("poor profile (256 kbit/s, 150 ms, 5 %), connect times: kiosk (admitted -> in call) {}; Chromium pairs (start -> both connected) {}", shown(&kiosk), shown(&pairs));
    json!({ "kiosk_admitted_to_in_call_ms": kiosk, "chromium_pair_start_to_connected_ms": pairs })
}
