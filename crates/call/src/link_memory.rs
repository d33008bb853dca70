//! What the last call learnt of the link, so the next one starts from it: the laptop stays at
//! one prison, and its link does not change from one call to the next.
//!
//! Without it every call starts at `estimate::INITIAL_BPS` and learns the link by overfilling it:
//! on the audio-only profile (64 kbit/s) video started at 320x240 beside the voice, the link
//! queued 1.3 s both ways and the consultant's voice was 51-88 % concealed for ~4 s until the
//! estimate fell and the call went sound only, ~14 s in (issue #12). rtc 0.21's controller cannot probe the link
//! before video starts as libwebrtc does; the link's own record stands in for the probe.
//!
//! What is kept is the link's limit as a standing queue measured it (`crate::estimate`: what
//! arrived while the queue stood). The next call starts under it (`estimate::start_bps`, never
//! above `estimate::INITIAL_BPS`), and its estimate knows it as a limit a queue showed at the
//! start (`estimate::REMEMBERED_FOR`): on a lossy link the estimate stays near it, then climbs from
//! it by the ramp, not to `estimate::CAP_FLOOR_BPS` at once (a call
//! starting sound only on the audio-only profile, with nothing to show the limit, was tried with
//! video at 200 kbit/s 30 s in). A record is kept as measured: a call that meets no queue leaves
//! it, and its age, as they were, so a link that has since got better forgets it after
//! [`FORGET_AFTER`].

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A record older than this is ignored: the link may have changed (a new line, a new router).
pub const FORGET_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);

/// What is remembered of a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// The link's limit a standing queue measured, bits per second.
    pub limit_bps: f64,
    /// When it was measured, seconds since the Unix epoch.
    pub at_unix: u64,
}

/// What to keep after a call that started from `before` and whose estimate measured `measured`
/// (the limit of its last standing queue), at `now`: the new measurement, else the old record
/// unchanged (its age included).
pub fn after_call(before: Option<Remembered>, measured: Option<f64>, now: SystemTime) -> Option<Remembered> {
    match measured.filter(|b| b.is_finite() && *b > 0.0) {
        Some(limit_bps) => Some(Remembered { limit_bps, at_unix: unix(now) }),
        None => before,
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
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

    /// The record, if it is there, readable and recent. Anything else (no file, garbled, from the
    /// future or older than [`FORGET_AFTER`]) starts as on a new link.
    pub fn load(&self, now: SystemTime) -> Option<Remembered> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(error = %e, "the link's record cannot be read; starting as on a new link");
                return None;
            }
        };
        let record: Remembered = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the link's record is garbled; starting as on a new link");
                return None;
            }
        };
        let age = unix(now).checked_sub(record.at_unix).map(Duration::from_secs);
        let usable = record.limit_bps.is_finite() && record.limit_bps > 0.0;
        (usable && age.is_some_and(|a| a <= FORGET_AFTER)).then_some(record)
    }

    /// Keeps `record` (crash-safe: the old record or the new one).
    pub fn store(&self, record: Remembered) -> Result<(), sc_core::Error> {
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| sc_core::Error::Corrupt { what: "the link's record", why: e.to_string() })?;
        sc_core::atomic::write(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_a_call_keeps_what_it_measured_or_else_the_record_as_it_was() {
        let (then, now) = (SystemTime::UNIX_EPOCH + Duration::from_secs(1000), SystemTime::now());
        let old = Remembered { limit_bps: 57_000.0, at_unix: 1000 };
        assert_eq!(after_call(Some(old), None, now), Some(old), "no queue met: the record and its age stay");
        assert_eq!(after_call(Some(old), Some(f64::NAN), now), Some(old));
        assert_eq!(after_call(None, None, then), None);
        assert_eq!(
            after_call(Some(old), Some(420_000.0), now),
            Some(Remembered { limit_bps: 420_000.0, at_unix: unix(now) }),
            "a new measurement replaces it"
        );
    }

    #[test]
    fn issue_12_the_record_survives_a_restart_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let memory = LinkMemory::at(dir.path().join("link.json"));
        let now = SystemTime::now();
        assert_eq!(memory.load(now), None, "no record: a new link");
        let record = Remembered { limit_bps: 64_000.0, at_unix: unix(now) };
        memory.store(record).expect("store");
        assert_eq!(LinkMemory::at(dir.path().join("link.json")).load(now), Some(record));
        assert_eq!(memory.load(now + FORGET_AFTER + Duration::from_secs(1)), None, "too old");
        assert_eq!(memory.load(now - Duration::from_secs(3600)), None, "from the future");
        for garbled in [&b"{\"limit_bps\": 1"[..], b"\xff\x00", b"{\"limit_bps\": -5, \"at_unix\": 1}", b""] {
            std::fs::write(dir.path().join("link.json"), garbled).expect("write");
            assert_eq!(memory.load(now), None, "{garbled:?}");
        }
    }
}
