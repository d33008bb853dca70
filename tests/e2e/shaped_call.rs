//! Calls across a shaped prison link (issue #12): the kiosk's engine (`kiosk-engine`) in the
//! prison's namespace; the care server, coturn behind our delay relay and a headless Chromium
//! consultant in the hospital's (the harness is `sc_e2e::shaped`). The prison-profile test sends
//! the camera-like clip both ways; the others send light pictures (what they check does not
//! depend on the picture). Smoke-sized: the full profiles and figures are the benchmark's.

use sc_call::consultation::rules::RESTART_AFTER;
use sc_e2e::link::{Link, Profile};
use sc_e2e::shaped::{attempt, attempt_watching, hospital, hospital_sending, Attempt, Content};
use serde_json::Value;
use std::time::{Duration, Instant};

fn poor_profile_tries() -> usize {
    std::env::var("SC_POOR_TRIES").ok().and_then(|t| t.parse::<usize>().ok()).unwrap_or(2).min(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_on_the_poor_profile_the_call_connects_every_time_within_10_s_and_sends_within_the_link() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::poor());
    let h = hospital(&link);
    for i in 0..poor_profile_tries() {
        let a = attempt(&link, &h, i, 12).await;
        let took = a.connected_after_admission;
        assert!(
            took.is_some_and(|t| t <= Duration::from_secs(10)),
            "try {i}: admitted -> in call took {took:?}; engine: {:?}",
            a.engine.iter().filter(|v| v["event"] == "phase").collect::<Vec<_>>()
        );
        // Once the controller has seen the link, the kiosk sends what 256 kbit/s can carry.
        let last = a.engine.iter().rev().find(|v| v["event"] == "stats").expect("stats").clone();
        let kbps = last["sending"]["video"]["kbps"].as_u64().unwrap_or(0);
        let width = last["sending"]["video"]["width"].as_u64().unwrap_or(0);
        let targets: Vec<String> = a
            .engine
            .iter()
            .filter(|v| v["event"] == "stats")
            .map(|v| {
                format!("{:.0}/{:.2}", v["target_kbps"].as_f64().unwrap_or(0.0), v["link_loss"].as_f64().unwrap_or(0.0))
            })
            .collect();
        assert!(
            kbps <= 256 && width <= 320,
            "try {i}: sending {} on a 256 kbit link; estimate/loss each second: {targets:?}",
            last["sending"]
        );
        assert!(last["audio_received"].as_u64().unwrap_or(0) > 100, "try {i}: audio flowed: {last}");
        assert!(last["frames_sent"].as_u64().unwrap_or(0) > 0, "try {i}: {last}");
        // Told weak, the page caps its voice so that RED's repeat, asked for later, fits beside
        // its video (uncapped, its video waited in Chromium's pacer for up to 2.4 s).
        assert!(
            a.page.iter().any(|p| p["quality"] == "weak" && p["voiceMaxBitrate"].as_u64() == Some(20_000)),
            "try {i}: the page capped its voice while weak: {:?}",
            a.page.iter().map(|p| (&p["quality"], &p["voiceMaxBitrate"])).collect::<Vec<_>>()
        );
    }
    drop(h);
    drop(link);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_on_the_audio_only_profile_both_sides_go_to_sound_only_and_back_to_video_when_the_link_recovers() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::audio_only());
    let h = hospital(&link);
    let mut recovered: Option<Instant> = None;
    let mut decoded_at_recovery = u64::MAX;
    // The page's clock (its reports' `at`, ms) when the link recovered.
    let mut page_at_recovery = f64::MAX;
    let mut page_sound_only_since: Option<f64> = None;
    let a = attempt_watching(&link, &h, 0, 120, |stats, page| {
        let page_sound_only = page.iter().any(|p| p["quality"] == "sound_only" && p["videoSending"] == false);
        // The page's voice in long packets is asked for once the kiosk's own have lasted a few
        // seconds on the slow link (`rules::LONG_VOICE_AFTER`): the link recovers only after that.
        let long_voice = stats["remote_audio_frame_ms"] == u32::from(sc_call::adapt::AUDIO_LONG_FRAME_MS);
        // And the page sound only for 8 s: its estimate under the kiosk's cap is read over the last 3.
        let page_at = page.last().and_then(|p| p["at"].as_f64()).unwrap_or(0.0);
        let since = if page_sound_only { *page_sound_only_since.get_or_insert(page_at) } else { f64::MAX };
        if recovered.is_none()
            && stats["sound_only_by_link"] == true
            && page_sound_only
            && long_voice
            && page_at - since >= 8000.0
        {
            // Both sides are on sound only, the page's voice in long packets: the link recovers.
            link.set_rate(None);
            link.set_loss(0);
            recovered = Some(Instant::now());
            page_at_recovery = page.last().and_then(|p| p["at"].as_f64()).unwrap_or(f64::MAX);
            decoded_at_recovery = stats["frames_decoded"].as_u64().unwrap_or(0);
        }
        let back = recovered.is_some()
            && stats["sending"]["video"].is_object()
            && page.last().is_some_and(|p| {
                p["quality"] != "sound_only" && p["videoSending"] == true && p["voiceMaxBitrate"].is_null()
            })
            // And the page's voice back in 20 ms packets (asked for when the kiosk's own voice
            // goes back to them, with video).
            && stats["remote_audio_frame_ms"] == 20
            // And the consultant's picture decoded on the kiosk again (the page's camera back on
            // its sender).
            && stats["frames_decoded"].as_u64().is_some_and(|n| n > decoded_at_recovery.saturating_add(10));
        back
    })
    .await;
    let phases: Vec<&Value> = a.engine.iter().filter(|v| v["event"] == "phase").collect();
    assert!(a.connected_after_admission.is_some(), "the call connected: {phases:?}");
    let kiosk_sound_only = a.engine.iter().position(|v| v["sound_only_by_link"] == true);
    assert!(kiosk_sound_only.is_some(), "the kiosk went to sound only by itself: {:?}", trajectory(&a.engine));
    assert!(
        a.page.iter().any(|p| p["quality"] == "sound_only"
            && p["videoSending"] == false
            && p["callState"].as_str().is_some_and(|t| t.contains("sound only"))),
        "the consultant's page said sound only and stopped its video: {:?}",
        a.page.last()
    );
    // Its video's stream, not only its frames: with the track gone, what its pacer had queued
    // went on filling the link towards the kiosk for seconds. And on again once video is back.
    assert!(
        a.page.iter().any(|p| p["quality"] == "sound_only" && p["videoActive"] == false),
        "the page's video stream was off while sound only: {:?}",
        a.page.iter().map(|p| (&p["quality"], &p["videoActive"])).collect::<Vec<_>>()
    );
    assert!(
        a.page.last().is_some_and(|p| p["quality"] != "sound_only" && p["videoActive"] == true),
        "the page's video stream on again with video: {:?}",
        a.page.last()
    );
    // Both voices go lean on a link fit only for sound: the kiosk's in 60 ms packets, the page's
    // capped at 16 kbit/s (each at its default filled the 64 kbit/s link; the page's at 24 with
    // its feedback still held the link towards the kiosk at a 1.3 s queue).
    assert!(
        a.engine.iter().any(|v| v["sound_only_by_link"] == true
            && v["sending"]["audio_frame_ms"] == sc_call::adapt::AUDIO_LONG_FRAME_MS),
        "the kiosk's voice went to 60 ms packets: {:?}",
        trajectory(&a.engine)
    );
    assert!(
        a.page.iter().any(|p| p["quality"] == "sound_only" && p["voiceMaxBitrate"].as_u64() == Some(16_000)),
        "the page capped its voice while sound only: {:?}",
        a.page.iter().map(|p| (&p["quality"], &p["voiceMaxBitrate"])).collect::<Vec<_>>()
    );
    // And the kiosk caps what the page may send while sound only (a REMB): Chromium otherwise
    // kept estimating the way down and padded up to its estimate (113 kbit/s on this 64 kbit/s
    // link), no frames sent, and queued the link 1.2 s (`sc_call::peer_cap`).
    // Over the last 3 s before the link's recovery, the page sound only for 8 s by then (its
    // estimate came under the cap 1-4 s after it went sound only).
    let cap_kbps = (sc_call::peer_cap::SOUND_ONLY_CAP_BPS / 1000.0) as u64;
    let at = |p: &Value| p["at"].as_f64().unwrap_or(0.0);
    let sound_only: Vec<&Value> = a
        .page
        .iter()
        .filter(|p| p["quality"] == "sound_only" && p["videoSending"] == false && at(p) < page_at_recovery)
        .collect();
    let held: Vec<(f64, &Value)> = sound_only
        .iter()
        .filter(|p| at(p) >= sound_only.last().map_or(f64::MAX, |l| at(l) - 3000.0))
        .map(|p| (at(p), &p["sendAvailableKbps"]))
        .collect();
    assert!(
        held.len() >= 8 && held.iter().all(|(_, kbps)| kbps.as_u64().is_some_and(|kbps| kbps <= cap_kbps)),
        "the page's estimate held at the kiosk's cap ({cap_kbps} kbit/s) while sound only: {held:?}"
    );
    // And the page's voice comes in long packets too, asked for by a new offer (libwebrtc's 20 ms
    // packets, their overhead and its feedback filled the link towards the kiosk).
    assert!(
        a.engine.iter().any(|v| v["sound_only_by_link"] == true
            && v["remote_audio_frame_ms"] == u32::from(sc_call::adapt::AUDIO_LONG_FRAME_MS)),
        "the page's voice came in 60 ms packets while sound only: {:?}",
        a.engine.iter().filter(|v| v["event"] == "stats").map(|v| &v["remote_audio_frame_ms"]).collect::<Vec<_>>()
    );
    let recovered =
        recovered.expect("both sides reached sound only, the page's voice in long packets, and the link was restored");
    let last = a.engine.iter().rev().find(|v| v["event"] == "stats").expect("reports");
    assert!(
        last["sending"]["video"].is_object()
            && a.page.last().is_some_and(|p| p["videoSending"] == true
                && p["voiceMaxBitrate"].as_u64() == (p["quality"] == "weak").then_some(20_000)),
        "video came back on both sides within the call ({:?} after the link recovered): kiosk {:?}, page {:?}",
        recovered.elapsed(),
        trajectory(&a.engine),
        a.page.last()
    );
    assert_eq!(last["remote_audio_frame_ms"], 20, "the page's voice back in 20 ms packets");
    // RED's repeat would double the voice in 20 ms packets on a link fit only for sound: none came
    // so while sound only. In 60 ms packets, capped by the page to fit, it came (each lost packet
    // rebuilt whole; Chromium's in-band FEC alone came and went).
    let stats: Vec<&Value> = a.engine.iter().filter(|v| v["event"] == "stats").collect();
    let red_while_sound_only = |frame_ms: u32| -> Vec<f64> {
        stats
            .windows(2)
            .filter(|w| w[1]["sound_only_by_link"] == true && w[1]["remote_audio_frame_ms"] == frame_ms)
            .map(|w| w[1]["audio_red"].as_f64().unwrap_or(0.0) - w[0]["audio_red"].as_f64().unwrap_or(0.0))
            .collect()
    };
    // The second of the switch can hold both (CI of e7a7aa5: 5 RED packets in a second whose
    // last packet was still 20 ms; Chromium's RED and its new frame length need not start on the
    // same packet): a second with RED in short packets passes only as the switch, the next
    // second's voice in long packets. So does the switch back, the last second's voice in long
    // packets (CI of d890718: 4 RED packets in the second the page's voice went back to 20 ms,
    // its last ones in 60 ms packets before the link came back).
    let long = u32::from(sc_call::adapt::AUDIO_LONG_FRAME_MS);
    let short_red_not_at_a_switch: Vec<usize> = stats
        .windows(3)
        .enumerate()
        .filter(|(_, w)| {
            w[1]["sound_only_by_link"] == true
                && w[1]["remote_audio_frame_ms"] == 20
                && w[1]["audio_red"].as_f64().unwrap_or(0.0) > w[0]["audio_red"].as_f64().unwrap_or(0.0)
                && w[2]["remote_audio_frame_ms"] != long
                && w[0]["remote_audio_frame_ms"] != long
        })
        .map(|(i, _)| i + 1)
        .collect();
    assert!(
        short_red_not_at_a_switch.is_empty(),
        "no RED in short packets but at the switch to long ones (seconds {short_red_not_at_a_switch:?}): {:?}",
        trajectory(&a.engine)
    );
    assert!(
        red_while_sound_only(u32::from(sc_call::adapt::AUDIO_LONG_FRAME_MS)).iter().any(|red| *red > 0.0),
        "RED in long packets: {:?}",
        trajectory(&a.engine)
    );
    assert!(
        a.page.iter().any(|p| p["quality"] == "sound_only" && p["voiceMaxBitrate"].as_u64() == Some(16_000)),
        "the page capped its voice lower for RED's repeat: {:?}",
        a.page.iter().map(|p| (&p["quality"], &p["voiceMaxBitrate"])).collect::<Vec<_>>()
    );
    drop(h);
    drop(link);
}

