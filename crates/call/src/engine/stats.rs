//! The call's counters: what was sent and received, the link as the controller sees it, and
//! freezes in the remote video, read as one [`CallStats`] snapshot.

use super::Shared;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters, for tests, the page and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// VP8 frames handed to the track.
    pub frames_sent: u64,
    /// Of those, keyframes.
    pub keyframes_sent: u64,
    /// PLI/FIR received from the browser.
    pub keyframe_requests: u64,
    /// Remote frames decoded.
    pub frames_decoded: u64,
    /// Size of the last decoded remote frame.
    pub remote_width: u32,
    /// Size of the last decoded remote frame.
    pub remote_height: u32,
    /// Opus packets sent.
    pub audio_sent: u64,
    /// Of those, sent as RED (repeating the frame before).
    pub audio_red_sent: u64,
    /// Opus packets decoded.
    pub audio_received: u64,
    /// Remote audio packets lost (concealed or recovered).
    pub audio_lost: u64,
    /// Of those, rebuilt from the next packet's repeat of it (RED) or its in-band FEC (not
    /// concealed).
    pub audio_recovered: u64,
    /// Remote audio packets that came as RED (each carrying the previous frame again).
    pub audio_red: u64,
    /// Remote voice played since its first packet, samples per channel at 48 kHz, concealment
    /// included (Chromium's `totalSamplesReceived`).
    pub audio_samples: u64,
    /// Of those, concealed: a packet not there in its turn, one lost and not rebuilt, the
    /// stream gone (Chromium's `concealedSamples`).
    pub audio_concealed_samples: u64,
    /// Samples added in pauses to raise the voice's delay (Chromium's
    /// `insertedSamplesForDeceleration`).
    pub audio_inserted_samples: u64,
    /// Samples dropped to lower it (`removedSamplesForAcceleration`).
    pub audio_removed_samples: u64,
    /// How long the last remote voice packet played was held, past its fastest arrival
    /// (`crate::voice_playout`; Chromium's audio `jitterBufferDelay`, which counts only samples
    /// that came, not those concealed).
    pub audio_delay: Duration,
    /// Of that, the extra taken to keep the voice in step with the picture (`crate::lipsync`,
    /// within the voice's bound).
    pub audio_sync: Duration,
    /// How far the picture was behind the voice at the last lip-sync update, ms (`None` before
    /// both streams' sender reports).
    pub av_skew_ms: Option<f64>,
    /// Speech in the last remote audio packet, ms (20 from Chromium by default; 0 before any).
    pub remote_audio_frame_ms: u32,
    /// Mean energy of the last second of remote audio (fraction of full scale squared).
    pub audio_energy: f64,
    /// The loudest remote packet so far (same unit).
    pub audio_peak_energy: f64,
    /// When the first remote frame was decoded, relative to the call's start.
    pub first_remote_frame: Option<Duration>,
    /// The congestion controller's estimate of the link, kbit/s.
    pub target_kbps: f64,
    /// The loss the controller measured (0..1).
    pub link_loss: f64,
    /// The standing queue on the path the estimate last saw, ms.
    pub queue_ms: f64,
    /// The link's limit a standing queue measured in this call, kbit/s (`None` before one stood).
    pub limit_kbps: Option<f64>,
    /// The cap the kiosk last told the peer for the way down (`crate::peer_cap`), kbit/s (`None`:
    /// no cap on the peer's video).
    pub peer_cap_kbps: Option<f64>,
    /// The loss over the estimate's window of the last seconds (0..1).
    pub window_loss: f64,
    /// Video packets resent on the peer's behalf: its transport feedback reported them missing
    /// and no NACK of its named them.
    pub repairs_unasked: u64,
    /// Resends of the kiosk's video dropped as too old to help (`crate::pacer::REPAIR_MAX_AGE`).
    pub repairs_too_old: u64,
    /// The round trip the transport feedback shows, queues included (`None` before feedback).
    pub round_trip: Option<Duration>,
    /// What the kiosk sends now: the video rung and its bitrate (`None`: sound only, or not yet
    /// decided), and Opus's bitrate.
    pub sending: Option<crate::adapt::Settings>,
    /// The link is too poor for video: the kiosk sends sound only.
    pub sound_only_by_link: bool,
    /// ICE restarts begun (after the link stayed down).
    pub ice_restarts: u64,
    /// Freezes in the remote video: a gap between frames shown longer than three mean frame
    /// intervals and 150 ms past the mean, and under 5 s (the W3C `freezeCount` rule, as
    /// Chromium counts).
    pub freezes: u64,
    /// Pauses in the remote video: 5 s or more between frames shown (the W3C `pauseCount`).
    pub pauses: u64,
    /// How long the remote video is held before it is shown, past its fastest arrival
    /// (`crate::playout`; Chromium's `jitterBufferDelay` is the same idea).
    pub playout_delay: Duration,
    /// Keyframes asked of the peer (PLI), after loss the retransmissions did not repair.
    pub keyframes_asked: u64,
    /// VP8 payload bytes handed to the track (before RTP, SRTP and TURN).
    pub video_bytes_sent: u64,
    /// Frames due at the rung's rate that the encoder was not given: the sending queue was full.
    pub frames_skipped_busy: u64,
    /// Frames the encoder was given and dropped to keep to its bitrate (libvpx's frame dropper).
    pub frames_dropped_by_encoder: u64,
    /// ULPFEC packets received with the remote video (`crate::ulpfec`).
    pub video_fec: u64,
    /// Remote video packets rebuilt from them.
    pub video_fec_rebuilt: u64,
    /// Rebuilt packets a resend of the same packet contradicted (0 unless the FEC is misread).
    pub video_fec_contradicted: u64,
    /// ULPFEC packets sent with the kiosk's own video (`crate::fec_send`).
    pub video_fec_sent: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) frames_sent: AtomicU64,
    pub(super) keyframes_sent: AtomicU64,
    pub(super) keyframe_requests: AtomicU64,
    pub(super) frames_decoded: AtomicU64,
    pub(super) remote_size: AtomicU64,
    pub(super) audio_sent: AtomicU64,
    pub(super) audio_red_sent: AtomicU64,
    pub(super) audio_received: AtomicU64,
    pub(super) audio_lost: AtomicU64,
    pub(super) audio_recovered: AtomicU64,
    pub(super) audio_red: AtomicU64,
    pub(super) audio_samples: AtomicU64,
    pub(super) audio_concealed_samples: AtomicU64,
    pub(super) audio_inserted_samples: AtomicU64,
    pub(super) audio_removed_samples: AtomicU64,
    pub(super) audio_delay_us: AtomicU64,
    pub(super) audio_sync_us: AtomicU64,
    pub(super) remote_audio_frame_ms: AtomicU32,
    pub(super) audio_energy_bits: AtomicU64,
    pub(super) audio_peak_bits: AtomicU64,
    pub(super) first_frame_micros: AtomicU64,
    pub(super) ice_restarts: AtomicU64,
    pub(super) freezes: AtomicU64,
    pub(super) pauses: AtomicU64,
    pub(super) playout_delay_us: AtomicU64,
    pub(super) keyframes_asked: AtomicU64,
    /// The cap on the peer's way down last told it, bits per second as f64 bits (0: none).
    pub(super) peer_cap_bps: AtomicU64,
    pub(super) video_bytes_sent: AtomicU64,
    pub(super) frames_skipped_busy: AtomicU64,
    pub(super) frames_dropped_by_encoder: AtomicU64,
    pub(super) video_fec: AtomicU64,
    pub(super) video_fec_rebuilt: AtomicU64,
    pub(super) video_fec_contradicted: AtomicU64,
}

