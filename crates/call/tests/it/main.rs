//! Integration tests of the call engine: real devices where this machine has them, bad
//! signalling from the other side, and the consultation's rules on simulated time.

mod devices;
mod dtls_retransmit;
mod feedback_loss;
mod late_feedback;
mod lifecycle;
mod receiver_reports;
mod renegotiation;
mod rtx_feedback;
mod rules;
mod signalling;

/// A call set-up whose relay nobody answers on (the call never connects), sending `video` and
/// `audio` at 320x240: negotiation and the call's own threads are all these tests need.
fn dead_relay_config(
    video: Box<dyn sc_call::source::VideoSource>,
    audio: Box<dyn sc_call::source::AudioSource>,
) -> sc_call::CallConfig {
    sc_call::CallConfig {
        ice_servers: vec![sc_proto::signal::IceServer {
            urls: vec!["turn:127.0.0.1:9?transport=udp".into()],
            username: "u".into(),
            credential: "c".into(),
        }],
        relay_trust: None,
        bind_addrs: vec!["127.0.0.1:0".into()],
        width: 320,
        height: 240,
        fps: 15,
        video_kbps: 300,
        video,
        audio,
        playback: Box::new(sc_call::source::NullSink),
        video_fec: false,
        remembered: None,
    }
}

/// A voice stream with transport-wide sequence numbers (extension 5), for the feedback tests.
fn voice_stream(ssrc: u32) -> rtc::interceptor::StreamInfo {
    rtc::interceptor::StreamInfo {
        ssrc,
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
            uri: rtc::sdp::extmap::TRANSPORT_CC_URI.into(),
            id: 5,
        }],
        ..Default::default()
    }
}

/// A packet entering an interceptor chain at `now`.
fn tagged(now: std::time::Instant, packet: rtc::interceptor::Packet) -> rtc::interceptor::TaggedPacket {
    rtc::interceptor::TaggedPacket {
        now,
        transport: rtc::shared::TransportContext::default(),
        message: rtc::interceptor::AttributedPacket::new(packet),
    }
}

/// A VP8 packet (payload type 96) of stream `ssrc` numbered `seq`, 100 bytes of payload.
fn vp8_packet(ssrc: u32, seq: u16) -> rtc::interceptor::Packet {
    let mut p = rtc::rtp::Packet::default();
    p.header.ssrc = ssrc;
    p.header.sequence_number = seq;
    p.header.payload_type = 96;
    p.payload = vec![seq as u8; 100].into();
    rtc::interceptor::Packet::Rtp(p)
}
