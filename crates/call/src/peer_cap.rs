//! The most the kiosk tells the consultant's browser to send: a receiver's estimate of the link
//! (REMB), which caps the browser's own congestion controller. Pure (time, the call's state and
//! the down link's measurements in, a bitrate to send out); the voice's receive task sends it.
//!
//! Why, while sound only: told to stop its video, Chromium still kept its estimate of the way down
//! and padded up to it, no frames sent: on the audio-only profile (64 kbit/s) its estimate climbed
//! to 113 kbit/s and it sent 37-84 kbit/s of padding for a second at a time, which queued the link
//! 1.2 s and took the prisoner's hearing of the consultant to 100 % concealed for two seconds
//! (issue #12). Capped at what its voice needs, the padding has no room.
//!
//! Why, with video: Chromium's estimate of the way down goes past the link every ~15 s (520-576
//! kbit/s on the prison profile's 512 kbit/s), and each time the down link queues 100-200 ms and
//! more: the kiosk's picture froze and its playout held the late frames for a minute. Once a
//! queue standing on the down link has measured what it carries (`crate::down_link::CAP_QUEUE`),
//! the browser is capped a little under it. A fixed cap there (430 kbit/s, in an experiment of
//! issue #12's) kept the down link's queue at 0 ms for whole calls and halved the kiosk's freezes.
//!
//! The cap is lifted when the link shows room again. The way up cannot show it (the browser held
//! under the cap queues nothing), so the kiosk's own estimate of the way up stands for it: a
//! prison's line moves both ways together (a leased line is symmetric; the step profile falls and
//! rises both ways), and the kiosk's controller probes its own way. A cap nothing has measured
//! again for [`HELD_FOR`] is lifted as well, for a line where the two ways differ.

use std::time::{Duration, Instant};

/// A cap is said again this often while it holds (a REMB lost on the link is said again soon).
pub const CAP_EVERY: Duration = Duration::from_secs(1);
/// The cap: the consultant's voice (capped by its page at 16 kbit/s while sound only; with RED's
/// repeat and the packets' overhead 36-44 kbit/s of RTP on the audio-only profile) and a little
/// room. Not the kiosk's own estimate: that climbs in its tries of the way up (to 105 kbit/s
/// there), and Chromium padded into the room it was given.
pub const SOUND_ONLY_CAP_BPS: f64 = 48_000.0;
/// The cap lifted: more than any link a prison has.
pub const LIFTED_BPS: f64 = 100_000_000.0;
/// With video, the browser is capped at this share of what the down link carried while a queue
/// stood on it: the measurement is of half a second's packets, a few per cent either way.
pub const UNDER: f64 = 0.95;
/// The cap on the way down is lifted once the kiosk's estimate of the way up has stood this many
/// times over it ...
pub const LIFT_OVER: f64 = 1.5;
/// ... for this long (the controller's probes of its way up last a second or two).
pub const LIFT_AFTER: Duration = Duration::from_secs(5);
/// A cap on the way down that nothing has measured again for this long is lifted: on a line whose
/// ways differ the kiosk's own estimate says nothing of the way down, and a queue left by other
/// traffic must not cap a whole consultation. On a steady link it costs one queue this often.
pub const HELD_FOR: Duration = Duration::from_secs(300);
/// A measurement this much under the cap said last is said at once, not at [`CAP_EVERY`]'s pace.
const SAY_AT_ONCE: f64 = 0.9;
/// How many times the lift is said (one lost on a lossy link must not leave the cap in place:
/// Chromium keeps the last receiver estimate it was given).
const LIFT_TIMES: u8 = 3;

/// What the call shows now, for [`PeerCap::tick`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// The call is sound only (the link's choice or the nurse's).
    pub sound_only: bool,
    /// The limit the newest queue standing on the down link measured (the most it did), and when
    /// (`crate::down_link::DownLink::newest_limit`).
    pub down_limit: Option<(Instant, f64)>,
    /// The kiosk's estimate of the way up, bits per second.
    pub up_bps: f64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct PeerCap {
    /// When a REMB was last asked for, and what it said.
    last: Option<(Instant, f64)>,
    /// Lifts still to say after a cap.
    lifts_due: u8,
    /// The cap on the way down the down link's measurement set ...
    link: Option<f64>,
    /// ... and when the newest measurement taken was made (kept after a lift, so the same one
    /// does not set the cap again).
    taken: Option<Instant>,
    /// Since when the kiosk's estimate of the way up has stood [`LIFT_OVER`] times over the cap.
    up_over_since: Option<Instant>,
}