/// A gap between shown frames this long or longer is a pause, not a freeze (the W3C
/// `pauseCount`: a link down, the peer's video off for sound only).
pub(super) const PAUSE: Duration = Duration::from_secs(5);

/// What the gap before a shown frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gap {
    /// Within the picture's rhythm.
    Smooth,
    /// A freeze (`freezeCount`).
    Freeze,
    /// A pause (`pauseCount`): [`PAUSE`] or more.
    Pause,
}

/// Counts freezes and pauses as the W3C statistics define them and libwebrtc counts them
/// (`VideoQualityObserver`), so the kiosk's figures stand beside Chromium's: a freeze is a gap
/// between rendered frames of at least three times the mean interval and at least 150 ms more
/// than it, the mean (whole milliseconds, rounded down) taken over the last 30 intervals with
/// this one among them, and only once [`FREEZE_MIN_SAMPLES`] intervals are known; a gap of
/// [`PAUSE`] or more is a pause instead, and is not taken into the mean. A pause counted as a
/// freeze put the outage profile's 10 s without a link among the kiosk's freezes, and never among
/// Chromium's; a gap of 184-190 ms at 30 fps was a freeze here and not in Chromium's count (the
/// mean without the gap itself), and so was an uneven start (issue #12).
#[derive(Debug, Default)]
pub(super) struct FreezeDetector {
    last: Option<Instant>,
    intervals: std::collections::VecDeque<Duration>,
}

