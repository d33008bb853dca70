//! Lip sync: how much later the consultant's voice must be played to be in step with their
//! picture. Each stream's RTP timestamps are put on the sender's wall clock by its RTCP sender
//! reports; the picture's delay from capture to screen is set beside the voice's from capture to
//! speaker, and the voice's extra delay follows the difference, a step a second, as libwebrtc's
//! stream synchronization does. The picture is held up to 800 ms for its repairs
//! (`crate::playout`) and the voice was played as it came: the prisoner saw the consultant's lips
//! half a second after hearing the words (issue #12). Only the voice is delayed (the picture is the
//! later of the two on every link measured), and only so far: the jitter buffer takes it up to
//! 300 ms of voice delay in all (`crate::voice_playout`), past which the conversation's delay
//! costs more than the lips. Pure: reports and the times frames are shown and packets played in,
//! the voice's extra delay out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the extra delay is recomputed.
const UPDATE: Duration = Duration::from_secs(1);
/// The most the extra delay moves in one update (libwebrtc moves 80 ms; the voice's buffer only
/// follows it in pauses anyway).
const MAX_STEP_MS: f64 = 100.0;
/// Differences under this are left alone: under what anyone notices (ITU-R BT.1359 puts the
/// threshold of detection at 45 ms of sound ahead of the picture).
const DEAD_BAND_MS: f64 = 20.0;
/// Sender reports kept, by SSRC: a peer cannot grow the table.
const MAX_CLOCKS: usize = 8;
/// How long a sender report stays good: the sender's clocks drift, and an old report maps badly.
const REPORT_LIFE: Duration = Duration::from_secs(30);

/// One sender report: the sender's wall clock (ms on the NTP timescale) at an RTP timestamp.
#[derive(Debug, Clone, Copy)]
struct Report {
    ntp_ms: f64,
    rtp: u32,
    at: Instant,
}

impl Report {
    /// When a timestamp of this stream was captured, ms on the sender's clock.
    fn capture_ms(&self, ts: u32, per_ms: f64) -> f64 {
        self.ntp_ms + f64::from(ts.wrapping_sub(self.rtp) as i32) / per_ms
    }
}

/// The voice's extra delay for lip sync.
#[derive(Debug)]
pub struct LipSync {
    reports: HashMap<u32, Report>,
    /// This update's frames shown: their delay from capture, ms (on the two clocks' difference).
    video: Vec<f64>,
    /// This update's packets played: their delay from capture less what the jitter buffer held
    /// them past its own need, ms.
    voice: Vec<f64>,
    /// The same packets' whole delay from capture, as heard, ms.
    heard: Vec<f64>,
    epoch: Instant,
    extra_ms: f64,
    updated: Option<Instant>,
    /// The picture's delay less the voice's as heard at the last update, ms.
    skew: Option<f64>,
}

impl LipSync {
    /// No reports yet; `epoch` is any instant at or before the first event.
    pub fn new(epoch: Instant) -> Self {
        LipSync {
            reports: HashMap::new(),
            video: Vec::new(),
            voice: Vec::new(),
            heard: Vec::new(),
            epoch,
            extra_ms: 0.0,
            updated: None,
            skew: None,
        }
    }

    /// A sender report arrived at `now` for `ssrc`: its NTP time (32.32 fixed point) at `rtp`.
    pub fn sender_report(&mut self, now: Instant, ssrc: u32, ntp: u64, rtp: u32) {
        if !self.reports.contains_key(&ssrc) && self.reports.len() >= MAX_CLOCKS {
            // The oldest report goes: a sender that changed its streams.
            let oldest = self.reports.iter().min_by_key(|(_, r)| r.at).map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.reports.remove(&s);
            }
        }
        let ntp_ms = (ntp >> 32) as f64 * 1000.0 + (ntp & 0xffff_ffff) as f64 * 1000.0 / 4_294_967_296.0;
        self.reports.insert(ssrc, Report { ntp_ms, rtp, at: now });
    }

    /// A video frame of `ssrc` with timestamp `ts` (90 kHz) was shown at `now`.
    pub fn video_shown(&mut self, now: Instant, ssrc: u32, ts: u32) {
        if let Some(d) = self.delay(now, ssrc, ts, 90.0) {
            self.video.push(d);
        }
    }

    /// A voice packet of `ssrc` with timestamp `ts` (48 kHz) starts at the speaker at `at`; the
    /// jitter buffer holds it `over` past its own need (the extra delay asked, and what it has not
    /// yet taken up or cut), which is left out so the step is not counted twice.
    pub fn voice_played(&mut self, at: Instant, ssrc: u32, ts: u32, over: Duration) {
        if let Some(d) = self.delay(at, ssrc, ts, 48.0) {
            self.voice.push(d - over.as_secs_f64() * 1000.0);
            self.heard.push(d);
        }
    }

    /// The voice's extra delay now; recomputed once an [`UPDATE`] from what was shown and played
    /// since. With no picture (sound only, the camera off) it falls back to none.
    pub fn extra(&mut self, now: Instant) -> Duration {
        let due = self.updated.is_none_or(|u| now.saturating_duration_since(u) >= UPDATE);
        if due {
            self.updated = Some(now);
            let video = median(&mut self.video);
            if let (Some(v), Some(h)) = (video, median(&mut self.heard)) {
                self.skew = Some(v - h);
            }
            let desired = match (video, median(&mut self.voice)) {
                (Some(v), Some(a)) => Some(v - a),
                // No picture: nothing to be in step with.
                (None, _) => Some(0.0),
                // Voice not played (or no report for it): leave it.
                (Some(_), None) => None,
            };
            if let Some(desired) = desired {
                let desired = desired.clamp(0.0, crate::voice_playout::MAX_SYNC.as_secs_f64() * 1000.0);
                let step = desired - self.extra_ms;
                if step.abs() > DEAD_BAND_MS {
                    self.extra_ms += step.clamp(-MAX_STEP_MS, MAX_STEP_MS);
                }
            }
            self.video.clear();
            self.voice.clear();
            self.heard.clear();
        }
        Duration::from_secs_f64(self.extra_ms.max(0.0) / 1000.0)
    }

    /// How far the picture was behind the voice at the last update, ms (negative: ahead); `None`
    /// before both have been seen with their reports.
    pub fn skew_ms(&self) -> Option<f64> {
        self.skew
    }

    /// A stream's delay from capture to `now`, ms, on the receiver's clock less the sender's
    /// (the same for both streams, so their difference is the skew).
    fn delay(&self, now: Instant, ssrc: u32, ts: u32, per_ms: f64) -> Option<f64> {
        let r = self.reports.get(&ssrc).filter(|r| now.saturating_duration_since(r.at) <= REPORT_LIFE)?;
        let local = now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0;
        Some(local - r.capture_ms(ts, per_ms))
    }
}

