//! One outbound media stream: each frame packetized with the RTP timestamp of the instant it was
//! captured (the voice's wrapped in RED when the sending policy asks, `crate::red::Repeater`). The webrtc crate's sample track instead adds each sample's duration to the last
//! timestamp, so every frame skipped before or by the encoder (as on a poor link, many a second)
//! set the stream's clock back by a frame: measured on the prison profile, Chromium saw the
//! kiosk's frames arrive ever later than their timestamps said, grew its jitter buffer to ~0.5 s
//! and dropped up to a third of the frames as late.

use crate::Error;
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::packetizer::Packetizer;
use std::time::Instant;
use tokio::sync::Mutex;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// The largest RTP packet sent, as the webrtc crate's own sample track: room for SRTP, TURN's
/// channel header and IPv6 under a 1280-byte path MTU.
const MTU: usize = 1200;

/// Maps capture instants onto an RTP clock: the samples to advance the stream's timestamp by
/// before a frame captured at a given instant, so its timestamp is the first frame's plus the
/// time between them (rounded down to the clock, never drifting, never going back).
#[derive(Debug)]
pub(crate) struct RtpClock {
    rate: u32,
    first: Option<Instant>,
    /// Samples already advanced since the first frame.
    advanced: u64,
}

impl RtpClock {
    pub(crate) fn new(rate: u32) -> Self {
        RtpClock { rate, first: None, advanced: 0 }
    }

    /// The samples between the last frame's timestamp and that of a frame captured `at`; zero
    /// for the first frame, and for one captured no later than the last.
    pub(crate) fn advance(&mut self, at: Instant) -> u32 {
        let first = *self.first.get_or_insert(at);
        let elapsed = at.saturating_duration_since(first);
        // u128 -> u64: a call would have to last 10^14 years at 90 kHz to overflow.
        let due = u64::try_from(elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000).unwrap_or(u64::MAX);
        let step = due.saturating_sub(self.advanced);
        self.advanced = self.advanced.max(due);
        // The timestamp wraps at 32 bits by design; one step is at most a few seconds' worth.
        u32::try_from(step).unwrap_or(u32::MAX)
    }
}

/// What one stream's frames are stamped and packetized with.
struct Stamping {
    packetizer: Box<dyn Packetizer>,
    clock: RtpClock,
    /// The voice's RED payloads (unused on video).
    repeat: crate::red::Repeater,
}

/// A track the engine writes encoded frames to, stamped by [`RtpClock`].
pub(crate) struct Outbound {
    pub(crate) track: std::sync::Arc<TrackLocalStaticRTP>,
    stamping: Mutex<Stamping>,
}

impl Outbound {
    /// A stream for `track`'s first SSRC and codec.
    pub(crate) fn new(track: MediaStreamTrack) -> Result<Self, Error> {
        let ssrc = track.ssrcs().next().ok_or_else(|| Error::Codec("a track without an SSRC".into()))?;
        let codec = track.codec(ssrc).ok_or_else(|| Error::Codec("a track without a codec".into()))?.clone();
        let payloader = codec.payloader().map_err(Error::webrtc)?;
        let packetizer = rtc::rtp::packetizer::new_packetizer(
            Instant::now(),
            MTU,
            0, // set per packet, once negotiated
            ssrc,
            payloader,
            Box::new(rtc::rtp::sequence::new_random_sequencer()),
            codec.clock_rate,
        );
        Ok(Outbound {
            track: std::sync::Arc::new(TrackLocalStaticRTP::new(track)),
            stamping: Mutex::new(Stamping {
                packetizer: Box::new(packetizer),
                clock: RtpClock::new(codec.clock_rate),
                repeat: crate::red::Repeater::default(),
            }),
        })
    }

    /// Sends one frame captured at `captured` with payload type `pt`, or when `red` names RED's
    /// payload type (the voice on a lossy link), as RED with the frame before it repeated
    /// (`crate::red::Repeater`).
    pub(crate) async fn write(&self, pt: u8, red: Option<u8>, data: Bytes, captured: Instant) -> Result<(), Error> {
        let (packets, pt) = {
            let mut guard = self.stamping.lock().await;
            let s = &mut *guard;
            s.packetizer.skip_samples(s.clock.advance(captured));
            let (data, pt) = match red {
                Some(red_pt) => (Bytes::from(s.repeat.next(pt, s.clock.advanced, &data)), red_pt),
                None => {
                    s.repeat.forget();
                    (data, pt)
                }
            };
            // Zero samples: the next frame's timestamp comes from its own capture instant.
            (s.packetizer.packetize(Instant::now(), &data, 0).map_err(Error::webrtc)?, pt)
        };
        for mut p in packets {
            p.header.payload_type = pt;
            self.track.write_rtp_with_extensions(p, &[]).await.map_err(Error::webrtc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RtpClock;
    use std::time::{Duration, Instant};

    #[test]
    fn timestamps_follow_capture_instants_across_skipped_frames() {
        let t0 = Instant::now();
        let mut c = RtpClock::new(90_000);
        assert_eq!(c.advance(t0), 0, "the first frame starts the clock");
        assert_eq!(c.advance(t0 + Duration::from_millis(33)), 2970);
        // Two frames skipped (by the encoder or a full queue): the gap is three frames long.
        assert_eq!(c.advance(t0 + Duration::from_millis(133)), 9000);
        // Over many irregular frames the sum is the elapsed time, to the sample: no drift.
        let mut total = 2970 + 9000;
        for i in 2..=600u64 {
            total += u64::from(c.advance(t0 + Duration::from_micros(66_667 * i + (i % 7) * 1_000)));
        }
        assert_eq!(total, (66_667 * 600 + (600 % 7) * 1_000) * 90 / 1_000);
    }

    #[test]
    fn a_frame_stamped_before_the_last_does_not_move_the_clock_back() {
        let t0 = Instant::now();
        let mut c = RtpClock::new(48_000);
        c.advance(t0);
        assert_eq!(c.advance(t0 + Duration::from_millis(20)), 960);
        assert_eq!(c.advance(t0 + Duration::from_millis(10)), 0);
        assert_eq!(c.advance(t0 + Duration::from_millis(40)), 960);
    }
}
