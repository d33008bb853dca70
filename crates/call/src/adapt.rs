//! How the kiosk's sending follows the link, without I/O: the congestion controller's estimate
//! and the measured loss go in with the time, the encoders' settings come out. Audio is reserved
//! first; video steps down a ladder of bitrate, frame rate and size as the estimate falls, and
//! stops (sound only) below the lowest rung. Going down is quick, going up waits for the estimate
//! to hold, so the picture does not flap on a link that wobbles.

use sc_proto::signal::LinkQuality;
use std::time::{Duration, Instant};

/// One step of the video ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Width sent.
    pub width: u32,
    /// Height sent.
    pub height: u32,
    /// Frames a second sent.
    pub fps: u32,
    /// The least video bitrate (kbit/s) this rung is used at.
    pub min_kbps: u32,
    /// The most video bitrate (kbit/s) spent on it.
    pub max_kbps: u32,
}

/// The ladder, best first. Sizes are the camera's 4:3 scaled down; the lowest rung is what a
/// 64 kbit/s link can still carry beside the voice.
pub const LADDER: [Rung; 4] = [
    // Tried from 250 kbit/s, where the prison profile's budget rests (~270; Chromium sending
    // Chromium there shows 640x480 in most runs, at ~400 kbit/s of video): libvpx dropped 6-15 of
    // the camera clip's 30 frames a second at this size, and the consultant got 21.7 fps, where
    // 480x360 keeps 29.8 (issue #12).
    Rung { width: 640, height: 480, fps: 30, min_kbps: 450, max_kbps: 1200 },
    // From 200 kbit/s (was 250), about libwebrtc's least start bitrate for 480x270: on the prison
    // profile the estimate rests at ~330 while the link's limit is known, which left 235 for video
    // and stepped to 320x240 at 20 fps for twenty seconds (issue #12).
    // From 140 (was 200): on the step profile's 300 kbit/s the budget is 140-150, and the kiosk
    // sent 320x240 there (the consultant's longest size) where Chromium keeps 480x360 at fewer
    // frames; from 140 the consultant got 480x360 at 25.9 fps over three runs (28.6 before),
    // concealment 1.80 % and 1.2 freezes a minute, against the pair's 480x360, 24.9 fps, 2.10 % and
    // 3.6. The poor profile's budget (~100-125) stays under it.
    Rung { width: 480, height: 360, fps: 30, min_kbps: 140, max_kbps: 600 },
    // From 90 kbit/s (was 120): on the poor profile (256 kbit/s) the estimate sits near 180, which
    // left 114 for video and sent 160x120 where Chromium sends 320x240 on the same link; at 90 the
    // consultant got 320x240 at 18.8 fps (15.7 at 160x120 before), concealment 1.1 % (issue #12).
    // At 30 fps (was 20, the rate Chromium keeps at this size on the same link, 28): 25.6 fps at
    // the consultant, concealment and freezes as before (0.82 %, 6.2 and 3.7 a minute).
    // From 75 (was 90): after a queue on the poor profile the measured limit fell to 171 and the
    // estimate rested at 145, a budget of 84: 320x240 sent 25-29 frames a second in ~55 kbit/s,
    // then 160x120 at 15 in the same ~52 for the call's last 15 s (the consultant's 24.3 fps against
    // the pair's 29.6).
    Rung { width: 320, height: 240, fps: 30, min_kbps: 75, max_kbps: 350 },
    Rung { width: 160, height: 120, fps: 15, min_kbps: 50, max_kbps: 150 },
];

/// The ladder's lowest rung: the last video before sound only.
pub const LOWEST: Rung = LADDER[LADDER.len() - 1];