impl PeerCap {
    /// A REMB to send now, bits per second, if one is due: while sound only,
    /// [`SOUND_ONLY_CAP_BPS`]; else, once the down link has measured its limit, [`UNDER`] of it;
    /// each every [`CAP_EVERY`]. After a cap, [`LIFTED_BPS`] a few times at that pace; nothing on
    /// a call never capped.
    pub fn tick(&mut self, now: Instant, seen: Seen) -> Option<f64> {
        if let Some((at, limit)) = seen.down_limit {
            // Each measurement once (a lifted cap is not set again by the one it was set by): a
            // new one replaces the cap, lower or higher.
            if self.taken.is_none_or(|taken| at > taken) && limit.is_finite() && limit > 0.0 {
                self.taken = Some(at);
                self.link = Some(limit * UNDER);
                self.up_over_since = None;
            }
        }
        if let (Some(cap), Some(measured)) = (self.link, self.taken) {
            if seen.up_bps >= cap * LIFT_OVER {
                let since = *self.up_over_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= LIFT_AFTER {
                    self.link = None;
                }
            } else {
                self.up_over_since = None;
            }
            if now.saturating_duration_since(measured) >= HELD_FOR {
                self.link = None;
            }
        }
        let cap = if seen.sound_only {
            Some(self.link.map_or(SOUND_ONLY_CAP_BPS, |c| c.min(SOUND_ONLY_CAP_BPS)))
        } else {
            self.link
        };
        let due = match self.last {
            None => true,
            Some((_, said)) if cap.is_some_and(|c| c <= said * SAY_AT_ONCE) => true,
            Some((at, _)) => now.saturating_duration_since(at) >= CAP_EVERY,
        };
        if !due {
            return None;
        }
        let say = match cap {
            Some(c) => {
                self.lifts_due = LIFT_TIMES;
                c
            }
            None if self.lifts_due > 0 => {
                self.lifts_due -= 1;
                LIFTED_BPS
            }
            None => return None,
        };
        self.last = Some((now, say));
        Some(say)
    }

    /// The cap on the way down the down link's measurement set, if one holds (bits per second).
    pub fn link_cap(&self) -> Option<f64> {
        self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each REMB `tick` says over `secs` (polled every 100 ms), with `seen` as given for each
    /// poll's time.
    fn said(cap: &mut PeerCap, t: &mut Instant, secs: u32, seen: impl Fn(Instant) -> Seen) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..secs * 10 {
            *t += Duration::from_millis(100);
            out.extend(cap.tick(*t, seen(*t)));
        }
        out
    }

    fn plain(sound_only: bool) -> impl Fn(Instant) -> Seen {
        move |_| Seen { sound_only, ..Seen::default() }
    }

