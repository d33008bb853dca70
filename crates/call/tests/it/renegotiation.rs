//! A renegotiation mid-call does not forget the packets kept for resending (issue #12). rtc binds
//! every stream again when a new offer and answer are applied (the kiosk renegotiates when it
//! changes the voice's format), and rtc-interceptor 0.21.1's NACK responder then started afresh:
//! it could not resend what it had just sent. (Its generator did the same, so the frame waiting on
//! a packet lost just before was given up and a keyframe asked for: a freeze after every
//! renegotiation on the prison profile. The kiosk's own `sc_call::nack` replaces it and keeps what
//! it asks for, tested there.)

use rtc::interceptor::{Interceptor, NackResponderBuilder, Packet, Registry, Slot};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
use rtc::sansio::Protocol;
use std::time::{Duration, Instant};

const SSRC: u32 = 7;

/// A VP8 stream whose receiver asks for lost packets (`a=rtcp-fb:96 nack`).
fn video_stream() -> rtc::interceptor::StreamInfo {
    rtc::interceptor::StreamInfo {
        ssrc: SSRC,
        mime_type: "video/VP8".into(),
        clock_rate: 90_000,
        rtcp_feedback: vec![rtc::interceptor::RTCPFeedback { typ: "nack".into(), parameter: String::new() }],
        ..Default::default()
    }
}

#[test]
fn issue_12_a_renegotiation_does_not_forget_what_can_be_resent() {
    let mut sender = Registry::new().with(Slot::NackResponder, NackResponderBuilder::new().build()).build();
    let t0 = Instant::now();
    sender.bind_local_stream(&video_stream());
    for seq in 20u16..25 {
        sender.handle_write(crate::tagged(t0, crate::vp8_packet(SSRC, seq))).expect("write");
    }
    while sender.poll_write().is_some() {}
    sender.bind_local_stream(&video_stream());
    let nack = TransportLayerNack { sender_ssrc: 1, media_ssrc: SSRC, nacks: nack_pairs_from_sequence_numbers(&[22]) };
    sender
        .handle_read(crate::tagged(t0 + Duration::from_millis(100), Packet::Rtcp(vec![Box::new(nack)])))
        .expect("read");
    while sender.poll_read().is_some() {}
    sender.handle_timeout(t0 + Duration::from_millis(100)).expect("timeout");
    let mut resent = Vec::new();
    while let Some(p) = sender.poll_write() {
        if let Packet::Rtp(r) = p.message.packet {
            resent.push(r.header.sequence_number);
        }
    }
    assert_eq!(resent, vec![22], "the NACKed packet is resent after the rebind");
}