/// Voice bitrate (Opus, kbit/s) on a good link, and the floor it drops to on a poor one.
pub const AUDIO_KBPS: u32 = 32;
/// Opus at its floor still carries wideband speech with in-band FEC at 5 % loss (at 16 kbit/s
/// libopus had no room for FEC at that loss in any band: see `audio::fec_band`).
pub const AUDIO_MIN_KBPS: u32 = 24;
/// Per-packet overhead at 50 packets a second (IP, UDP, TURN channel, RTP, SRTP, TWCC): ~56 bytes
/// (58 measured on the wire).
pub const AUDIO_OVERHEAD_KBPS: u32 = 22;
/// The voice's packets on a link too slow for that overhead: 60 ms of speech each, a third of the
/// packets and of their overhead (~7.5 kbit/s). On the audio-only profile (64 kbit/s) 20 ms packets
/// at the voice's floor came to ~50 kbit/s on the wire, which with the feedback the kiosk returns
/// filled the link; the price is 40 ms more delay, and a lost packet is 60 ms of speech (the next
/// packet's FEC rebuilds it all).
pub const AUDIO_LONG_FRAME_MS: u8 = 60;
/// The estimate under which the voice goes to [`AUDIO_LONG_FRAME_MS`] packets, and the one it must
/// reach again for 20 ms ones (apart, so an estimate wobbling at one does not flip them).
pub const AUDIO_LONG_FRAMES_BELOW_KBPS: u32 = 100;
/// See [`AUDIO_LONG_FRAMES_BELOW_KBPS`].
pub const AUDIO_SHORT_FRAMES_FROM_KBPS: u32 = 160;
/// The kiosk's own voice goes as RED (each packet repeating the last one's frame, `crate::red`)
/// while the link has lost more than this share of packets within [`RED_FOR`], and the estimate
/// leaves room for video and the repeat ([`RED_FROM_KBPS`]): a single lost packet is then rebuilt
/// whole at the consultant, where Opus's in-band FEC rebuilds only speech, at a lower rate, when
/// the encoder chose to carry it. With plain Opus and FEC the consultant's browser concealed
/// 0.54-1.00 % of the kiosk's voice on the prison profile (512 kbit/s, 3 %), against 0.46-0.73 %
/// of a Chromium sender's on the same link (issue #12).
pub const RED_FROM_LOSS: f64 = 0.01;
/// How long a loss over [`RED_FROM_LOSS`] keeps the voice in RED: the loss reported at one
/// moment comes and goes with a handful of packets.
pub const RED_FOR: Duration = Duration::from_secs(10);
/// The least estimate the voice starts going as RED at. The repeat costs the voice's bitrate
/// again, so the voice is sent at its floor ([`AUDIO_MIN_KBPS`]) meanwhile: 48 kbit/s for both,
/// 16 more than plain Opus at [`AUDIO_KBPS`]. On the prison profile the estimate rests at
/// 330-410, where 480x360 keeps its least beside it; on the poor one (180-230) video needs every
/// bit.
pub const RED_FROM_KBPS: u32 = 320;
/// The estimate under which RED stops again (apart from [`RED_FROM_KBPS`], so an estimate
/// wobbling at one does not flip the voice's format): the repeat's 16 kbit/s out of video's
/// budget there leaves 480x360 its least and ~50 more for a keyframe's burst.
pub const RED_UNDER_KBPS: u32 = 300;
/// Share of what is left after audio that video may use: the rest absorbs keyframes and
/// retransmissions.
const VIDEO_SHARE: f64 = 0.85;
/// How fast video's bitrate may rise (a share of what it was given, a second): see
/// [`Adapter::ramped`]. Down is at once.
pub const RAMP_PER_SEC: f64 = 0.1;
/// How long the estimate must hold before stepping up a rung (or back to video).
pub const HOLD_UP: Duration = Duration::from_secs(8);
/// How long a budget a little under the rung's least must last before a rung down: the dip after
/// the controller finds the link's limit lasts a second or two, and each step down (and back up)
/// is a keyframe at a new size. On the prison profile the kiosk stepped from 480x360 to 320x240
/// and back at every such dip, and the consultant's picture froze with each (issue #12).
pub const HOLD_DOWN: Duration = Duration::from_secs(3);
/// A budget under this share of the rung's least steps down at once: the link has really
/// dropped (a 2 Mbit/s link falling to 300 kbit/s), and the rung is asked no less than this
/// share of its least while it is held.
pub const DOWN_AT_ONCE: f64 = 0.6;
/// How long the estimate must stay low before leaving video altogether; at once when the budget
/// has no room for [`DOWN_AT_ONCE`] of the lowest rung's least (a link measured full, not a dip).
pub const HOLD_DOWN_TO_AUDIO: Duration = Duration::from_secs(2);

/// What the encoders should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The video rung and its bitrate, or `None`: sound only.
    pub video: Option<(Rung, u32)>,
    /// Opus bitrate, kbit/s.
    pub audio_kbps: u32,
    /// The loss (percent) Opus's in-band FEC is tuned for.
    pub audio_loss_pct: u8,
    /// Speech per voice packet, ms: 20, or [`AUDIO_LONG_FRAME_MS`] on a slow link.
    pub audio_frame_ms: u8,
    /// Whether the voice goes as RED ([`RED_FROM_LOSS`]).
    pub audio_red: bool,
}

/// The adaptation state.
#[derive(Debug, Clone)]
pub struct Adapter {
    rung: Option<usize>,
    /// Since when the estimate has allowed a better rung (or video again).
    better_since: Option<Instant>,
    /// Since when the estimate has been below the lowest rung.
    starved_since: Option<Instant>,
    /// Since when the budget has been under the current rung's least (see [`HOLD_DOWN`]).
    worse_since: Option<Instant>,
    /// The voice's packet length now (ms).
    frame_ms: u8,
    last: Option<Settings>,
    /// Since when the budget has been above what video was last given (the ramp counts from
    /// then, or from the last step of the climb).
    climb_since: Option<Instant>,
    /// When the loss was last over [`RED_FROM_LOSS`].
    lossy_at: Option<Instant>,
    /// Whether the voice goes as RED now.
    red: bool,
    /// Whether the peer took RED for the kiosk's voice ([`Adapter::allow_red`]).
    red_allowed: bool,
}

