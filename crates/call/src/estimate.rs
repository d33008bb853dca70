//! The link's estimate where the encoders can read it. The congestion controller (rtc's Google
//! Congestion Control over transport-wide feedback) lives boxed inside the interceptor chain, so it
//! is wrapped: every time it updates, its target bitrate and the loss it measured are published
//! to atomics the call's encoder threads read.

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where the controller starts: a prison link's typical rate, so the first seconds neither flood
/// a poor link nor starve a good one.
pub const INITIAL_BPS: f64 = 500_000.0;
/// The least it goes to: voice and the lowest video rung.
pub const MIN_BPS: f64 = 40_000.0;
/// The most the kiosk ever sends (the top rung and the voice, with room for keyframes).
pub const MAX_BPS: f64 = 1_600_000.0;

/// The published estimate, shared between the chain and the encoders.
#[derive(Debug, Clone, Default)]
pub struct LinkEstimate {
    target_bps: Arc<AtomicU64>,
    loss: Arc<AtomicU64>,
}

impl LinkEstimate {
    /// A fresh estimate at [`INITIAL_BPS`] with no loss seen.
    pub fn new() -> Self {
        let e = LinkEstimate::default();
        e.target_bps.store(INITIAL_BPS.to_bits(), Ordering::Relaxed);
        e
    }

    /// The controller's target, bits per second.
    pub fn target_bps(&self) -> f64 {
        f64::from_bits(self.target_bps.load(Ordering::Relaxed))
    }

    /// The loss it measured (0..1).
    pub fn loss(&self) -> f64 {
        f64::from_bits(self.loss.load(Ordering::Relaxed))
    }

    /// Google Congestion Control, publishing here.
    pub fn controller(&self) -> Published<Gcc> {
        Published { inner: Gcc::new(INITIAL_BPS, MIN_BPS, MAX_BPS), out: self.clone() }
    }
}

/// An estimator that publishes what it estimates.
#[derive(Debug)]
pub struct Published<E> {
    inner: E,
    out: LinkEstimate,
}

impl<E: BandwidthEstimator> Published<E> {
    fn publish(&self) {
        let target = self.inner.target_bitrate();
        if target.is_finite() {
            self.out.target_bps.store(target.to_bits(), Ordering::Relaxed);
        }
        if let Some(loss) = self.inner.stats().packet_loss.filter(|l| l.is_finite()) {
            self.out.loss.store(loss.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for Published<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_starts_where_the_controller_starts_and_follows_it() {
        let shared = LinkEstimate::new();
        assert_eq!(shared.target_bps(), INITIAL_BPS);
        assert_eq!(shared.loss(), 0.0);
        let mut c = shared.controller();
        assert_eq!(c.target_bitrate(), INITIAL_BPS);
        // No news keeps the estimate; the published value is the controller's own.
        c.on_reports(Instant::now(), &[]);
        assert_eq!(shared.target_bps(), c.target_bitrate());
    }
}
