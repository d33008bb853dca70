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
//!
//! A link no queue has measured is remembered too, as clear up to what a call carried on it: with
//! nothing known, the kiosk's picture waits `estimate::DOWN_WATCH` (2.5 s) for the consultant's
//! start to show a slow down link, and on a good link, which never queues, every call's picture
//! started that late (`estimate::LinkEstimate::video_may_start`). A clear link that has since got
//! worse costs one call's start: its picture starts at once, and the queue it meets is kept as the
//! link's limit.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A record older than this is ignored: the link may have changed (a new line, a new router).
pub const FORGET_AFTER: Duration = Duration::from_secs(14 * 24 * 3600);

/// What a call learnt of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Known {
    /// The link's limit, as a standing queue measured it (what arrived while it stood), bits per
    /// second.
    Limit(f64),
    /// No queue stood while the call carried this much (the most the receiver acknowledged over a
    /// second), bits per second: the link has room for at least that.
    Clear(f64),
}

impl Known {
    /// The limit, if a queue measured one.
    pub fn limit_bps(self) -> Option<f64> {
        match self {
            Known::Limit(bps) => Some(bps),
            Known::Clear(_) => None,
        }
    }
}

/// What is remembered of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remembered {
    /// What was learnt.
    pub known: Known,
    /// When it was measured, seconds since the Unix epoch.
    pub at_unix: u64,
}

/// The record as written: a limit (the only field before clear links were kept), or what a
/// clear link carried.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit_bps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clear_bps: Option<f64>,
    at_unix: u64,
}

impl Record {
    /// The record's meaning; `None` for one without a usable rate.
    fn parse(self) -> Option<Remembered> {
        let usable = |b: &f64| b.is_finite() && *b > 0.0;
        let known = match (self.limit_bps.filter(usable), self.clear_bps.filter(usable)) {
            (Some(limit), _) => Known::Limit(limit),
            (None, Some(clear)) => Known::Clear(clear),
            (None, None) => return None,
        };
        Some(Remembered { known, at_unix: self.at_unix })
    }

    fn from(r: Remembered) -> Self {
        let (limit_bps, clear_bps) = match r.known {
            Known::Limit(b) => (Some(b), None),
            Known::Clear(b) => (None, Some(b)),
        };
        Record { limit_bps, clear_bps, at_unix: r.at_unix }
    }
}