/// Issue #12: a call after one on a link fit only for sound starts sound only, from the link's
/// limit the call before measured (`sc_call::link_memory`), rather than learning the link
/// again by filling it: each such call started video at 320x240, queued the link 1.3 s both ways
/// and concealed half the consultant's voice for seconds before going sound only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_call_after_one_on_a_sound_only_link_starts_sound_only() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::audio_only());
    let mut h = hospital(&link);
    let memory = tempfile::tempdir().expect("dir");
    let record = memory.path().join("link.json");
    h.link_memory = Some(record.clone());
    // The first call at this prison learns the link the hard way.
    let first = attempt(&link, &h, 0, 45).await;
    assert!(first.connected_after_admission.is_some(), "the first call connected");
    assert!(
        first.engine.iter().any(|v| v["sound_only_by_link"] == true),
        "the first call went sound only by itself: {:?}",
        trajectory(&first.engine)
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&record).expect("the link's record")).expect("json");
    let limit = kept["limit_bps"].as_f64().expect("limit_bps");
    assert!(limit < 100_000.0, "the record holds the link's limit, room for sound only: {kept}");
    // The next one starts under that limit: no video from the start, both sides told.
    let second = attempt(&link, &h, 1, 15).await;
    assert!(second.connected_after_admission.is_some(), "the second call connected");
    let stats: Vec<&Value> = second.engine.iter().filter(|v| v["event"] == "stats").collect();
    assert!(
        !stats.is_empty() && stats.iter().all(|v| v["sending"]["video"].is_null() && v["frames_sent"] == 0),
        "the second call sent no video: {:?}",
        trajectory(&second.engine)
    );
    assert!(
        second.page.iter().any(|p| p["quality"] == "sound_only" && p["videoSending"] == false),
        "the consultant's page was told sound only: {:?}",
        second.page.last()
    );
    drop(h);
    drop(link);
}