impl Default for Adapter {
    fn default() -> Self {
        Adapter::new()
    }
}

impl Adapter {
    /// Starts at the top rung (the controller's first estimate moves it at once).
    pub fn new() -> Self {
        Adapter {
            rung: Some(0),
            better_since: None,
            starved_since: None,
            worse_since: None,
            frame_ms: 20,
            last: None,
            climb_since: None,
            lossy_at: None,
            red: false,
            red_allowed: false,
        }
    }

    /// Whether the peer took RED for the kiosk's voice: until it has (or if it never does),
    /// the voice stays plain Opus and video keeps the repeat's share.
    pub fn allow_red(&mut self, allowed: bool) {
        self.red_allowed = allowed;
    }

    /// The settings for an estimate of `estimate_bps` (the whole send path) and a measured loss
    /// of `loss` (0..1) at `now`; `Some` only when they change.
    pub fn update(&mut self, now: Instant, estimate_bps: f64, loss: f64) -> Option<Settings> {
        let estimate_kbps = (estimate_bps.max(0.0) / 1000.0) as u32;
        // While sound only the voice stays lean (its floor, long packets) until video is back: the
        // estimate's tries of the link after a limit's memory lapses (`estimate::CAP_FLOOR_BPS`)
        // last a few seconds, and followed, they put the voice in 20 ms packets at its full rate
        // on the audio-only profile's 64 kbit/s link, and the consultant's with it (issue #12).
        let lean = self.rung.is_none();
        if loss > RED_FROM_LOSS {
            self.lossy_at = Some(now);
        }
        let lossy = self.lossy_at.is_some_and(|at| now.saturating_duration_since(at) < RED_FOR);
        let room = if self.red { RED_UNDER_KBPS } else { RED_FROM_KBPS };
        self.red = self.red_allowed && lossy && !lean && estimate_kbps >= room;
        let audio_kbps = if estimate_kbps >= 200 && !lean && !self.red { AUDIO_KBPS } else { AUDIO_MIN_KBPS };
        // The repeat costs the voice's bitrate again (its header, 4 bytes a packet, aside).
        let voice_kbps = if self.red { 2 * audio_kbps } else { audio_kbps };
        if estimate_kbps < AUDIO_LONG_FRAMES_BELOW_KBPS {
            self.frame_ms = AUDIO_LONG_FRAME_MS;
        } else if estimate_kbps >= AUDIO_SHORT_FRAMES_FROM_KBPS && !lean {
            self.frame_ms = 20;
        }
        // Video's room is counted with the 20 ms packets' overhead whatever the voice sends now,
        // so where video stops and starts again does not depend on the packet length; what the
        // longer packets save is headroom for the voice.
        let budget = (f64::from(estimate_kbps.saturating_sub(voice_kbps + AUDIO_OVERHEAD_KBPS)) * VIDEO_SHARE) as u32;
        // The best rung this budget pays for.
        let fits = LADDER.iter().position(|r| budget >= r.min_kbps);
        self.rung = match (self.rung, fits) {
            // Down when the budget has stayed under the rung a while, or at once when it is far
            // under it (to video's lowest rung at worst); off only after a while.
            (Some(cur), Some(best)) if best > cur => {
                self.better_since = None;
                let since = *self.worse_since.get_or_insert(now);
                let far_under = f64::from(budget) < f64::from(LADDER[cur].min_kbps) * DOWN_AT_ONCE;
                if far_under || now.duration_since(since) >= HOLD_DOWN {
                    self.worse_since = None;
                    Some(best)
                } else {
                    Some(cur)
                }
            }
            (Some(cur), None) => {
                self.better_since = None;
                self.worse_since = None;
                let since = *self.starved_since.get_or_insert(now);
                // A call that starts where the last one found no room for video (its controller
                // starts there, `crate::link_memory`) starts sound only: no video to hold on to.
                // Nor when there is no room for the lowest rung at all (under DOWN_AT_ONCE of its
                // least): the link has been measured full, not dipped.
                let hopeless = f64::from(budget) < f64::from(LOWEST.min_kbps) * DOWN_AT_ONCE;
                if self.last.is_none() || hopeless || now.duration_since(since) >= HOLD_DOWN_TO_AUDIO {
                    None
                } else {
                    Some(cur.max(LADDER.len() - 1))
                }
            }
            // Up (or back to video) one rung at a time, after the estimate has held.
            (cur, Some(best)) if cur.is_none_or(|c| best < c) => {
                self.starved_since = None;
                self.worse_since = None;
                // Back from sound only needs room for more than the lowest rung's minimum.
                if cur.is_none() && budget < LOWEST.min_kbps * 2 {
                    self.better_since = None;
                    return self.settle(now, audio_kbps, budget, loss);
                }
                let since = *self.better_since.get_or_insert(now);
                if now.duration_since(since) < HOLD_UP {
                    cur
                } else {
                    self.better_since = None;
                    Some(cur.map_or(LADDER.len() - 1, |c| c - 1))
                }
            }
            (cur, _) => {
                self.starved_since = None;
                self.better_since = None;
                self.worse_since = None;
                cur
            }
        };
        if fits.is_some() {
            self.starved_since = None;
        }
        self.settle(now, audio_kbps, budget, loss)
    }

