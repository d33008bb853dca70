//! Refusals nobody authenticated made (unknown devices, forged signatures, replays, junk polls,
//! made-up user names) are counted here, not written one row each: the audit log gets one row a
//! minute at most, saying how many of each, so a flood cannot grow the log or put its text in it.

use crate::audit::{self, Reason};
use crate::conn::Conn;
use crate::Error;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How often the counts are written out, at most.
pub const FLUSH_SECS: i64 = 60;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When the counts were last written (or first noted).
    since: Option<i64>,
    /// Per (event, reason): both are the server's own words, so the map is bounded.
    counts: BTreeMap<(&'static str, &'static str), u64>,
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counts are plain numbers: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one refusal of `event` for `reason`; writes the counts out when a minute has passed.
    pub fn note(&self, c: &Conn<'_>, now: i64, event: &'static str, reason: Reason) -> Result<(), Error> {
        let due = {
            let mut inner = self.lock();
            *inner.counts.entry((event, reason.as_str())).or_default() += 1;
            let since = *inner.since.get_or_insert(now);
            now.saturating_sub(since) >= FLUSH_SECS
        };
        if due {
            self.flush(c, now)?;
        }
        Ok(())
    }

    /// How many of `event` for `reason` are counted and not yet written.
    pub fn pending(&self, event: &str, reason: &str) -> u64 {
        self.lock().counts.iter().filter(|((e, r), _)| *e == event && *r == reason).map(|(_, n)| n).sum()
    }

    /// Writes the counts as one audit row (`anonymous_refusals`, detail `event/reason=n ...`), if
    /// there are any. Called when a minute has passed, before IT reads the log, and at shutdown.
    pub fn flush(&self, c: &Conn<'_>, now: i64) -> Result<(), Error> {
        let counts = {
            let mut inner = self.lock();
            inner.since = Some(now);
            std::mem::take(&mut inner.counts)
        };
        if counts.is_empty() {
            return Ok(());
        }
        let detail = counts.iter().map(|((e, r), n)| format!("{e}/{r}={n}")).collect::<Vec<_>>().join(" ");
        let entry = audit::Entry {
            event: "anonymous_refusals",
            outcome: "refused",
            detail: Some(detail),
            ..Default::default()
        };
        if let Err(e) = audit::record(c, now, &entry) {
            // Put them back: counted refusals are not lost to a failed write.
            let mut inner = self.lock();
            for (k, n) in counts {
                *inner.counts.entry(k).or_default() += n;
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_row_a_minute() {
        let store = crate::db::open_in_memory().expect("db");
        let c = store.conn();
        let t = Tally::default();
        let start = 1_800_000_000;
        for i in 0..10_000 {
            t.note(&c, start + i / 500, "hello", Reason::BadSignature).expect("note");
        }
        // 10 000 refusals over 20 s: nothing written yet, all counted.
        assert_eq!(t.pending("hello", "bad_signature"), 10_000);
        assert!(audit::tail(&c, 10).expect("tail").is_empty());
        t.note(&c, start + 61, "activate", Reason::UnknownDevice).expect("note");
        let rows = audit::tail(&c, 10).expect("tail");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event, "anonymous_refusals");
        assert_eq!(rows[0].detail.as_deref(), Some("activate/unknown_device=1 hello/bad_signature=10000"));
        assert_eq!(t.pending("hello", "bad_signature"), 0);
        t.flush(&c, start + 62).expect("nothing to write");
        assert_eq!(audit::tail(&c, 10).expect("tail").len(), 1, "an empty tally writes nothing");
    }
}