/// Issue #12: a call after one on a good link starts its picture at once. With nothing known of
/// a link the kiosk's video waits `estimate::DOWN_WATCH` after connecting, for the consultant's
/// start to show a link too slow for it; a good link never queues, so it kept no record and
/// every call's picture there started that late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_call_after_one_on_a_good_link_starts_its_picture_at_once() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::good());
    // A camera's picture: the test pattern's ~90 kbit/s would not show the link has room for
    // the rate a call starts at.
    let mut h = hospital_sending(&link, Content::Camera);
    let memory = tempfile::tempdir().expect("dir");
    let record = memory.path().join("link.json");
    h.link_memory = Some(record.clone());
    // Frames sent by each report within `within` of the call's start (reports' and phases'
    // `at_ms` share a clock); the watch's own start is the connection, a little before.
    let frames_within = |a: &Attempt, within: Duration| -> Vec<u64> {
        let at = |v: &Value| v["at_ms"].as_u64().unwrap_or(0);
        let in_call = a.engine.iter().find(|v| v["event"] == "phase" && v["phase"] == "in_call").map(at);
        let until = in_call.expect("in call").saturating_add(u64::try_from(within.as_millis()).unwrap_or(u64::MAX));
        a.engine
            .iter()
            .filter(|v| v["event"] == "stats" && at(v) <= until)
            .map(|v| v["frames_sent"].as_u64().unwrap_or(0))
            .collect()
    };
    let early = sc_call::estimate::DOWN_WATCH - Duration::from_millis(500);
    let first = attempt(&link, &h, 0, 20).await;
    assert!(first.connected_after_admission.is_some(), "the first call connected");
    // The page's quality indicator says the laptop's word once connected, whichever of the word
    // and the page's own connection came first (the README demo's consultant once read
    // "connected" for the whole call).
    let states: Vec<&str> = first.page.iter().filter_map(|p| p["callState"].as_str()).collect();
    let good = states.iter().position(|s| *s == "Connection: good");
    assert!(
        good.is_some_and(|i| !states[i..].contains(&"connected")),
        "the page's indicator once connected: {states:?}"
    );
    assert!(
        frames_within(&first, early).iter().all(|n| *n == 0),
        "a link nothing knows: the picture waits for the peer's start: {:?}",
        trajectory(&first.engine)
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&record).expect("the link's record")).expect("json");
    assert!(kept["limit_bps"].is_null(), "no queue, no limit: {kept}");
    let clear = kept["clear_bps"].as_f64().expect("clear_bps");
    assert!(clear >= sc_call::estimate::INITIAL_BPS, "the link kept as clear up to what it carried: {kept}");
    let second = attempt(&link, &h, 1, 10).await;
    assert!(second.connected_after_admission.is_some(), "the second call connected");
    assert!(
        frames_within(&second, early).iter().any(|n| *n > 0),
        "the second call's picture started at once: {:?}",
        frames_within(&second, early)
    );
    drop(h);
    drop(link);
}

