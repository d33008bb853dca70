//! A retransmission is numbered for transport-wide feedback and its fate reaches the estimate
//! (issue #12). rtc-interceptor 0.21.1 bound the TWCC sender and the congestion controller to a
//! stream's media SSRC only, so a resend on its RTX SSRC left unnumbered: the peer could not
//! report on it and the estimate never counted those bytes (libwebrtc numbers them; see
//! third_party/rtc-interceptor/SECURECONSULT-PATCH.md).

use rtc::interceptor::{
    Interceptor, NackResponderBuilder, Packet, RTCPFeedback, Registry, Slot, TaggedPacket, TwccReceiverBuilder,
    TwccSenderBuilder,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
use rtc::rtp::extension::transport_cc_extension::TransportCcExtension;
use rtc::sansio::Protocol;
use rtc::shared::marshal::Unmarshal;
use sc_call::estimate::LinkEstimate;
use std::time::{Duration, Instant};

const SSRC: u32 = 11;
const RTX_SSRC: u32 = 12;
const TWCC_ID: u8 = 5;
/// The media packet lost on the way.
const LOST: u16 = 5;

/// A VP8 stream resent on its own SSRC (RFC 4588), with transport-wide numbers and NACK.
fn video_stream() -> rtc::interceptor::StreamInfo {
    rtc::interceptor::StreamInfo {
        ssrc: SSRC,
        ssrc_rtx: Some(RTX_SSRC),
        payload_type: 96,
        payload_type_rtx: Some(97),
        mime_type: "video/VP8".into(),
        clock_rate: 90_000,
        rtcp_feedback: vec![RTCPFeedback { typ: "nack".into(), parameter: String::new() }],
        ..crate::voice_stream(SSRC)
    }
}

/// Sixty media packets, the sixth lost; its resend, asked for, lost too; then two more media
/// packets, everything reported on by the receiver's feedback.
#[test]
fn issue_12_a_retransmission_is_numbered_and_its_loss_reaches_the_estimate() {
    let estimate = LinkEstimate::new();
    let mut sender = Registry::new()
        .with(Slot::CongestionControl, estimate.congestion_control())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .build();
    sender.bind_local_stream(&video_stream());
    let mut receiver = Registry::new().with(Slot::TwccReceiver, TwccReceiverBuilder::new().build()).build();
    receiver.bind_remote_stream(&video_stream());
    let t0 = Instant::now();
    // The transport-wide numbers the resends left with.
    let mut resends: Vec<Option<u16>> = Vec::new();
    // At `now`: `packet` sent, `rtcp` read from the receiver, then whatever that leads to.
    let mut step = |now: Instant, packet: Option<Packet>, rtcp: Option<Packet>| {
        if let Some(p) = packet {
            sender.handle_write(crate::tagged(now, p)).expect("write");
        }
        if let Some(p) = rtcp {
            sender.handle_read(crate::tagged(now, p)).expect("read");
            while sender.poll_read().is_some() {}
        }
        sender.handle_timeout(now).expect("timeout");
        while let Some(out) = sender.poll_write() {
            let Packet::Rtp(rtp) = &out.message.packet else { continue };
            let resend = rtp.header.ssrc == RTX_SSRC;
            if resend {
                resends.push(
                    rtp.header.get_extension(TWCC_ID).map(|mut e| {
                        TransportCcExtension::unmarshal(&mut e).map_or(u16::MAX, |x| x.transport_sequence)
                    }),
                );
            }
            let lost = resend || rtp.header.sequence_number == LOST;
            if !lost {
                receiver.handle_read(TaggedPacket { now: out.now + Duration::from_millis(40), ..out }).expect("read");
                while receiver.poll_read().is_some() {}
            }
        }
        receiver.handle_timeout(now + Duration::from_millis(40)).expect("timeout");
        while let Some(feedback) = receiver.poll_write() {
            sender.handle_read(TaggedPacket { now: now + Duration::from_millis(80), ..feedback }).expect("read");
            while sender.poll_read().is_some() {}
        }
    };
    let ms = |n: u64| t0 + Duration::from_millis(n);
    for seq in 0..60u16 {
        step(ms(u64::from(seq) * 10), Some(crate::vp8_packet(SSRC, seq)), None);
    }
    let nack =
        TransportLayerNack { sender_ssrc: 1, media_ssrc: SSRC, nacks: nack_pairs_from_sequence_numbers(&[LOST]) };
    step(ms(600), None, Some(Packet::Rtcp(vec![Box::new(nack)])));
    step(ms(610), Some(crate::vp8_packet(SSRC, 60)), None);
    step(ms(620), Some(crate::vp8_packet(SSRC, 61)), None);
    for n in (640..1_000).step_by(20) {
        step(ms(n), None, None);
    }
    assert_eq!(resends, vec![Some(60)], "the resend takes the next transport-wide number");
    // Two of 63 lost: the resend counted (unnumbered it was not: one of 62).
    let loss = estimate.window_loss();
    assert!((loss - 2.0 / 63.0).abs() < 1e-9, "the estimate's loss {loss}");
}
