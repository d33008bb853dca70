//! What the last call learnt of the link, so the next one starts where it settled: the laptop stays
//! at one prison, and its link does not change from one call to the next.
//!
//! Without it every call starts at [`INITIAL_BPS`] and learns the link by overfilling it: on the
//! audio-only profile (64 kbit/s) video started at 320x240 beside the voice, the link queued 1.3 s
//! both ways and the consultant's voice was 51-88 % concealed for ~4 s until the estimate fell and
//! the call went sound only, ~14 s in (issue #12). rtc 0.21's controller cannot probe the link
//! before video starts as libwebrtc does; the link's own record can stand in for the probe.
//!
//! Only ever a lower start: a link that did better last time still starts at [`INITIAL_BPS`]
//! (the controller climbs from there), and a link that has recovered since is climbed back to.

use crate::estimate::{INITIAL_BPS, MIN_BPS};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The span of the call's end whose estimate is remembered.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(60);
/// How often the estimate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Fewer samples than this (a call shorter than ~20 s) teach nothing: the estimate is still
/// finding the link.
pub const MIN_SAMPLES: usize = 20;
/// A record older than this is ignored: the link may have changed (a new line, a new router).
pub const FORGET_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);

/// The estimate over a call, sampled once a second: what it settled at (pure; time comes in).
#[derive(Debug, Default, Clone)]
pub struct Settled {
    samples: VecDeque<(Instant, f64)>,
}

impl Settled {
    /// The controller's target at `now` (called as often as convenient; kept once a second).
    pub fn observe(&mut self, now: Instant, target_bps: f64) {
        if !target_bps.is_finite()
            || self.samples.back().is_some_and(|(t, _)| now.saturating_duration_since(*t) < SAMPLE_EVERY)
        {
            return;
        }
        self.samples.push_back((now, target_bps));
        while self.samples.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > SETTLE_WINDOW) {
            self.samples.pop_front();
        }
    }

    /// The median target over the call's last [`SETTLE_WINDOW`], once there are
    /// [`MIN_SAMPLES`]: the median, so a dip (an outage, a burst of someone else's traffic) or a
    /// climb the link then refused does not count.
    pub fn bps(&self) -> Option<f64> {
        if self.samples.len() < MIN_SAMPLES {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().map(|(_, b)| *b).collect();
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// Where the controller starts given what was remembered: lower than [`INITIAL_BPS`] only.
pub fn start_bps(remembered: Option<f64>) -> f64 {
    remembered.filter(|b| b.is_finite()).map_or(INITIAL_BPS, |b| b.clamp(MIN_BPS, INITIAL_BPS))
}

/// The file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Record {
    /// What the last call's estimate settled at, bits per second.
    settled_bps: f64,
    /// When, seconds since the Unix epoch.
    at_unix: u64,
}

/// The record on disk (nothing secret: a bitrate and a time).
#[derive(Debug, Clone)]
pub struct LinkMemory {
    path: PathBuf,
}

impl LinkMemory {
    /// The record at `path` (in the kiosk's data directory).
    pub fn at(path: PathBuf) -> Self {
        LinkMemory { path }
    }

    /// What the last call settled at, if it is there, readable and recent. Anything else (no
    /// file, garbled, from the future or older than [`FORGET_AFTER`]) starts as a first call.
    pub fn load(&self, now: SystemTime) -> Option<f64> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(error = %e, "the link's record cannot be read; starting as on a new link");
                return None;
            }
        };
        let record: Record = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the link's record is garbled; starting as on a new link");
                return None;
            }
        };
        let now_unix = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let age = now_unix.checked_sub(record.at_unix).map(Duration::from_secs);
        match age {
            Some(age) if age <= FORGET_AFTER && record.settled_bps.is_finite() && record.settled_bps > 0.0 => {
                Some(record.settled_bps)
            }
            _ => None,
        }
    }

    /// Remembers `settled_bps` as of `now` (crash-safe: the old record or the new one).
    pub fn store(&self, settled_bps: f64, now: SystemTime) -> Result<(), sc_core::Error> {
        let at_unix = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let bytes = serde_json::to_vec(&Record { settled_bps, at_unix })
            .map_err(|e| sc_core::Error::Corrupt { what: "the link's record", why: e.to_string() })?;
        sc_core::atomic::write(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_a_call_remembers_the_median_of_its_last_minute() {
        let t0 = Instant::now();
        let mut s = Settled::default();
        // 30 s climbing to 400 kbit/s, then 90 s at 60 with a two-second spike.
        for i in 0..120u64 {
            let bps = if i < 30 {
                250_000.0 + i as f64 * 5_000.0
            } else if i == 100 || i == 101 {
                900_000.0
            } else {
                60_000.0
            };
            for k in 0..30 {
                s.observe(t0 + Duration::from_millis(i * 1000 + k * 33), bps);
            }
        }
        assert_eq!(s.bps(), Some(60_000.0), "the last minute's median, the spike and the climb left out");
        let mut short = Settled::default();
        for i in 0..(MIN_SAMPLES as u64 - 1) {
            short.observe(t0 + Duration::from_secs(i), 60_000.0);
        }
        assert_eq!(short.bps(), None, "a call too short to have found the link teaches nothing");
    }

    #[test]
    fn issue_12_the_start_is_only_ever_lowered() {
        assert_eq!(start_bps(None), INITIAL_BPS);
        assert_eq!(start_bps(Some(60_000.0)), 60_000.0);
        assert_eq!(start_bps(Some(1_200_000.0)), INITIAL_BPS, "a good link starts as before");
        assert_eq!(start_bps(Some(1.0)), MIN_BPS);
        assert_eq!(start_bps(Some(f64::NAN)), INITIAL_BPS);
    }

    #[test]
    fn issue_12_the_record_survives_a_restart_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let memory = LinkMemory::at(dir.path().join("link.json"));
        let now = SystemTime::now();
        assert_eq!(memory.load(now), None, "no record: a first call");
        memory.store(64_000.0, now).expect("store");
        assert_eq!(LinkMemory::at(dir.path().join("link.json")).load(now), Some(64_000.0));
        assert_eq!(memory.load(now + FORGET_AFTER + Duration::from_secs(1)), None, "too old");
        assert_eq!(memory.load(now - Duration::from_secs(3600)), None, "from the future");
        for garbled in [&b"{\"settled_bps\": 1"[..], b"\xff\x00", b"{\"settled_bps\": -5, \"at_unix\": 1}", b""] {
            std::fs::write(dir.path().join("link.json"), garbled).expect("write");
            assert_eq!(memory.load(now), None, "{garbled:?}");
        }
    }
}