/// Intervals the mean must hold before a gap can count as a freeze (libwebrtc's
/// `kMinFrameSamplesToDetectFreeze`).
const FREEZE_MIN_SAMPLES: usize = 5;
/// Intervals the mean is taken over (the W3C's 30 frames).
const FREEZE_WINDOW: usize = 30;

impl FreezeDetector {
    /// How long since the last frame shown (zero before the first).
    pub(super) fn since_last(&self, now: Instant) -> Duration {
        self.last.map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
    }

    /// A frame was shown at `now`: what the gap before it was.
    pub(super) fn frame(&mut self, now: Instant) -> Gap {
        let Some(last) = self.last.replace(now) else { return Gap::Smooth };
        let gap = now.saturating_duration_since(last);
        if gap >= PAUSE {
            return Gap::Pause;
        }
        if self.intervals.len() == FREEZE_WINDOW {
            self.intervals.pop_front();
        }
        self.intervals.push_back(gap);
        if self.intervals.len() < FREEZE_MIN_SAMPLES {
            return Gap::Smooth;
        }
        let n = u32::try_from(self.intervals.len()).unwrap_or(u32::MAX);
        let mean = Duration::from_millis((self.intervals.iter().sum::<Duration>() / n).as_millis() as u64);
        if gap >= (mean * 3).max(mean + Duration::from_millis(150)) {
            Gap::Freeze
        } else {
            Gap::Smooth
        }
    }
}