/// Each second's estimate, loss and what was sent, for failure messages.
fn trajectory(engine: &[Value]) -> Vec<String> {
    let stats: Vec<&Value> = engine.iter().filter(|v| v["event"] == "stats").collect();
    stats
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let video = &v["sending"]["video"];
            // What the encoder actually produced over the last second, against its setting.
            let sent = i.checked_sub(1).map_or(0.0, |p| {
                (v["video_bytes_sent"].as_f64().unwrap_or(0.0) - stats[p]["video_bytes_sent"].as_f64().unwrap_or(0.0))
                    * 8.0
                    / 1000.0
            });
            // Of the voice packets that arrived in the last second, how many came as RED.
            let red = i.checked_sub(1).map_or(0.0, |p| {
                v["audio_red"].as_f64().unwrap_or(0.0) - stats[p]["audio_red"].as_f64().unwrap_or(0.0)
            });
            // Frames the encoder produced in the last second (it drops some when its buffer runs low).
            let frames = i.checked_sub(1).map_or(0.0, |p| {
                v["frames_sent"].as_f64().unwrap_or(0.0) - stats[p]["frames_sent"].as_f64().unwrap_or(0.0)
            });
            format!(
                "{:.0}k/{:.2} {}x{}@{}:{}k sent {sent:.0}k {frames:.0}f red {red:.0} in {}ms",
                v["target_kbps"].as_f64().unwrap_or(0.0),
                v["link_loss"].as_f64().unwrap_or(0.0),
                video["width"],
                video["height"],
                video["fps"],
                video["kbps"],
                v["remote_audio_frame_ms"]
            )
        })
        .collect()
}