/// The median of `v` (sorted in place), `None` for none.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: u32 = 0x1111;
    const VOICE: u32 = 0x2222;

    /// The NTP time (32.32) of `ms` after an arbitrary sender epoch.
    fn ntp(ms: f64) -> u64 {
        let secs = 3_900_000_000.0 + ms / 1000.0;
        (secs * 4_294_967_296.0) as u64
    }

    /// Runs `secs` of a call where the sender captures both streams on one clock (video at 30 fps
    /// from timestamp 5,000, voice 20 ms packets from 7,000,000, reports every second), the
    /// picture is shown `video_ms` after capture and the voice reaches the speaker `voice_ms` after
    /// capture plus the extra delay asked (taken up at once). Returns the extra each second.
    fn run(secs: u32, video_ms: f64, voice_ms: f64, with_video: impl Fn(f64) -> bool) -> Vec<Duration> {
        let t0 = Instant::now();
        let at = |ms: f64| t0 + Duration::from_secs_f64(ms / 1000.0);
        let mut sync = LipSync::new(t0);
        let mut extras = Vec::new();
        let mut extra = Duration::ZERO;
        for ms in (0..secs * 1000).step_by(10) {
            let ms = f64::from(ms);
            // The sender's clock runs 12 s ahead of the receiver's: it cancels out.
            let sender = ms + 12_000.0;
            if ms % 1000.0 == 0.0 {
                sync.sender_report(at(ms), VIDEO, ntp(sender), 5_000u32.wrapping_add((sender * 90.0) as u32));
                sync.sender_report(at(ms), VOICE, ntp(sender), 7_000_000u32.wrapping_add((sender * 48.0) as u32));
            }
            // What was captured `video_ms` ago is shown now; `voice_ms` and the extra ago, heard.
            if with_video(ms) && ms % 30.0 == 0.0 {
                let captured = sender - video_ms;
                sync.video_shown(at(ms), VIDEO, 5_000u32.wrapping_add((captured * 90.0) as u32));
            }
            if ms % 20.0 == 0.0 {
                let captured = sender - voice_ms - extra.as_secs_f64() * 1000.0;
                sync.voice_played(at(ms), VOICE, 7_000_000u32.wrapping_add((captured * 48.0) as u32), extra);
            }
            let now = sync.extra(at(ms));
            if now != extra {
                extras.push(now);
            }
            extra = now;
        }
        extras
    }

    #[test]
    fn issue_12_the_voice_waits_for_a_picture_held_for_its_repairs() {
        // The picture 560 ms after capture, the voice 120 ms: the voice is held 440 ms more,
        // reached in steps of at most 100 ms a second.
        let extras = run(10, 560.0, 120.0, |_| true);
        let last = *extras.last().expect("the extra moved");
        assert!((last.as_millis() as i64 - 440).abs() <= DEAD_BAND_MS as i64, "{extras:?}");
        assert!(extras.windows(2).all(|w| w[1].abs_diff(w[0]) <= Duration::from_millis(100)), "{extras:?}");
        assert!(extras.len() >= 4, "in steps: {extras:?}");
    }

    #[test]
    fn a_picture_ahead_of_the_voice_delays_nothing_and_a_lost_picture_undoes_the_delay() {
        assert!(run(5, 100.0, 150.0, |_| true).is_empty(), "the voice is never hurried past its own buffer");
        // Video for 6 s (the voice held 300 ms more), then sound only: back to none.
        let extras = run(12, 420.0, 120.0, |ms| ms < 6_000.0);
        assert!(extras.iter().any(|e| *e >= Duration::from_millis(280)), "{extras:?}");
        assert_eq!(extras.last(), Some(&Duration::ZERO), "{extras:?}");
    }

    #[test]
    fn without_sender_reports_nothing_moves_and_the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut sync = LipSync::new(t0);
        for i in 0..1000u32 {
            sync.video_shown(t0, 1, i);
            sync.voice_played(t0, 2, i, Duration::ZERO);
        }
        assert_eq!(sync.extra(t0 + Duration::from_secs(2)), Duration::ZERO);
        for ssrc in 0..100 {
            sync.sender_report(t0, ssrc, u64::MAX, u32::MAX);
        }
        assert!(sync.reports.len() <= MAX_CLOCKS);
    }
}
