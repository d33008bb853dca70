//! The most the kiosk tells the consultant's browser to send while the call is sound only: a
//! receiver's estimate of the link (REMB), which caps the browser's own congestion controller.
//! Pure (time and the call's state in, a bitrate to send out); the voice's receive task sends it.
//!
//! Why: told to stop its video (sound only), Chromium still kept its estimate of the way down and
//! padded up to it, no frames sent: on the audio-only profile (64 kbit/s) its estimate climbed to
//! 113 kbit/s and it sent 37-84 kbit/s of padding for a second at a time, which queued the link
//! 1.2 s and took the prisoner's hearing of the consultant to 100 % concealed for two seconds
//! (issue #12). Capped at what its voice needs, the padding has no room.

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
/// How many times the lift is said (one lost on a lossy link must not leave the cap in place:
/// Chromium keeps the last receiver estimate it was given).
const LIFT_TIMES: u8 = 3;

/// See the module docs.
#[derive(Debug, Default)]
pub struct PeerCap {
    /// When a REMB was last asked for.
    last: Option<Instant>,
    /// Lifts still to say after a cap.
    lifts_due: u8,
}

impl PeerCap {
    /// A REMB to send now, bits per second, if one is due: while `sound_only`,
    /// [`SOUND_ONLY_CAP_BPS`] every [`CAP_EVERY`]; after it, [`LIFTED_BPS`] a few times at that
    /// pace; nothing on a call never capped.
    pub fn tick(&mut self, now: Instant, sound_only: bool) -> Option<f64> {
        if !sound_only && self.lifts_due == 0 {
            return None;
        }
        if self.last.is_some_and(|at| now.saturating_duration_since(at) < CAP_EVERY) {
            return None;
        }
        self.last = Some(now);
        if sound_only {
            self.lifts_due = LIFT_TIMES;
            Some(SOUND_ONLY_CAP_BPS)
        } else {
            self.lifts_due -= 1;
            Some(LIFTED_BPS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each second of `secs`, what `tick` says (polled every 100 ms).
    fn said(cap: &mut PeerCap, t: &mut Instant, secs: u32, sound_only: bool) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..secs * 10 {
            *t += Duration::from_millis(100);
            out.extend(cap.tick(*t, sound_only));
        }
        out
    }

    #[test]
    fn a_call_never_sound_only_caps_nothing() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        assert!(said(&mut cap, &mut t, 30, false).is_empty());
    }

    /// Issue #12: while sound only, the browser is told the voice's need once a second; after
    /// it, the cap is lifted three times, then nothing more is said.
    #[test]
    fn issue_12_sound_only_caps_the_peer_at_its_voices_need_and_lifts_it_after() {
        let (mut cap, mut t) = (PeerCap::default(), Instant::now());
        assert_eq!(said(&mut cap, &mut t, 5, true), vec![SOUND_ONLY_CAP_BPS; 5]);
        assert_eq!(said(&mut cap, &mut t, 10, false), vec![LIFTED_BPS; 3]);
        assert!(said(&mut cap, &mut t, 10, false).is_empty());
        assert_eq!(said(&mut cap, &mut t, 1, true), vec![SOUND_ONLY_CAP_BPS], "capped again");
    }
}
