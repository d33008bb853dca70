//! Integration tests of the call engine: real devices where this machine has them, bad
//! signalling from the other side, and the consultation's rules on simulated time.

mod devices;
mod dtls_retransmit;
mod feedback_loss;
mod late_feedback;
mod lifecycle;
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
        bind_addrs: vec!["127.0.0.1:0".into()],
        width: 320,
        height: 240,
        fps: 15,
        video_kbps: 300,
        video,
        audio,
        playback: Box::new(sc_call::source::NullSink),
    }
}
