//! Feedback that comes back late, as it does over a slow link's full queues, still reaches the
//! kiosk's congestion controller (issue #12): rtc's sender-side history is built with
//! [`sc_call::estimate::FEEDBACK_HORIZON`], not the library's 2 s.

use rtc::interceptor::{Interceptor, Packet, Registry, Slot, TaggedPacket, TwccReceiverBuilder, TwccSenderBuilder};
use rtc::sansio::Protocol;
use sc_call::estimate::LinkEstimate;
use std::time::{Duration, Instant};

const SSRC: u32 = 7;

/// Sends 100 voice packets 10 ms apart; the receiver gets every other one `delay` later and
/// reports them; returns the loss the kiosk's estimate then publishes.
fn loss_after_feedback_delayed_by(delay: Duration) -> f64 {
    let estimate = LinkEstimate::new();
    let mut sender = Registry::new()
        .with(Slot::CongestionControl, estimate.congestion_control())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .build();
    sender.bind_local_stream(&crate::voice_stream(SSRC));
    let mut receiver = Registry::new().with(Slot::TwccReceiver, TwccReceiverBuilder::new().build()).build();
    receiver.bind_remote_stream(&crate::voice_stream(SSRC));

    let t0 = Instant::now();
    let mut arrivals = Vec::new();
    for seq in 0..100u16 {
        let now = t0 + Duration::from_millis(u64::from(seq) * 10);
        let mut rtp = rtc::rtp::Packet::default();
        rtp.header.ssrc = SSRC;
        rtp.header.sequence_number = seq;
        rtp.payload = vec![0u8; 80].into();
        sender.handle_write(crate::tagged(now, Packet::Rtp(rtp))).expect("write");
        // The driver wakes the chain all the time; the history is pruned on those wake-ups.
        sender.handle_timeout(now).expect("timeout");
        while let Some(out) = sender.poll_write() {
            if seq % 2 == 0 {
                arrivals.push(TaggedPacket { now: out.now + delay, ..out });
            }
        }
    }
    assert_eq!(arrivals.len(), 50, "every packet left the chain at once");
    let mut feedback = Vec::new();
    for packet in arrivals {
        let now = packet.now;
        receiver.handle_read(packet).expect("read");
        while receiver.poll_read().is_some() {}
        receiver.handle_timeout(now).expect("timeout");
        while let Some(out) = receiver.poll_write() {
            feedback.push(out);
        }
    }
    let end = t0 + Duration::from_secs(1) + delay + Duration::from_millis(200);
    receiver.handle_timeout(end).expect("timeout");
    while let Some(out) = receiver.poll_write() {
        feedback.push(out);
    }
    assert!(!feedback.is_empty(), "the receiver reported");
    for mut report in feedback {
        // It crosses back in a tenth of the delay's time; the sender's driver kept waking.
        report.now = end;
        sender.handle_timeout(end).expect("timeout");
        sender.handle_read(report).expect("read");
        while sender.poll_read().is_some() {}
    }
    estimate.loss()
}

#[test]
fn issue_12_feedback_three_seconds_late_still_counts() {
    // Half the packets were lost: a controller that matched the reports publishes loss.
    let prompt = loss_after_feedback_delayed_by(Duration::from_millis(100));
    assert!(prompt > 0.2, "prompt feedback: loss {prompt}");
    // Over the audio-only profile, reports name packets ~3 s old. rtc's default history (2 s)
    // had written them off: nothing matched, and the loss stayed 0.
    let late = loss_after_feedback_delayed_by(Duration::from_secs(3));
    assert!(late > 0.2, "feedback 3 s late: loss {late}");
}