/// The camera-like clip on both sides, as a camera would send. Before the priority pacer
/// (`sc_call::pacer`) Chromium decoded 1-14 fps of the kiosk in some runs (frames late behind
/// rtc's FIFO pacer); with it, 19.8-22.7 fps in 5 of 5 runs here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_on_the_prison_profile_a_minute_long_call_with_a_camera_clip_keeps_sound_both_ways_and_15_fps_each_side(
) {
    prison_call(Content::Camera).await;
}

async fn prison_call(content: Content) {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::prison());
    let h = hospital_sending(&link, content);
    let a = attempt(&link, &h, 0, 60).await;
    assert!(a.connected_after_admission.is_some(), "the call connected");
    let stats: Vec<&Value> = a.engine.iter().filter(|v| v["event"] == "stats").collect();
    // The last 30 s of the call (the first seconds are the controller finding the link).
    let (end, mid) = (stats[stats.len() - 1], stats[stats.len().saturating_sub(31)]);
    let secs = (end["at_ms"].as_f64().unwrap_or(0.0) - mid["at_ms"].as_f64().unwrap_or(0.0)) / 1000.0;
    let rate = |v: &Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let kiosk_fps = (rate(end, "frames_decoded") - rate(mid, "frames_decoded")) / secs;
    let kiosk_audio = (rate(end, "audio_received") - rate(mid, "audio_received")) / secs;
    assert!(kiosk_fps >= 15.0, "the kiosk decoded {kiosk_fps:.1} fps of the consultant; {:?}", trajectory(&a.engine));
    assert!(kiosk_audio >= 40.0, "the kiosk heard {kiosk_audio:.1} packets/s");
    // Once the link has carried video a while the kiosk asks for RED (a new offer listing it
    // first), so Chromium repeats each frame in the next packet and the kiosk rebuilds a lost one
    // whole. Over the last 30 s:
    let delta = |key: &str| rate(end, key) - rate(mid, key);
    let (red, lost, recovered) = (delta("audio_red"), delta("audio_lost"), delta("audio_recovered"));
    assert!(red > 0.0, "Chromium sent no RED: {end}");
    assert!(recovered * 2.0 >= lost, "the kiosk rebuilt {recovered} of {lost} lost voice packets");
    // The voice plays from its jitter buffer without a break (samples for every slot, as
    // Chromium counts them), and what was concealed (late, lost and not rebuilt) is a few per cent
    // at most. Played as they came, late packets were gaps of silence nobody counted.
    let (played, concealed) = (delta("audio_samples") / 48_000.0, delta("audio_concealed_samples") / 48_000.0);
    assert!((played - secs).abs() <= secs * 0.1, "the kiosk played {played:.1} s of voice in {secs:.1} s");
    assert!(concealed <= played * 0.05, "the kiosk concealed {concealed:.2} s of {played:.1} s of voice");
    // The page's last 30 s in the call, by its own clock (it reports four times a second; a
    // report after the kiosk hung up has its counters reset).
    let pend = a.page.iter().rev().find(|p| rate(p, "samples") > 0.0).expect("the page reported");
    let pmid = a.page.iter().find(|p| rate(p, "at") >= rate(pend, "at") - 30_000.0).expect("a report");
    let psecs = (rate(pend, "at") - rate(pmid, "at")) / 1000.0;
    assert!(psecs >= 29.0, "the page reported through the call: {psecs:.1} s");
    let page_fps = (rate(pend, "framesDecoded") - rate(pmid, "framesDecoded")) / psecs;
    let page_audio = (rate(pend, "audioPackets") - rate(pmid, "audioPackets")) / psecs;
    assert!(
        page_fps >= 15.0,
        "Chromium decoded {page_fps:.1} fps of the kiosk (it asked for {} keyframes; its last report {}); {:?}",
        end["keyframe_requests"],
        pend,
        trajectory(&a.engine)
    );
    assert!(page_audio >= 40.0, "Chromium heard {page_audio:.1} packets/s");
    // The link loses 3 % and has room: the kiosk's own voice goes as RED, each packet repeating
    // the last one's frame, so Chromium rebuilds a single lost packet whole (not while the
    // estimate rests under `adapt::RED_UNDER_KBPS`, as it does in some calls here: one sent 153
    // of its last 30 s's packets as RED), and its concealment of the kiosk's voice is within the
    // issue's goal for this link (1.5 %).
    let red_sent = delta("audio_red_sent");
    assert!(rate(end, "audio_red_sent") > 0.0, "the kiosk sent none of its voice as RED: {end}");
    let page_concealed =
        (rate(pend, "concealed") - rate(pmid, "concealed")) / (rate(pend, "samples") - rate(pmid, "samples")).max(1.0);
    assert!(page_concealed <= 0.015, "Chromium concealed {:.2} % of the kiosk's voice", page_concealed * 100.0);
    // The kiosk caps what the page may send it under what a queue on the way down measured
    // (`sc_call::peer_cap`): Chromium's estimate went past this link every ~15 s and queued it
    // 100-200 ms. The cap is set once a queue has measured the link: Chromium's start-up probe
    // (3 Mbit/s and more into the 512 kbit/s link) queues it seconds in in most calls (5 of 6 in
    // one bench run: 5-6 s in), its first overshoot in the others (12 s in; once, in CI, ~30 s
    // in). So the cap holds over the last 20 s, and the page's estimate stays under the most the
    // kiosk told it there.
    let caps: Vec<f64> =
        stats[stats.len().saturating_sub(21)..].iter().filter_map(|v| v["peer_cap_kbps"].as_f64()).collect();
    let cap = caps.iter().copied().fold(f64::NAN, f64::max);
    assert!(caps.len() >= 20, "the kiosk capped the page's way down through the last 20 s: {caps:?}");
    let estimates: Vec<f64> = a
        .page
        .iter()
        .filter(|p| (rate(pend, "at") - 20_000.0..=rate(pend, "at")).contains(&rate(p, "at")))
        .filter_map(|p| p["sendAvailableKbps"].as_f64())
        .collect();
    assert!(
        estimates.len() >= 40 && estimates.iter().all(|k| *k <= cap + 1.0),
        "the page's estimate held under the kiosk's cap ({cap:.0} kbit/s): {estimates:?}"
    );
    println!(
        "prison profile, last 30 s: kiosk {kiosk_fps:.1} fps, Chromium {page_fps:.1} fps, Chromium's audio concealment {:.2} % \
         ({red_sent} of the kiosk's voice packets sent as RED); \
         the kiosk lost {lost} voice packets and rebuilt {recovered} ({red} came as RED); \
         keyframes the kiosk asked for {}, was asked for {}, frames sent {}; Chromium's last report {}",
        page_concealed * 100.0,
        end["keyframes_asked"],
        end["keyframe_requests"],
        end["frames_sent"],
        pend
    );
    drop(h);
    drop(link);
}

