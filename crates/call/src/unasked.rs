//! Repairs the peer never asked for: a packet of the kiosk's own that the peer's transport-wide
//! feedback reports missing, and that no NACK of the peer's named, is resent as if one had.
//!
//! A NACK is one RTCP packet on a lossy link: on the prison profile (3 % each way) about one in
//! thirty of Chromium's was itself lost, and Chromium asks again only a round trip later (~190 ms),
//! so that repair reached it ~400 ms after the frame, past its ~190 ms jitter buffer: an isolated
//! freeze of the consultant's picture for each, ~4 a minute, about the rate measured (issue #12).
//! The transport feedback the congestion controller already reads names every packet that did not
//! arrive, and comes in a separate RTCP packet, so the two are seldom both lost. Chromium sends a
//! NACK the moment it sees a gap and its feedback on a timer after it: where the NACK came, the
//! feedback's report of the same loss is left alone.

use rtc::rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loss reported this long after the packet left is not resent: the frame it belonged to is
/// shown or given up by then (Chromium's video jitter buffer holds about a round trip), and after
/// an outage the first feedback names every packet sent into it.
pub(crate) const RESEND_LOST_WITHIN: Duration = Duration::from_millis(500);
/// How long a NACK naming a packet is remembered: the feedback reporting that packet missing comes
/// within it, and its repair is already on the way.
const NACKED_MEMORY: Duration = Duration::from_secs(1);
/// The most losses the feed holds unread; the oldest go first (a chain without a pacer to read
/// them must not grow it).
const FEED_LIMIT: usize = 256;

/// Packets the peer's feedback reported missing, from the congestion controller (which reads the
/// feedback) to the pacer (which hands requests for repair to the NACK responder). Both run in the
/// same interceptor chain; the lock is never contended.
#[derive(Debug, Clone, Default)]
pub(crate) struct LossFeed {
    lost: Arc<Mutex<VecDeque<(u32, u16)>>>,
    /// Packets asked for on the peer's behalf, for the call's statistics.
    asked: Arc<AtomicU64>,
    /// Repairs the pacer dropped as too old to help (`pacer::REPAIR_MAX_AGE`), for the same.
    too_old: Arc<AtomicU64>,
}

impl LossFeed {
    /// Packet `seq` of stream `ssrc` did not arrive.
    pub(crate) fn push(&self, ssrc: u32, seq: u16) {
        // A poisoned lock only means a panic elsewhere mid-push; the queue itself is whole.
        let mut q = crate::lock(&self.lost);
        if q.len() >= FEED_LIMIT {
            q.pop_front();
        }
        q.push_back((ssrc, seq));
    }

    /// Every loss reported since the last call, oldest first.
    pub(crate) fn take(&self) -> Vec<(u32, u16)> {
        let mut q = crate::lock(&self.lost);
        q.drain(..).collect()
    }

    /// `n` more packets were asked for on the peer's behalf.
    pub(crate) fn count_asked(&self, n: u64) {
        self.asked.fetch_add(n, Ordering::Relaxed);
    }

    /// One more repair dropped as too old to help.
    pub(crate) fn count_too_old(&self) {
        self.too_old.fetch_add(1, Ordering::Relaxed);
    }

    /// Repairs dropped as too old so far.
    pub(crate) fn too_old(&self) -> u64 {
        self.too_old.load(Ordering::Relaxed)
    }

    /// Packets asked for on the peer's behalf so far.
    pub(crate) fn asked(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }
}

/// Which reported losses no NACK has asked for. Pure: NACKs and losses in, requests out.
#[derive(Debug, Default)]
pub(crate) struct Unasked {
    /// (when, stream, packet) of every packet a NACK named within [`NACKED_MEMORY`].
    nacked: VecDeque<(Instant, u32, u16)>,
}

impl Unasked {
    /// The peer asked for `seqs` of `ssrc` at `now`.
    pub(crate) fn nacked(&mut self, now: Instant, ssrc: u32, seqs: impl IntoIterator<Item = u16>) {
        self.forget(now);
        self.nacked.extend(seqs.into_iter().map(|s| (now, ssrc, s)));
    }

    /// Requests for the packets in `lost` that no NACK named, one per stream, in the order the
    /// streams first appear.
    pub(crate) fn requests(&mut self, now: Instant, lost: &[(u32, u16)]) -> Vec<TransportLayerNack> {
        self.forget(now);
        let mut by_stream: Vec<(u32, Vec<u16>)> = Vec::new();
        for &(ssrc, seq) in lost {
            if self.nacked.iter().any(|&(_, s, q)| s == ssrc && q == seq) {
                continue;
            }
            match by_stream.iter_mut().find(|(s, _)| *s == ssrc) {
                Some((_, seqs)) if !seqs.contains(&seq) => seqs.push(seq),
                Some(_) => {}
                None => by_stream.push((ssrc, vec![seq])),
            }
        }
        by_stream
            .into_iter()
            .map(|(ssrc, seqs)| TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(&seqs),
            })
            .collect()
    }

    fn forget(&mut self, now: Instant) {
        while self.nacked.front().is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > NACKED_MEMORY) {
            self.nacked.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(requests: &[TransportLayerNack]) -> Vec<(u32, u16)> {
        requests.iter().flat_map(|n| n.nacks.iter().flat_map(|p| p.packet_list()).map(|s| (n.media_ssrc, s))).collect()
    }

    #[test]
    fn a_loss_no_nack_named_is_asked_for() {
        let t0 = Instant::now();
        let mut u = Unasked::default();
        u.nacked(t0, 2, [10, 11]);
        let r = u.requests(t0 + Duration::from_millis(60), &[(2, 10), (2, 12), (3, 12), (2, 30), (2, 12)]);
        assert_eq!(named(&r), vec![(2, 12), (2, 30), (3, 12)]);
        assert!(r.iter().all(|n| n.sender_ssrc == 0));
    }

    #[test]
    fn a_nack_is_forgotten_after_a_second() {
        let t0 = Instant::now();
        let mut u = Unasked::default();
        u.nacked(t0, 2, [10]);
        assert!(u.requests(t0 + NACKED_MEMORY, &[(2, 10)]).is_empty());
        assert_eq!(named(&u.requests(t0 + NACKED_MEMORY * 2, &[(2, 10)])), vec![(2, 10)]);
    }

    #[test]
    fn the_feed_keeps_the_newest_when_nobody_reads_it() {
        let feed = LossFeed::default();
        for seq in 0..(FEED_LIMIT as u16 + 10) {
            feed.push(2, seq);
        }
        let taken = feed.take();
        assert_eq!(taken.len(), FEED_LIMIT);
        assert_eq!(taken.first(), Some(&(2, 10)));
        assert!(feed.take().is_empty());
    }
}