    #[test]
    fn a_call_never_sound_only_nor_queued_caps_nothing() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        assert!(said(&mut cap, &mut t, 30, plain(false)).is_empty());
    }

    /// Issue #12: while sound only, the browser is told the voice's need once a second; after
    /// it, the cap is lifted three times, then nothing more is said.
    #[test]
    fn issue_12_sound_only_caps_the_peer_at_its_voices_need_and_lifts_it_after() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        assert_eq!(said(&mut cap, &mut t, 5, plain(true)), vec![SOUND_ONLY_CAP_BPS; 5]);
        assert_eq!(said(&mut cap, &mut t, 10, plain(false)), vec![LIFTED_BPS; 3]);
        assert!(said(&mut cap, &mut t, 10, plain(false)).is_empty());
        assert_eq!(said(&mut cap, &mut t, 1, plain(true)), vec![SOUND_ONLY_CAP_BPS], "capped again");
    }

    /// Issue #12: Chromium's estimate of the way down went past the prison link every ~15 s and
    /// queued it 100-200 ms. Once the down link's queue has measured the link (here 440 kbit/s,
    /// as the prison profile's start-up queue measures it), the browser is capped under it, once a
    /// second for as long as the kiosk's own way up shows no more room.
    #[test]
    fn issue_12_a_measured_down_link_caps_the_peer_under_its_rate() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        let t0 = t;
        assert!(said(&mut cap, &mut t, 6, |_| Seen { up_bps: 450_000.0, ..Seen::default() }).is_empty());
        let measured = Some((t, 440_000.0));
        let seen = |_| Seen { down_limit: measured, up_bps: 450_000.0, ..Seen::default() };
        let out = said(&mut cap, &mut t, 60, seen);
        assert_eq!(out, vec![440_000.0 * UNDER; 60], "at once, then each second");
        assert_eq!(cap.link_cap(), Some(440_000.0 * UNDER));
        // Sound only meanwhile: the voice's cap, then the link's again.
        assert_eq!(
            said(&mut cap, &mut t, 2, |_| Seen { sound_only: true, down_limit: measured, up_bps: 450_000.0 }),
            [SOUND_ONLY_CAP_BPS; 2]
        );
        assert_eq!(said(&mut cap, &mut t, 2, seen), vec![440_000.0 * UNDER; 2]);
        assert!(t - t0 < HELD_FOR);
    }

    /// A queue later (the link fell, or other traffic on it) measures it again: the cap follows
    /// the newest measurement, a lower one said at once.
    #[test]
    fn the_cap_follows_the_newest_measurement() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        let first = Some((t, 1_900_000.0));
        said(&mut cap, &mut t, 10, |_| Seen { down_limit: first, up_bps: 1_000_000.0, ..Seen::default() });
        // The step profile's fall: 300 kbit/s measured 50 ms after the last REMB.
        t += Duration::from_millis(50);
        let fell = Some((t, 280_000.0));
        assert_eq!(
            cap.tick(t, Seen { down_limit: fell, up_bps: 300_000.0, ..Seen::default() }),
            Some(280_000.0 * UNDER)
        );
        assert_eq!(cap.link_cap(), Some(280_000.0 * UNDER));
    }

    /// Issue #12: the step profile rises again (300 kbit/s to 2 Mbit/s both ways). The way down
    /// shows nothing while the browser is held under the cap; the kiosk's own estimate of the way
    /// up, standing 1.5 times over the cap for five seconds, lifts it (three times said).
    #[test]
    fn issue_12_the_cap_is_lifted_when_the_way_up_shows_room() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        let measured = Some((t, 280_000.0));
        let capped = 280_000.0 * UNDER;
        let seen = |up_bps| move |_| Seen { down_limit: measured, up_bps, ..Seen::default() };
        assert_eq!(said(&mut cap, &mut t, 5, seen(250_000.0)), vec![capped; 5]);
        // A probe of the way up over the mark for two seconds: no lift.
        assert_eq!(said(&mut cap, &mut t, 2, seen(capped * 2.0)), vec![capped; 2]);
        assert_eq!(said(&mut cap, &mut t, 2, seen(250_000.0)), vec![capped; 2]);
        // The link rose: the way up's estimate climbs past the mark and stays.
        let out = said(&mut cap, &mut t, 10, seen(capped * 1.6));
        assert_eq!(out[..5], [capped; 5], "{out:?}");
        assert_eq!(out[5..], [LIFTED_BPS; 3], "{out:?}");
        assert_eq!(cap.link_cap(), None);
        // A new queue caps again.
        let again = Some((t, 1_800_000.0));
        assert_eq!(
            said(&mut cap, &mut t, 1, |_| Seen { down_limit: again, up_bps: 1_000_000.0, ..Seen::default() }),
            [1_800_000.0 * UNDER]
        );
    }

    /// A cap nothing has measured again for [`HELD_FOR`] is lifted, whatever the way up shows.
    #[test]
    fn a_cap_not_measured_again_lapses() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        let measured = Some((t, 1_000_000.0));
        let seen = |_| Seen { down_limit: measured, up_bps: 200_000.0, ..Seen::default() };
        let out = said(&mut cap, &mut t, u32::try_from(HELD_FOR.as_secs()).unwrap_or(u32::MAX) + 5, seen);
        let capped = out.iter().filter(|b| **b == 1_000_000.0 * UNDER).count();
        assert!((299..=301).contains(&capped), "{capped}");
        assert_eq!(out[capped..], [LIFTED_BPS; 3]);
    }
}