/// What an outage did to a call.
struct Outage {
    attempt: Attempt,
    /// How long after the link returned the kiosk decoded the consultant's video again.
    kiosk_resumed: Option<Duration>,
    /// How long after the link returned the page had the kiosk's picture and sound again.
    page_resumed: Option<Duration>,
    /// Whether each screen said "Reconnecting..." while the link was down.
    kiosk_said_reconnecting: bool,
    page_said_reconnecting: bool,
    /// Everything, for a failure's message.
    figures: String,
}

/// A good link cut for `outage` once the call is three seconds in (60 frames), then back; with
/// `udp_only` only UDP is cut (the media path fails while the signalling still works).
async fn outage_call(outage: Duration, udp_only: bool) -> Outage {
    let link = Link::new(Profile::good());
    let h = hospital(&link);
    // (cut at, back at, kiosk frames when back, resumed at), in the engine's milliseconds.
    let (mut cut, mut back, mut resumed): (Option<f64>, Option<(f64, f64)>, Option<f64>) = (None, None, None);
    // The page's side: (wall ms, frames, audio packets) when the link came back, and when both moved on.
    let mut page_back: Option<(f64, f64, f64)> = None;
    let mut page_resumed: Option<Duration> = None;
    let wall_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64);
    let page_counts = |p: Option<&Value>| {
        p.map_or((0.0, 0.0), |p| {
            (p["framesDecoded"].as_f64().unwrap_or(0.0), p["audioPackets"].as_f64().unwrap_or(0.0))
        })
    };
    let outage_ms = outage.as_millis() as f64;
    let a = attempt_watching(&link, &h, 0, 90 + outage.as_secs(), |stats, page| {
        let at = stats["at_ms"].as_f64().unwrap_or(0.0);
        let frames = stats["frames_decoded"].as_f64().unwrap_or(0.0);
        match (cut, back) {
            (None, _) if frames >= 60.0 => {
                if udp_only {
                    link.udp_outage(true);
                } else {
                    link.outage(true);
                }
                cut = Some(at);
            }
            (Some(c), None) if at >= c + outage_ms => {
                link.outage(false);
                link.udp_outage(false);
                back = Some((at, frames));
                let (f, n) = page_counts(page.last());
                page_back = Some((wall_ms(), f, n));
            }
            (Some(_), Some((b, f))) if resumed.is_none() && frames > f + 5.0 => resumed = Some(at - b),
            _ => {}
        }
        if let (Some((when, f, n)), None) = (page_back, page_resumed) {
            // The first report (by the page's clock) five frames and half a second of sound past
            // what the page had when the link returned.
            let moved = page.iter().find(|p| {
                let (f2, n2) = page_counts(Some(p));
                p["at"].as_f64().unwrap_or(0.0) >= when && f2 > f + 5.0 && n2 > n + 25.0
            });
            page_resumed =
                moved.map(|p| Duration::from_millis((p["at"].as_f64().unwrap_or(0.0) - when).max(0.0) as u64));
        }
        // Done once both sides have pictures again, or long after the link came back.
        back.is_some_and(|(b, _)| (resumed.is_some() && page_resumed.is_some()) || at > b + 30_000.0)
    })
    .await;
    let (cut_ms, back_ms) = (cut.unwrap_or(f64::MAX), back.map_or(f64::MAX, |(b, _)| b));
    let kiosk_said_reconnecting = a.engine.iter().any(|v| {
        let at = v["at_ms"].as_f64().unwrap_or(0.0);
        v["event"] == "phase"
            && at > cut_ms
            && at <= back_ms + 500.0
            && v["detail"].as_str().is_some_and(|d| d.contains("reconnecting: true") && d.contains("Reconnecting..."))
    });
    let page_said_reconnecting = page_back.is_some_and(|(when, _, _)| {
        a.page.iter().any(|p| p["at"].as_f64().unwrap_or(0.0) < when && p["callState"] == "Reconnecting...")
    });
    let frames: Vec<String> = a
        .engine
        .iter()
        .filter(|v| v["event"] == "stats")
        .map(|v| format!("{}:{}/{}", v["at_ms"], v["frames_decoded"], v["audio_received"]))
        .collect();
    let page_frames: Vec<String> = a
        .page
        .iter()
        .step_by(4)
        .map(|p| format!("{}/{}/{}", p["framesDecoded"], p["audioPackets"], p["callState"]))
        .collect();
    let phases: Vec<String> = a
        .engine
        .iter()
        .filter(|v| v["event"] == "phase")
        .map(|v| format!("{}:{}", v["at_ms"], v["detail"].as_str().unwrap_or("").chars().take(160).collect::<String>()))
        .collect();
    let figures = format!(
        "cut {cut:?}, back {back:?}; kiosk at_ms:frames/audio {frames:?}; sending {:?}; page frames/audio/state (each \
         second) {page_frames:?}; kiosk phases {phases:?}",
        trajectory(&a.engine)
    );
    assert!(back.is_some(), "the outage ran: {figures}");
    drop(h);
    drop(link);
    Outage {
        attempt: a,
        kiosk_resumed: resumed.map(|ms| Duration::from_millis(ms.max(0.0) as u64)),
        page_resumed,
        kiosk_said_reconnecting,
        page_said_reconnecting,
        figures,
    }
}