/// What to keep after a call that started from `before`, whose estimate measured `measured` (the
/// limit of its last standing queue) and, with no queue, carried `carried`, at `now`: a new limit;
/// else, unless a limit is remembered, the link as clear up to what this call carried, if that is
/// more than the record says (a call that sent little, sound only, shows nothing against a
/// clear link); else the old record unchanged (its age included: a link that has since got better
/// forgets its limit after [`FORGET_AFTER`]).
pub fn after_call(
    before: Option<Remembered>,
    measured: Option<f64>,
    carried: Option<f64>,
    now: SystemTime,
) -> Option<Remembered> {
    let usable = |b: &f64| b.is_finite() && *b > 0.0;
    let at_unix = unix(now);
    match (measured.filter(usable), carried.filter(usable), before) {
        (Some(limit), _, _) => Some(Remembered { known: Known::Limit(limit), at_unix }),
        (None, Some(clear), None) => Some(Remembered { known: Known::Clear(clear), at_unix }),
        (None, Some(clear), Some(Remembered { known: Known::Clear(was), .. })) if clear >= was => {
            Some(Remembered { known: Known::Clear(clear), at_unix })
        }
        (None, _, before) => before,
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
        let record = match serde_json::from_slice::<Record>(&bytes).map(Record::parse) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::warn!("the link's record holds no rate; starting as on a new link");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the link's record is garbled; starting as on a new link");
                return None;
            }
        };
        let age = unix(now).checked_sub(record.at_unix).map(Duration::from_secs);
        age.is_some_and(|a| a <= FORGET_AFTER).then_some(record)
    }

    /// Keeps `record` (crash-safe: the old record or the new one).
    pub fn store(&self, record: Remembered) -> Result<(), sc_core::Error> {
        let bytes = serde_json::to_vec(&Record::from(record))
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
        let old = Remembered { known: Known::Limit(57_000.0), at_unix: 1000 };
        assert_eq!(after_call(Some(old), None, None, now), Some(old), "no queue met: the record and its age stay");
        assert_eq!(after_call(Some(old), Some(f64::NAN), None, now), Some(old));
        assert_eq!(
            after_call(Some(old), None, Some(900_000.0), now),
            Some(old),
            "a limit is not forgotten for a call that met no queue (it may have been held under it)"
        );
        assert_eq!(after_call(None, None, None, then), None);
        assert_eq!(
            after_call(Some(old), Some(420_000.0), Some(900_000.0), now),
            Some(Remembered { known: Known::Limit(420_000.0), at_unix: unix(now) }),
            "a new measurement replaces it"
        );
    }

    #[test]
    fn issue_12_a_call_that_meets_no_queue_keeps_the_link_as_clear_up_to_what_it_carried() {
        let now = SystemTime::now();
        let clear = |bps: f64| Some(Remembered { known: Known::Clear(bps), at_unix: unix(now) });
        assert_eq!(after_call(None, None, Some(1_200_000.0), now), clear(1_200_000.0), "a new link, found clear");
        let older = Remembered { known: Known::Clear(800_000.0), at_unix: 1000 };
        assert_eq!(after_call(Some(older), None, Some(1_200_000.0), now), clear(1_200_000.0), "more carried");
        assert_eq!(after_call(Some(older), None, Some(40_000.0), now), Some(older), "a call that sent little");
        assert_eq!(after_call(Some(older), None, Some(f64::INFINITY), now), Some(older), "no usable rate");
        assert_eq!(
            after_call(Some(older), Some(300_000.0), Some(800_000.0), now),
            Some(Remembered { known: Known::Limit(300_000.0), at_unix: unix(now) }),
            "a queue's limit wins"
        );
    }

    #[test]
    fn issue_12_the_record_survives_a_restart_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let memory = LinkMemory::at(dir.path().join("link.json"));
        let now = SystemTime::now();
        assert_eq!(memory.load(now), None, "no record: a new link");
        for known in [Known::Limit(64_000.0), Known::Clear(1_300_000.0)] {
            let record = Remembered { known, at_unix: unix(now) };
            memory.store(record).expect("store");
            assert_eq!(LinkMemory::at(dir.path().join("link.json")).load(now), Some(record));
            assert_eq!(memory.load(now + FORGET_AFTER + Duration::from_secs(1)), None, "too old");
            assert_eq!(memory.load(now - Duration::from_secs(3600)), None, "from the future");
        }
        // A record written before clear links were kept reads as it did.
        std::fs::write(dir.path().join("link.json"), format!("{{\"limit_bps\":57000.0,\"at_unix\":{}}}", unix(now)))
            .expect("write");
        assert_eq!(memory.load(now), Some(Remembered { known: Known::Limit(57_000.0), at_unix: unix(now) }));
        // Recent, so each is refused for what it holds, not for its age.
        let at = unix(now);
        for garbled in [
            "{\"limit_bps\": 1".to_owned(),
            format!("{{\"limit_bps\": -5, \"at_unix\": {at}}}"),
            format!("{{\"clear_bps\": 0, \"at_unix\": {at}}}"),
            format!("{{\"at_unix\": {at}}}"),
            String::new(),
        ] {
            std::fs::write(dir.path().join("link.json"), &garbled).expect("write");
            assert_eq!(memory.load(now), None, "{garbled:?}");
        }
        std::fs::write(dir.path().join("link.json"), [0xff, 0x00]).expect("write");
        assert_eq!(memory.load(now), None, "not text");
    }
}