    /// The most video may ask now: the budget, or when that is more than video was last given,
    /// [`RAMP_PER_SEC`] more a second since then. An estimate climbing past what the link carries
    /// (it may run half again above what arrives, `estimate::PROBE_HEADROOM`) was followed at once,
    /// most of all at a rung up (320x240 at 350 kbit/s to 480x360 at 530 on the prison profile's
    /// 512): the link's queue overflowed before the controller saw it, a fifth of the packets were
    /// lost and the consultant's picture froze for seconds, every twenty to forty seconds (issue
    /// #12). Climbing by a tenth a second, the queue builds slowly enough to be seen first.
    ///
    /// A rung up starts the climb again from what the rung below was given: its keyframe at the
    /// new size is burst enough. Counted on from the rung below (there held at its most while the
    /// budget grew), 320x240 at 350 kbit/s went to 480x360 at 420 at once on the prison profile,
    /// the link's queue reached 170 ms and the consultant's picture froze (issue #12).
    ///
    /// Back from sound only, video starts at the lowest rung's least: nothing has shown the link
    /// carries more than the voice (the estimate's try of it, `estimate::CAP_FLOOR_BPS`, is a
    /// figure with no traffic behind it), and on the audio-only profile (64 kbit/s) the kiosk came
    /// back at the whole try's budget, 130 kbit/s of video: 1.2 s queues both ways and the
    /// consultant's voice 22-69 % concealed for five seconds, until the queue sent it back to sound
    /// only (issue #12). On a link that did recover it climbs from there by the ramp.
    fn ramped(&mut self, now: Instant, budget: u32) -> u32 {
        let Some((rung, kbps)) = self.last.and_then(|s| s.video) else {
            return match self.last {
                Some(_) => budget.min(LOWEST.min_kbps),
                // The call's first settings: the controller's start is already cautious.
                None => budget,
            };
        };
        if budget <= kbps {
            self.climb_since = None;
            return budget;
        }
        if self.rung.is_some_and(|i| LADDER[i] != rung) {
            self.climb_since = Some(now);
        }
        let secs = now.saturating_duration_since(*self.climb_since.get_or_insert(now)).as_secs_f64();
        budget.min((f64::from(kbps) * (1.0 + RAMP_PER_SEC * secs)) as u32)
    }

    /// The settings for the rung now chosen; `Some` only when they differ from the last.
    fn settle(&mut self, now: Instant, audio_kbps: u32, budget: u32, loss: f64) -> Option<Settings> {
        let budget = self.ramped(now, budget);
        let video = self.rung.map(|i| {
            let r = LADDER[i];
            let least = (f64::from(r.min_kbps) * DOWN_AT_ONCE) as u32;
            (r, budget.clamp(least, r.max_kbps))
        });
        let settings = Settings {
            video,
            audio_kbps,
            audio_loss_pct: (loss.clamp(0.0, 0.3) * 100.0).ceil() as u8,
            audio_frame_ms: self.frame_ms,
            audio_red: self.red,
        };
        // Bitrate wiggles under 10 % are not worth a reconfiguration.
        let changed = match (self.last, settings) {
            (Some(a), b)
                if a.audio_kbps == b.audio_kbps
                    && a.audio_loss_pct == b.audio_loss_pct
                    && a.audio_frame_ms == b.audio_frame_ms
                    && a.audio_red == b.audio_red =>
            {
                match (a.video, b.video) {
                    (Some((ra, ka)), Some((rb, kb))) => ra != rb || ka.abs_diff(kb) * 10 > ka,
                    (None, None) => false,
                    _ => true,
                }
            }
            _ => true,
        };
        if changed {
            // A climb goes on from what was just given.
            if self.climb_since.is_some() {
                self.climb_since = Some(now);
            }
            self.last = Some(settings);
            Some(settings)
        } else {
            None
        }
    }

    /// The settings last returned.
    pub fn current(&self) -> Option<Settings> {
        self.last
    }
}