impl Outage {
    fn assert_resumed_within(&self, limit: Duration) {
        let phases: Vec<&str> =
            self.attempt.engine.iter().filter(|v| v["event"] == "phase").filter_map(|v| v["phase"].as_str()).collect();
        let figures = &self.figures;
        assert!(!phases.contains(&"ended"), "the call did not end: {figures}");
        assert_eq!(phases.iter().filter(|p| **p == "connecting").count(), 1, "no re-admission: {figures}");
        assert!(
            self.kiosk_resumed.is_some_and(|d| d <= limit),
            "the kiosk's video resumed {:?} after the link returned; {figures}",
            self.kiosk_resumed
        );
        assert!(
            self.page_resumed.is_some_and(|d| d <= limit),
            "the consultant's picture and sound resumed {:?} after the link returned; {figures}",
            self.page_resumed
        );
        assert!(self.kiosk_said_reconnecting, "the kiosk said \"Reconnecting...\" while the link was down; {figures}");
        assert!(self.page_said_reconnecting, "the page said \"Reconnecting...\" while the link was down; {figures}");
    }

    fn ice_restarts(&self) -> u64 {
        self.attempt.engine.iter().filter_map(|v| v["ice_restarts"].as_u64()).max().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_after_a_10_s_outage_the_call_resumes_by_itself_within_3_s_without_readmission() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let o = outage_call(sc_e2e::link::OUTAGE, false).await;
    println!(
        "outage 10 s: the kiosk's video resumed {:?} after the link returned, the consultant's picture and sound {:?} \
         after (seen once a second and four times a second); ICE restarts {}",
        o.kiosk_resumed,
        o.page_resumed,
        o.ice_restarts()
    );
    o.assert_resumed_within(Duration::from_secs(3));
    // What the voice heard was held, read through the outage: between packets it was read as a
    // delay growing a second a second (9.5 s at the outage's end, the bench's mean 892 ms).
    let most_held = o
        .attempt
        .engine
        .iter()
        .filter(|v| v["event"] == "stats")
        .filter_map(|v| v["audio_delay_ms"].as_f64())
        .fold(0.0, f64::max);
    assert!(most_held < 1000.0, "the kiosk's voice was held at most {most_held} ms by its reports");
}

/// The media path fails while the care server still answers (UDP cut, TCP not): past
/// [`RESTART_AFTER`] the kiosk restarts ICE, and the call comes back without re-admission through
/// the restart's new candidates on the same relay once UDP passes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_media_path_down_past_the_restart_point_comes_back_through_an_ice_restart() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    // ICE calls the link disconnected ~5 s in; the restart is due RESTART_AFTER later.
    let outage = RESTART_AFTER + Duration::from_secs(9);
    let o = outage_call(outage, true).await;
    println!(
        "outage {outage:?}: ICE restarts {}, the kiosk's video resumed {:?} after the link returned, the consultant's \
         {:?}",
        o.ice_restarts(),
        o.kiosk_resumed,
        o.page_resumed
    );
    assert!(o.ice_restarts() >= 1, "the kiosk restarted ICE; {}", o.figures);
    o.assert_resumed_within(Duration::from_secs(10));
}