/// The counters now, as one snapshot.
pub(super) fn snapshot(shared: &Shared) -> CallStats {
    let c = &shared.counters;
    let size = c.remote_size.load(Ordering::Relaxed);
    let first = c.first_frame_micros.load(Ordering::Relaxed);
    CallStats {
        frames_sent: c.frames_sent.load(Ordering::Relaxed),
        keyframes_sent: c.keyframes_sent.load(Ordering::Relaxed),
        keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
        frames_decoded: c.frames_decoded.load(Ordering::Relaxed),
        remote_width: (size >> 32) as u32,
        remote_height: (size & 0xffff_ffff) as u32,
        audio_sent: c.audio_sent.load(Ordering::Relaxed),
        audio_red_sent: c.audio_red_sent.load(Ordering::Relaxed),
        audio_received: c.audio_received.load(Ordering::Relaxed),
        audio_lost: c.audio_lost.load(Ordering::Relaxed),
        audio_recovered: c.audio_recovered.load(Ordering::Relaxed),
        audio_red: c.audio_red.load(Ordering::Relaxed),
        audio_samples: c.audio_samples.load(Ordering::Relaxed),
        audio_concealed_samples: c.audio_concealed_samples.load(Ordering::Relaxed),
        audio_inserted_samples: c.audio_inserted_samples.load(Ordering::Relaxed),
        audio_removed_samples: c.audio_removed_samples.load(Ordering::Relaxed),
        audio_delay: Duration::from_micros(c.audio_delay_us.load(Ordering::Relaxed)),
        audio_sync: Duration::from_micros(c.audio_sync_us.load(Ordering::Relaxed)),
        av_skew_ms: crate::lock(&shared.lipsync).skew_ms(),
        remote_audio_frame_ms: c.remote_audio_frame_ms.load(Ordering::Relaxed),
        audio_energy: f64::from_bits(c.audio_energy_bits.load(Ordering::Relaxed)),
        audio_peak_energy: f64::from_bits(c.audio_peak_bits.load(Ordering::Relaxed)),
        first_remote_frame: (first > 0).then(|| Duration::from_micros(first)),
        target_kbps: shared.estimate.target_bps() / 1000.0,
        link_loss: shared.estimate.loss(),
        queue_ms: shared.estimate.queue_ms(),
        limit_kbps: shared.estimate.measured_limit_bps().map(|b| b / 1000.0),
        peer_cap_kbps: Some(f64::from_bits(c.peer_cap_bps.load(Ordering::Relaxed)))
            .filter(|b| *b > 0.0)
            .map(|b| b / 1000.0),
        window_loss: shared.estimate.window_loss(),
        repairs_unasked: shared.estimate.lost_feed().asked(),
        repairs_too_old: shared.estimate.lost_feed().too_old(),
        round_trip: shared.estimate.round_trip(),
        sending: *crate::lock(&shared.sending),
        sound_only_by_link: shared.sound_only_by_link.load(Ordering::Relaxed),
        ice_restarts: c.ice_restarts.load(Ordering::Relaxed),
        freezes: c.freezes.load(Ordering::Relaxed),
        pauses: c.pauses.load(Ordering::Relaxed),
        playout_delay: Duration::from_micros(c.playout_delay_us.load(Ordering::Relaxed)),
        keyframes_asked: c.keyframes_asked.load(Ordering::Relaxed),
        video_bytes_sent: c.video_bytes_sent.load(Ordering::Relaxed),
        frames_skipped_busy: c.frames_skipped_busy.load(Ordering::Relaxed),
        frames_dropped_by_encoder: c.frames_dropped_by_encoder.load(Ordering::Relaxed),
        video_fec: c.video_fec.load(Ordering::Relaxed),
        video_fec_rebuilt: c.video_fec_rebuilt.load(Ordering::Relaxed),
        video_fec_contradicted: c.video_fec_contradicted.load(Ordering::Relaxed),
        video_fec_sent: shared.fec.sent(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `frames` frames shown `every_ms` apart from `t0`; returns when the last was shown (ms).
    fn steady(d: &mut FreezeDetector, t0: Instant, frames: u64, every_ms: u64) -> u64 {
        for i in 0..frames {
            d.frame(t0 + Duration::from_millis(i * every_ms));
        }
        (frames - 1) * every_ms
    }

    #[test]
    fn a_freeze_is_a_gap_of_three_mean_intervals_and_150_ms_more() {
        let mut d = FreezeDetector::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = 0;
        assert_eq!(d.frame(at(t)), Gap::Smooth, "the first frame is no freeze");
        for _ in 0..30 {
            t += 33;
            assert_eq!(d.frame(at(t)), Gap::Smooth, "30 fps is smooth");
        }
        t += 150;
        assert_eq!(d.frame(at(t)), Gap::Smooth, "150 ms at 30 fps: under 33 + 150 ms");
        t += 200;
        assert_eq!(d.frame(at(t)), Gap::Freeze, "200 ms is a freeze");
        // At 5 fps a 600 ms gap is not (3 x 200 ms), 700 ms is.
        let mut d = FreezeDetector::default();
        let t = steady(&mut d, t0, 31, 200);
        assert_eq!(d.frame(at(t + 600)), Gap::Smooth);
        assert_eq!(d.frame(at(t + 600 + 700)), Gap::Freeze);
    }

    /// Issue #12: the outage profile's 10 s without a link counted among the kiosk's freezes,
    /// where Chromium counts it as a pause.
    #[test]
    fn issue_12_five_seconds_without_a_frame_is_a_pause_not_a_freeze() {
        let mut d = FreezeDetector::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = steady(&mut d, t0, 31, 33) + 33;
        t += 10_000;
        assert_eq!(d.frame(at(t)), Gap::Pause, "the link down for 10 s");
        t += 33;
        assert_eq!(d.frame(at(t)), Gap::Smooth, "the pause is not in the mean");
        t += PAUSE.as_millis() as u64 - 1;
        assert_eq!(d.frame(at(t)), Gap::Freeze, "just under the pause: a freeze");
    }

    /// Issue #12: the kiosk's freezes are set beside Chromium's `freezeCount`, which libwebrtc
    /// counts with the gap itself in the mean (so at 30 fps a gap of 186 ms is no freeze there,
    /// where the mean of the 30 before it made it one here) and only once five intervals are
    /// known.
    #[test]
    fn issue_12_freezes_are_counted_as_chromium_counts_them() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = FreezeDetector::default();
        let mut t = steady(&mut d, t0, 31, 33) + 33;
        // The mean with it: (29 x 33 + 186) / 30 = 38 ms, so the bar is 188 ms.
        t += 186 - 33;
        assert_eq!(d.frame(at(t)), Gap::Smooth, "186 ms at 30 fps, with itself in the mean");
        t += 33;
        d.frame(at(t));
        t += 200;
        assert_eq!(d.frame(at(t)), Gap::Freeze, "200 ms at 30 fps");
        // An uneven start: four intervals known, then a long one.
        let mut d = FreezeDetector::default();
        for ms in [0, 33, 66, 100] {
            assert_eq!(d.frame(at(ms)), Gap::Smooth);
        }
        assert_eq!(d.frame(at(500)), Gap::Smooth, "the fifth interval: too few to judge by");
        for ms in [533, 566, 600] {
            d.frame(at(ms));
        }
        assert_eq!(d.frame(at(1100)), Gap::Freeze, "with seven known, 500 ms is a freeze");
    }
}