/// The format the consultant's browser is asked to send its voice in (a new offer listing it
/// first): what the link in the other direction, as slow as the kiosk's, carries best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceFormat {
    /// Opus in 20 ms packets, libwebrtc's default.
    Opus,
    /// RED: each packet repeats the previous one's frame, so a single loss is rebuilt whole. Twice
    /// the voice's bitrate: for a link with room.
    Red,
    /// RED in [`AUDIO_LONG_FRAME_MS`] packets, as the kiosk sends its own voice on a slow link: a
    /// third of the packets and of their overhead. On the audio-only profile (64 kbit/s) Chromium's
    /// 20 ms packets at the page's 24 kbit/s cap came to ~60 kbit/s on the wire with its
    /// feedback, and the link towards the kiosk held a standing queue of 0.4-1.3 s all call. In
    /// long packets alone its in-band FEC came and went (Chromium sizes it by the loss it projects
    /// from the kiosk's reports), and a lost packet was 60 ms concealed; RED's repeat rebuilds it
    /// whole, and at the page's 16 kbit/s cap for it fits the link (~41 kbit/s on the wire).
    LongRed,
}

/// What both screens show: sound only (the link, or the nurse's choice), weak (video below
/// 480x360, or more than 5 % loss) or good.
pub fn quality(sending: Option<Settings>, loss: f64, nurse_sound_only: bool) -> LinkQuality {
    match sending.map(|s| s.video) {
        _ if nurse_sound_only => LinkQuality::SoundOnly,
        Some(None) => LinkQuality::SoundOnly,
        // The controller starts below the top rung and climbs on a good link: the two top rungs
        // both count as good, so a call does not open on "weak".
        Some(Some((rung, _))) if rung.width >= LADDER[1].width && loss <= 0.05 => LinkQuality::Good,
        // Not decided yet: nothing measured, nothing to worry anyone with.
        None if loss <= 0.05 => LinkQuality::Good,
        _ => LinkQuality::Weak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `kbps` once a second for `secs` seconds from `*t`; returns the settings at the end.
    fn hold(a: &mut Adapter, t: &mut Instant, kbps: u32, loss: f64, secs: u64) -> Settings {
        for _ in 0..secs {
            a.update(*t, f64::from(kbps) * 1000.0, loss);
            *t += Duration::from_secs(1);
        }
        a.current().expect("settings")
    }

    fn size(s: Settings) -> Option<(u32, u32, u32)> {
        s.video.map(|(r, _)| (r.width, r.height, r.fps))
    }

    #[test]
    fn a_good_link_sends_the_top_rung_and_a_step_down_is_followed_at_once_and_back_up_slowly() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        let s = hold(&mut a, &mut t, 2000, 0.0, 3);
        assert_eq!(size(s), Some((640, 480, 30)));
        assert_eq!(s.video.map(|v| v.1), Some(1200), "capped at the rung's most");
        assert_eq!(s.audio_kbps, AUDIO_KBPS);
        // 2 Mbit -> 200 kbit: down within one update.
        let s = hold(&mut a, &mut t, 200, 0.0, 1);
        assert_eq!(size(s), Some((320, 240, 30)));
        assert!(s.video.is_some_and(|(_, k)| k <= 200 - AUDIO_KBPS - AUDIO_OVERHEAD_KBPS), "{s:?}");
        // Back to 2 Mbit: one rung per HOLD_UP, not at once.
        let s = hold(&mut a, &mut t, 2000, 0.0, 5);
        assert_eq!(size(s), Some((320, 240, 30)), "not yet");
        let s = hold(&mut a, &mut t, 2000, 0.0, 5);
        assert_eq!(size(s), Some((480, 360, 30)));
        let s = hold(&mut a, &mut t, 2000, 0.0, 9);
        assert_eq!(size(s), Some((640, 480, 30)));
    }

    #[test]
    fn issue_12_on_a_lossy_link_with_room_the_voice_goes_as_red_at_its_floor() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        // The prison profile: ~380 kbit/s, 3 % loss. Not before the peer has taken RED.
        let s = hold(&mut a, &mut t, 380, 0.03, 1);
        assert!(!s.audio_red && s.audio_kbps == AUDIO_KBPS, "{s:?}");
        a.allow_red(true);
        let s = hold(&mut a, &mut t, 380, 0.03, 3);
        assert!(s.audio_red, "{s:?}");
        assert_eq!(s.audio_kbps, AUDIO_MIN_KBPS, "the repeat doubles the voice: at its floor");
        let budget = ((380 - 2 * AUDIO_MIN_KBPS - AUDIO_OVERHEAD_KBPS) as f64 * VIDEO_SHARE) as u32;
        assert_eq!(s.video.map(|(r, k)| (r.width, k)), Some((480, budget)), "the repeat comes out of video's share");
        // A report with no loss among lossy ones does not flip it; ten clean seconds do.
        assert!(hold(&mut a, &mut t, 380, 0.0, 5).audio_red);
        assert!(hold(&mut a, &mut t, 380, 0.03, 1).audio_red);
        let s = hold(&mut a, &mut t, 380, 0.0, 11);
        assert!(!s.audio_red, "a clean link sends plain Opus");
        assert_eq!(s.audio_kbps, AUDIO_KBPS);
        // Lossy again, then the estimate wobbles between the two bounds: RED stays.
        assert!(hold(&mut a, &mut t, 380, 0.03, 1).audio_red);
        assert!(hold(&mut a, &mut t, RED_UNDER_KBPS + 5, 0.03, 2).audio_red, "above the lower bound");
        assert!(!hold(&mut a, &mut t, RED_UNDER_KBPS - 5, 0.03, 1).audio_red, "under it");
        assert!(!hold(&mut a, &mut t, RED_UNDER_KBPS + 5, 0.03, 2).audio_red, "not back before the upper bound");
        // The poor profile's estimate (~200 kbit/s, 5 %): video needs the room.
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        a.allow_red(true);
        let s = hold(&mut a, &mut t, 200, 0.05, 5);
        assert!(!s.audio_red && s.video.is_some(), "{s:?}");
        // Sound only: no repeat on a link with no room for video.
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        a.allow_red(true);
        let s = hold(&mut a, &mut t, 60, 0.05, 5);
        assert!(s.video.is_none() && !s.audio_red, "{s:?}");
    }

    /// Issue #12: an estimate that jumps past what video is sending (or a rung up) is followed a
    /// tenth a second, not at once: the prison link's queue overflowed at each such jump.
    #[test]
    fn issue_12_video_climbs_to_a_higher_estimate_gradually_and_falls_at_once() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        let kbps = |s: Settings| s.video.map_or(0, |(_, k)| k);
        let before = kbps(hold(&mut a, &mut t, 450, 0.0, 12));
        assert_eq!(size(a.current().expect("settings")), Some((480, 360, 30)));
        let after_1s = kbps(hold(&mut a, &mut t, 900, 0.0, 1));
        assert!(after_1s <= before * 115 / 100, "{before} -> {after_1s} in a second");
        let after_5s = kbps(hold(&mut a, &mut t, 900, 0.0, 4));
        assert!(after_5s > before * 140 / 100 && after_5s < 600, "{before} -> {after_5s} in five seconds");
        let s = hold(&mut a, &mut t, 900, 0.0, 20);
        let budget = ((900 - AUDIO_KBPS - AUDIO_OVERHEAD_KBPS) as f64 * VIDEO_SHARE) as u32;
        // (Within the tenth that is not worth a reconfiguration.)
        assert_eq!(size(s), Some((640, 480, 30)));
        assert!(kbps(s) * 11 / 10 >= budget && kbps(s) <= budget, "the budget in the end: {} of {budget}", kbps(s));
        let s = hold(&mut a, &mut t, 300, 0.0, 1);
        assert!(kbps(s) <= 300 - AUDIO_KBPS - AUDIO_OVERHEAD_KBPS, "down within one update: {s:?}");
    }

    /// Issue #12: a rung up asks no more than the rung below was given (its keyframe at the new
    /// size is burst enough), then climbs on.
    #[test]
    fn issue_12_a_rung_up_asks_no_more_than_the_rung_below_was_given() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        let kbps = |s: Settings| s.video.map_or(0, |(_, k)| k);
        // Just under 480x360's least, then room for it: 320x240 climbs for the eight seconds
        // before the rung up (updated every 100 ms, as the encoder thread does on every frame).
        assert_eq!(size(hold(&mut a, &mut t, 215, 0.03, 12)), Some((320, 240, 30)));
        let mut held = a.current().expect("settings");
        while size(a.current().expect("settings")) == Some((320, 240, 30)) {
            held = a.current().expect("settings");
            a.update(t, 560_000.0, 0.03);
            t += Duration::from_millis(100);
        }
        let up = a.current().expect("settings");
        assert_eq!(size(up), Some((480, 360, 30)));
        assert!(kbps(up) <= kbps(held), "the rung up asks {} where the rung below had {}", kbps(up), kbps(held));
        let later = hold(&mut a, &mut t, 560, 0.03, 3);
        assert!(kbps(later) > kbps(up), "and climbs: {} -> {}", kbps(up), kbps(later));
    }

    /// Issue #12: on the prison profile the estimate dips for a second or two each time the
    /// controller finds the link's limit (480x360's budget under its least for two seconds); each
    /// step down and back was a keyframe at a new size and a freeze at the consultant.
    #[test]
    fn issue_12_a_short_dip_keeps_the_rung_and_a_lasting_one_steps_down() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        let kbps = |s: Settings| s.video.map_or(0, |(_, k)| k);
        assert_eq!(size(hold(&mut a, &mut t, 450, 0.03, 12)), Some((480, 360, 30)));
        let dip = hold(&mut a, &mut t, 200, 0.03, 2);
        assert_eq!(size(dip), Some((480, 360, 30)), "held through the dip");
        let budget = ((200 - AUDIO_KBPS - AUDIO_OVERHEAD_KBPS) as f64 * VIDEO_SHARE) as u32;
        assert!(budget < LADDER[1].min_kbps, "a dip under the rung's least: {budget}");
        assert!(kbps(dip) <= budget, "asks what the dip leaves: {} of {budget}", kbps(dip));
        assert_eq!(size(hold(&mut a, &mut t, 379, 0.03, 10)), Some((480, 360, 30)));
        // The same dip, lasting: down after HOLD_DOWN.
        assert_eq!(size(hold(&mut a, &mut t, 200, 0.03, 2)), Some((480, 360, 30)));
        assert_eq!(size(hold(&mut a, &mut t, 200, 0.03, 2)), Some((320, 240, 30)));
    }

    /// Issue #12: on the step profile's 300 kbit/s the estimate rests at 220-235 once a queue has
    /// measured the link; Chromium keeps 480x360 there, and so does the kiosk now.
    #[test]
    fn issue_12_the_step_profiles_300_kbit_s_sends_480x360() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        assert_eq!(size(hold(&mut a, &mut t, 220, 0.0, 12)), Some((480, 360, 30)));
    }

    /// Issue #12: the poor profile's estimate (~180 kbit/s) sends 320x240, as Chromium does there,
    /// and so does the 145 it rests at once a queue has measured the link's limit low (171).
    #[test]
    fn issue_12_the_poor_profiles_estimate_sends_320x240() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        assert_eq!(size(hold(&mut a, &mut t, 180, 0.05, 12)), Some((320, 240, 30)));
        assert_eq!(size(hold(&mut a, &mut t, 145, 0.05, 20)), Some((320, 240, 30)));
    }

    #[test]
    fn below_the_lowest_rung_the_call_goes_to_sound_only_and_comes_back_when_the_link_recovers() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        hold(&mut a, &mut t, 1000, 0.0, 2);
        // Just under what the lowest rung needs: that rung at once, sound only after
        // HOLD_DOWN_TO_AUDIO, Opus at its floor.
        let s = hold(&mut a, &mut t, 95, 0.05, 1);
        assert_eq!(size(s), Some((160, 120, 15)));
        let s = hold(&mut a, &mut t, 95, 0.05, 3);
        assert_eq!(s.video, None, "sound only");
        assert_eq!(s.audio_kbps, AUDIO_MIN_KBPS);
        assert_eq!(s.audio_loss_pct, 5);
        // Just enough for the lowest rung is not enough to come back: it needs twice its minimum.
        let s = hold(&mut a, &mut t, 150, 0.0, 20);
        assert_eq!(s.video, None);
        let s = hold(&mut a, &mut t, 400, 0.0, 5);
        assert_eq!(s.video, None, "held a while first");
        let s = hold(&mut a, &mut t, 400, 0.0, 5);
        assert_eq!(size(s), Some((160, 120, 15)));
    }

    /// Issue #12: an estimate with no room for the lowest rung at all (the audio-only profile's 64
    /// kbit/s, measured by a queue) leaves video at once: held at the lowest rung for
    /// HOLD_DOWN_TO_AUDIO, the page was told sound only two seconds later and its video (already
    /// queued in its pacer) filled the link towards the kiosk meanwhile.
    #[test]
    fn issue_12_no_room_for_the_lowest_rung_at_all_is_sound_only_at_once() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        hold(&mut a, &mut t, 250, 0.0, 3);
        let s = hold(&mut a, &mut t, 64, 0.05, 1);
        assert_eq!(s.video, None, "sound only at once");
        assert_eq!((s.audio_kbps, s.audio_frame_ms), (AUDIO_MIN_KBPS, AUDIO_LONG_FRAME_MS));
    }

    /// Issue #12: a call whose controller starts where the last one found no room for video
    /// (`crate::link_memory`) sends no video first: before, its first settings were the lowest
    /// rung for [`HOLD_DOWN_TO_AUDIO`], a keyframe and two seconds of video into a full link.
    #[test]
    fn issue_12_a_call_starting_below_the_lowest_rung_starts_sound_only() {
        let (mut a, t) = (Adapter::new(), Instant::now());
        let s = a.update(t, 64_000.0, 0.0).expect("the first settings");
        assert_eq!(s.video, None, "sound only from the start");
        assert_eq!((s.audio_kbps, s.audio_frame_ms), (AUDIO_MIN_KBPS, AUDIO_LONG_FRAME_MS));
        let (mut b, t) = (Adapter::new(), Instant::now());
        let s = b.update(t, crate::estimate::INITIAL_BPS, 0.0).expect("the first settings");
        assert_eq!(size(s), Some((480, 360, 30)), "a new link starts with video");
    }

    /// Issue #12: back from sound only, video asks the lowest rung's least, not the whole budget
    /// of an estimate that has seen only the voice, then climbs by the ramp.
    #[test]
    fn issue_12_back_from_sound_only_video_starts_at_the_least_and_climbs() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        let kbps = |s: Settings| s.video.map_or(0, |(_, k)| k);
        hold(&mut a, &mut t, 1000, 0.0, 2);
        assert_eq!(hold(&mut a, &mut t, 64, 0.05, 4).video, None, "sound only");
        // The estimate's try: 200 kbit/s for the hold, and video comes back.
        let mut back = None;
        for _ in 0..100 {
            if let Some(s) = a.update(t, 200_000.0, 0.0).filter(|s| s.video.is_some()) {
                back = Some(s);
                break;
            }
            t += Duration::from_millis(100);
        }
        let back = back.expect("video back within ten seconds");
        assert_eq!(size(back), Some((160, 120, 15)));
        assert_eq!(kbps(back), LADDER[3].min_kbps, "{back:?}");
        let budget = ((200 - AUDIO_MIN_KBPS - AUDIO_OVERHEAD_KBPS) as f64 * VIDEO_SHARE) as u32;
        assert!(budget > kbps(back) * 2, "the budget was {budget}");
        let later = hold(&mut a, &mut t, 200, 0.0, 3);
        assert!(kbps(later) > kbps(back), "and climbs: {} -> {}", kbps(back), kbps(later));
    }

    #[test]
    fn issue_12_on_a_link_for_sound_only_the_voice_goes_in_60_ms_packets() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        assert_eq!(hold(&mut a, &mut t, 1000, 0.0, 2).audio_frame_ms, 20);
        assert_eq!(hold(&mut a, &mut t, 300, 0.0, 2).audio_frame_ms, 20, "video links keep 20 ms");
        let s = hold(&mut a, &mut t, 64, 0.05, 4);
        assert_eq!((s.video, s.audio_frame_ms), (None, AUDIO_LONG_FRAME_MS));
        // An estimate wobbling between the two thresholds changes nothing.
        for kbps in [120, 90, 150, 110, 130] {
            assert_eq!(hold(&mut a, &mut t, kbps, 0.05, 1).audio_frame_ms, AUDIO_LONG_FRAME_MS);
        }
        // The estimate trying the link for a few seconds changes nothing while sound only.
        let s = hold(&mut a, &mut t, 200, 0.0, 6);
        assert_eq!((s.video, s.audio_kbps, s.audio_frame_ms), (None, AUDIO_MIN_KBPS, AUDIO_LONG_FRAME_MS));
        // Video back (after its hold), then 20 ms packets.
        let s = hold(&mut a, &mut t, 200, 0.0, 4);
        assert!(s.video.is_some(), "{s:?}");
        assert_eq!(hold(&mut a, &mut t, 200, 0.0, 1).audio_frame_ms, 20);
        assert_eq!(hold(&mut a, &mut t, 150, 0.0, 1).audio_frame_ms, 20);
    }

    #[test]
    fn a_wobbling_estimate_does_not_flap_and_loss_tunes_opus() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        hold(&mut a, &mut t, 330, 0.0, 2);
        let mut changes = 0;
        for i in 0..60 {
            let kbps: u32 = if i % 2 == 0 { 320 } else { 345 };
            if a.update(t, f64::from(kbps) * 1000.0, 0.0).is_some() {
                changes += 1;
            }
            t += Duration::from_secs(1);
        }
        assert!(changes <= 2, "{changes} reconfigurations in a minute of wobble");
        assert_eq!(hold(&mut a, &mut t, 330, 0.5, 1).audio_loss_pct, 30, "FEC tuned for at most 30 %");
        assert_eq!(hold(&mut a, &mut t, 330, 0.021, 1).audio_loss_pct, 3);
    }

    #[test]
    fn quality_is_sound_only_weak_or_good() {
        let (mut a, mut t) = (Adapter::new(), Instant::now());
        assert_eq!(quality(None, 0.0, false), LinkQuality::Good);
        assert_eq!(quality(None, 0.0, true), LinkQuality::SoundOnly, "the nurse's button");
        let top = hold(&mut a, &mut t, 2000, 0.0, 2);
        assert_eq!(quality(Some(top), 0.01, false), LinkQuality::Good);
        assert_eq!(quality(Some(top), 0.08, false), LinkQuality::Weak, "lossy");
        let low = hold(&mut a, &mut t, 200, 0.0, 1);
        assert_eq!(quality(Some(low), 0.0, false), LinkQuality::Weak, "a lower rung");
        let none = hold(&mut a, &mut t, 50, 0.0, 5);
        assert_eq!(quality(Some(none), 0.0, false), LinkQuality::SoundOnly);
    }
}