/// Issue #12 (kiosk receive freezes): rtc took an SRTP packet only within 64 packets of the newest,
/// so on a long round trip a retransmission came back "a replay", was dropped before the NACK
/// generator saw it, and was asked for again each 100 ms until the frame was given up and a
/// keyframe asked for. Here: a fast link with a 400 ms round trip and 2 % loss toward the kiosk,
/// the consultant sending the camera clip (well over 64 packets a round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_retransmissions_a_long_round_trip_late_repair_the_kiosk_s_video() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let far = Profile {
        name: "far",
        rate_kbit: Some(10_000),
        delay_ms: 200,
        jitter_ms: 0,
        loss_up_pct: 0,
        loss_down_pct: 2,
        schedule: Vec::new(),
    };
    let link = Link::new(far);
    let h = hospital_sending(&link, Content::Camera);
    let a = attempt(&link, &h, 0, 25).await;
    assert!(a.connected_after_admission.is_some(), "the call connected");
    let stats: Vec<&Value> = a.engine.iter().filter(|v| v["event"] == "stats").collect();
    let (end, mid) = (stats[stats.len() - 1], stats[stats.len().saturating_sub(16)]);
    let count = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
    let frames = count(end, "frames_decoded") - count(mid, "frames_decoded");
    let asked = count(end, "keyframes_asked") - count(mid, "keyframes_asked");
    let freezes = count(end, "freezes") - count(mid, "freezes");
    let page = a.page.last().cloned().unwrap_or_default();
    // The page's reports four times a second, from 5 s into the call to its end: what it sent, and
    // what the laptop's receiver reports say stayed lost.
    let sent: Vec<&Value> = a.page.iter().filter(|v| v["sentVideoPackets"].as_u64().unwrap_or(0) > 0).collect();
    let (pend, pmid) = (sent[sent.len() - 1], sent[20.min(sent.len() - 1)]);
    let sent_packets = count(pend, "sentVideoPackets") - count(pmid, "sentVideoPackets");
    let still_lost = count(pend, "kioskVideoLost").saturating_sub(count(pmid, "kioskVideoLost"));
    let resent = count(pend, "retransmittedSent") - count(pmid, "retransmittedSent");
    println!(
        "far link, last 15 s: kiosk decoded {frames} frames, asked {asked} keyframes, {freezes} freezes; from 5 s in: page sent {sent_packets} video packets, resent {resent}, the kiosk reports {still_lost} lost; page {page}"
    );
    // Two signals of repair, each noisy alone. What the laptop's receiver reports still count lost
    // once retransmissions had their chance (2 % dropped on the way): with late retransmissions
    // refused as replays (the 64-packet SRTP window) 2.2 % of what the page sent over the last
    // 15 s (118 of 5,448), and 20 keyframe requests; from 5 s in 1.75 % and 20; repaired, 0.7 to 1.3 % from 5 s in (22 of
    // 3,005, 43 of 4,474, 97 of 7,307) and 2 to 5 requests (17 once beside the other shaped tests,
    // where unrepaired gave 19). Undoing the repair moves both past their bounds; load alone has
    // moved only one at a time.
    let lost_pct = 100.0 * still_lost as f64 / sent_packets.max(1) as f64;
    assert!(
        lost_pct <= 1.5 || asked <= 15,
        "unrepaired: {lost_pct:.2} % of the page's video stayed lost at the kiosk ({still_lost} of {sent_packets}; {resent} resent) and it asked for {asked} keyframes in 15 s ({frames} frames, {freezes} freezes)"
    );
    assert!(frames >= 15 * 20, "the kiosk decoded {frames} frames in 15 s");
    drop(h);
    drop(link);
}
