//! One call: the peer connection (relay-only, congestion control, NACK) and what it is built
//! from. The local media ([`send`]: source -> encoder -> track), the remote media ([`receive`]:
//! track -> decoder -> frame and sound), offer and answer ([`negotiation`]) and the counters
//! ([`stats`]) are submodules; `Call` owns them all and stops them on close or drop.

mod negotiation;
mod outbound;
mod receive;
mod relay;
mod send;
mod stats;

pub use stats::CallStats;
use stats::Counters;

use crate::adapt::{Settings, VoiceFormat};
use crate::data::{DataIn, DataLink, DataSender};
use crate::estimate::LinkEstimate;
use crate::fec_send::FecSwitch;
use crate::frame::I420Frame;
use crate::keyframe::KeyframeRequests;
use crate::lipsync::LipSync;
use crate::sender_reports::SenderReports;
use crate::source::{AudioSink, AudioSource, VideoSource};
use crate::video::EncodedFrame;
use crate::Error;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_ULP_FEC, MIME_TYPE_VP8,
};

/// RED's MIME type (rtc names none).
pub(super) const MIME_TYPE_RED: &str = "audio/red";
/// VP8's payload type in the kiosk's offer.
const VP8_PAYLOAD_TYPE: u8 = 96;
/// The payload type of video retransmissions (`apt=96`, the VP8 stream's).
const VIDEO_RTX_PAYLOAD_TYPE: u8 = 97;
/// Video RED (RFC 2198), the wrapper Chromium puts its VP8 and ULPFEC in (Chromium's numbers).
pub(super) const VIDEO_RED_PAYLOAD_TYPE: u8 = 116;
/// Retransmissions of RED-wrapped video (`apt=116`): without them Chromium resends nothing.
const VIDEO_RED_RTX_PAYLOAD_TYPE: u8 = 117;
/// ULPFEC (RFC 5109), inside RED.
pub(super) const ULPFEC_PAYLOAD_TYPE: u8 = 118;
/// Opus's payload type in the kiosk's offer (Chromium's own number for it).
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use sc_proto::signal::{Candidate, IceServer, Role, ToServer};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback, MediaEngine, PeerConnection,
    PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender, RtpTransceiver};

/// How a call is set up.
pub struct CallConfig {
    /// TURN servers and credentials from the care server; the only way out.
    pub ice_servers: Vec<IceServer>,
    /// What a `turns:` relay must present (the kiosk's pinned trust); without it `turns:` URLs
    /// are left out.
    pub relay_trust: Option<Arc<rustls::ClientConfig>>,
    /// Local UDP sockets to bind (TURN clients run on each). `0.0.0.0:0` covers every
    /// non-loopback interface; tests with a loopback TURN server bind `127.0.0.1:0`.
    pub bind_addrs: Vec<String>,
    /// Outgoing video size and rate.
    pub width: u32,
    /// Outgoing video height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// VP8 target bitrate.
    pub video_kbps: u32,
    /// The camera (or a synthetic pattern).
    pub video: Box<dyn VideoSource>,
    /// The microphone (or a tone).
    pub audio: Box<dyn AudioSource>,
    /// The speaker (or nothing).
    pub playback: Box<dyn AudioSink>,
    /// Protect the kiosk's video with ULPFEC in RED (`crate::fec_send`, `crate::ulpfec`): as the
    /// offerer its video goes on a section naming them and the peer's on a plain one
    /// (`split_video`), so only the kiosk's direction is protected. On in the kiosk: on the
    /// prison profile the consultant's freezes a minute fell from a median of 6.7 to 2.4, the
    /// kiosk's picture from Chromium unchanged at 640x480 (docs/architecture.md).
    pub video_fec: bool,
    /// What the last call learnt of the link ([`crate::link_memory`]): a limit, which the
    /// estimate starts under and knows, or a clear link, on which video need not wait for the
    /// peer's start; `None` on a new link (the controller starts at
    /// [`crate::estimate::INITIAL_BPS`]).
    pub remembered: Option<crate::link_memory::Known>,
}

impl std::fmt::Debug for CallConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallConfig({}x{}@{}, {} kbit/s)", self.width, self.height, self.fps, self.video_kbps)
    }
}

/// The call's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallState {
    /// Negotiating and connecting through the relay.
    Connecting,
    /// Media flows.
    Connected,
    /// The connection dropped; it may come back.
    Disconnected,
    /// The connection failed.
    Failed,
    /// Closed.
    Closed,
}

/// What the engine tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// Send this to the care server.
    Signal(ToServer),
    /// The connection state changed.
    State(CallState),
}

/// The candidate types of the pair in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedPair {
    /// Our side, e.g. "relay".
    pub local: String,
    /// Their side.
    pub remote: String,
}

struct Shared {
    started: Instant,
    counters: Counters,
    muted: AtomicBool,
    camera_on: AtomicBool,
    audio_only: AtomicBool,
    force_keyframe: AtomicBool,
    stop: AtomicBool,
    connected: watch::Sender<bool>,
    events: mpsc::UnboundedSender<CallEvent>,
    frames: watch::Sender<Option<Arc<I420Frame>>>,
    /// The self-view: what the camera sends, shrunk, a few times a second.
    local_frames: watch::Sender<Option<Arc<I420Frame>>>,
    /// A camera to switch to, taken by the encoder thread at its next frame.
    next_video: Mutex<Option<Box<dyn VideoSource>>>,
    /// The speaker, taken by the audio receiver when the remote track arrives.
    playback: Mutex<Option<Box<dyn AudioSink>>>,
    /// The image-share data channel.
    data: Arc<DataLink>,
    /// The congestion controller's estimate, published for the encoders.
    estimate: LinkEstimate,
    /// What the link allows now (the video thread decides; audio and stats read it).
    sending: Mutex<Option<Settings>>,
    /// The link is too poor for video: sound only until it recovers.
    sound_only_by_link: AtomicBool,
    /// The peer took RED for the kiosk's voice (the audio pump found it in the answer).
    red_agreed: AtomicBool,
    /// The video's protection: what the peer agreed to, how much, how many sent.
    fec: FecSwitch,
    /// The voice's extra delay to keep in step with the picture (the peer's sender reports come
    /// in through `crate::sender_reports`).
    lipsync: Arc<Mutex<LipSync>>,
}

impl Shared {
    fn emit(&self, e: CallEvent) {
        let _ = self.events.send(e);
    }
}

struct Handler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                // An empty mid matches no m-line in the browser; the line index finds it.
                let sdp_mid = init.sdp_mid.filter(|m| !m.is_empty());
                let candidate = Candidate {
                    candidate: init.candidate,
                    sdp_mid,
                    sdp_m_line_index: init.sdp_mline_index.or(Some(0)),
                };
                self.shared.emit(CallEvent::Signal(ToServer::Candidate { candidate }));
            }
            Err(e) => tracing::warn!(error = %e, "could not serialise a local candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let s = match state {
            RTCPeerConnectionState::Connected => CallState::Connected,
            RTCPeerConnectionState::Disconnected => CallState::Disconnected,
            RTCPeerConnectionState::Failed => CallState::Failed,
            RTCPeerConnectionState::Closed => CallState::Closed,
            _ => CallState::Connecting,
        };
        tracing::info!(state = ?s, "call state");
        if s == CallState::Connected {
            // Back after a drop: what the peer has refers to frames lost meanwhile, so the next
            // frame is a keyframe rather than waiting for the peer to give up and ask for one
            // (measured: the consultant's picture came back 2.3 s after the link, sound at once).
            if !self.shared.connected.send_replace(true) {
                self.shared.force_keyframe.store(true, Ordering::Relaxed);
            }
        } else if s == CallState::Disconnected {
            // The video encoder pauses while the link is down (video sent into an outage is only
            // lost, then asked for again); the voice goes on, so it is there the moment it returns.
            self.shared.connected.send_replace(false);
        }
        // A failure is not the end: the consultation's rules restart ICE, then give up.
        self.shared.emit(CallEvent::State(s));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // A consultant page opens a new share channel after a cut; anything else is refused.
        match channel.label().await {
            Ok(label) if label == sc_proto::share::CHANNEL_LABEL => {
                tracing::info!("the consultant opened a share channel");
                self.shared.data.adopt(channel);
            }
            _ => {
                let _ = channel.close().await;
            }
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            match track.kind().await {
                RtpCodecKind::Video => receive::receive_video(track, shared).await,
                RtpCodecKind::Audio => receive::receive_audio(track, shared).await,
                _ => {}
            }
        });
    }
}

/// Which format the consultant's browser is asked to send its voice in ([`VoiceFormat`]). All are
/// always offered, the one wanted first: libwebrtc sends the first it can. RED (each frame
/// repeated in the next packet, `crate::red`) comes after Opus at first: the repeat doubles what
/// the voice needs (measured on the audio-only profile, 64 kbit/s: 14 % of the consultant's voice
/// concealed with RED, 2.6 % without). Once the link has shown room, a new offer lists RED first
/// (`consultation::rules::RED_AFTER`: video better than the lowest rung for 10 s; issue #12). Long packets are RED first
/// (the page caps it lower, so the repeat fits) with the offer's audio section saying
/// `a=ptime:60` ([`AUDIO_LONG_FRAME_MS`](crate::adapt::AUDIO_LONG_FRAME_MS); `with_ptime`):
/// libwebrtc takes its Opus encoder's frame length from it. rtc writes no `ptime`; a second Opus
/// payload type with `ptime` among its format parameters did not do: rtc matched it to the first
/// Opus (its offer listed 111 twice).
struct VoiceFormats {
    transceiver: Arc<dyn RtpTransceiver>,
    red: RTCRtpCodecParameters,
    opus: RTCRtpCodecParameters,
    /// The format wanted now ([`VoiceFormats::code`]).
    wanted: AtomicU8,
    /// The format first in the last offer.
    offered: AtomicU8,
    /// An offer for a new format is out, waiting for its answer.
    pending: AtomicBool,
}

impl VoiceFormats {
    /// Lists `format` first in the next offer.
    async fn prefer(&self, format: VoiceFormat) -> Result<(), Error> {
        let (red, opus) = (self.red.clone(), self.opus.clone());
        let order = if format == VoiceFormat::Opus { vec![opus, red] } else { vec![red, opus] };
        self.transceiver.set_codec_preferences(order).await.map_err(Error::webrtc)
    }

    /// The format as the atomics hold it.
    const fn code(format: VoiceFormat) -> u8 {
        match format {
            VoiceFormat::Opus => 0,
            VoiceFormat::Red => 1,
            VoiceFormat::LongRed => 2,
        }
    }

    const fn format(code: u8) -> VoiceFormat {
        match code {
            1 => VoiceFormat::Red,
            2 => VoiceFormat::LongRed,
            _ => VoiceFormat::Opus,
        }
    }
}

/// A running call.
pub struct Call {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    role: Role,
    remote_set: AtomicBool,
    /// An ICE restart's offer is out, waiting for its answer.
    restarting: AtomicBool,
    /// The transceiver carrying the voice, and its formats as the kiosk would offer them:
    /// [`VoiceFormats`].
    voice: VoiceFormats,
    /// Where the consultant's browser is asked to start sending, kbit/s, on a link the last call
    /// measured slow (`negotiation::with_peer_start`).
    peer_start_kbps: Option<u32>,
    pending: Mutex<Vec<RTCIceCandidateInit>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    data_rx: Mutex<Option<mpsc::Receiver<DataIn>>>,
    /// TLS tunnels to the relay, when its UDP port did not answer; closed with the call.
    _tunnels: Vec<crate::turn_tls::TlsRelay>,
}

/// A call dropped without [`Call::close`] (a task cancelled, a panic unwinding) still stops: the
/// encoder threads see the stop flag at their next frame and end (dropping the camera and the
/// microphone), the pumps are aborted, and the connection is closed on the runtime if there is one.
impl Drop for Call {
    fn drop(&mut self) {
        if self.shared.stop.swap(true, Ordering::Relaxed) {
            return; // closed already
        }
        self.shared.connected.send_replace(false);
        for t in self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            t.abort();
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = self.pc.clone();
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({:?})", self.role)
    }
}

impl Call {
    /// Sets up the call. The offerer's offer comes out as the first `CallEvent::Signal`.
    pub async fn start(config: CallConfig, role: Role) -> Result<(Call, mpsc::UnboundedReceiver<CallEvent>), Error> {
        let routes = relay::routes(&config.ice_servers, config.relay_trust.as_ref(), &config.bind_addrs).await?;
        let vp8 = send::codec(MIME_TYPE_VP8, 90_000, 0, "");
        let opus = send::codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1");
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: vp8.clone(), payload_type: VP8_PAYLOAD_TYPE },
                RtpCodecKind::Video,
            )
            .map_err(Error::webrtc)?;
        // Video is resent on its own stream (RFC 4588), as Chromium does. Resent on the media
        // stream itself, a repair reaches Chromium as an out-of-order packet: its NACK module
        // learns that packets arrive a round trip late and then waits that many packets before
        // asking for a loss, so every repair took two round trips and froze the consultant's
        // picture (7.6 freezes a minute on the prison profile, Chromium's pair 0.8; issue #12).
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: send::codec(MIME_TYPE_RTX, 90_000, 0, &format!("apt={VP8_PAYLOAD_TYPE}")),
                    payload_type: VIDEO_RTX_PAYLOAD_TYPE,
                },
                RtpCodecKind::Video,
            )
            .map_err(Error::webrtc)?;
        // ULPFEC inside RED when asked for (`CallConfig::video_fec`): on a lossy link with a long
        // round trip the kiosk adds parity packets to its frames, and a lost packet is rebuilt
        // rather than waited for (a freeze) or replaced by a keyframe. The kiosk's track stays
        // VP8; the chain wraps it once the answer agrees (`crate::fec_send`). Received too, from a
        // peer that offers it (`engine::receive::Unwrap`).
        let protected_video = if config.video_fec {
            vec![
                ("video/red", VIDEO_RED_PAYLOAD_TYPE, String::new()),
                (MIME_TYPE_RTX, VIDEO_RED_RTX_PAYLOAD_TYPE, format!("apt={VIDEO_RED_PAYLOAD_TYPE}")),
                (MIME_TYPE_ULP_FEC, ULPFEC_PAYLOAD_TYPE, String::new()),
            ]
        } else {
            Vec::new()
        };
        for (mime, payload_type, fmtp) in protected_video {
            media
                .register_codec(
                    RTCRtpCodecParameters { rtp_codec: send::codec(mime, 90_000, 0, &fmtp), payload_type },
                    RtpCodecKind::Video,
                )
                .map_err(Error::webrtc)?;
        }
        // RED: received when the far side is asked for it (`VoiceFormats`); sent around the
        // kiosk's own Opus frames on a lossy link with room for it (`adapt::RED_FROM_LOSS`).
        let red = send::codec(MIME_TYPE_RED, 48_000, 2, &format!("{OPUS_PAYLOAD_TYPE}/{OPUS_PAYLOAD_TYPE}"));
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: red.clone(), payload_type: crate::red::PAYLOAD_TYPE },
                RtpCodecKind::Audio,
            )
            .map_err(Error::webrtc)?;
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: opus.clone(), payload_type: OPUS_PAYLOAD_TYPE },
                RtpCodecKind::Audio,
            )
            .map_err(Error::webrtc)?;
        let estimate = LinkEstimate::remembering(config.remembered);
        let fec = FecSwitch::default();
        let lipsync = Arc::new(Mutex::new(LipSync::new(Instant::now())));
        // Google Congestion Control over transport-wide feedback; the defaults add NACK (generator
        // and responder), RTCP reports and the TWCC receiver. The library's FIFO pacer is replaced
        // by one that sends the voice first and bounds how long video waits (`crate::pacer`), and
        // its congestion controller by one that waits longer for late feedback
        // (`estimate::FEEDBACK_HORIZON`), and its NACK generator by one that asks for a loss at
        // once and again after the round trip its repairs show (`crate::nack`).
        let registry =
            configure_congestion_control(Registry::new(), estimate.controller(), CongestionFeedback::Twcc, &mut media)
                .map_err(Error::webrtc)?;
        let registry = register_default_interceptors(registry, &mut media)
            .map_err(Error::webrtc)?
            .with(Slot::CongestionControl, estimate.congestion_control())
            .with(Slot::from(14_000usize), KeyframeRequests::default())
            .with(Slot::from(14_500usize), SenderReports::new(lipsync.clone()))
            .with(Slot::Pacer, crate::pacer::PriorityPacer::new(&estimate))
            .with(
                Slot::NackResponder,
                rtc::interceptor::NackResponderBuilder::new().with_size(receive::RETRANSMIT_HISTORY).build(),
            )
            .with(Slot::NackGenerator, crate::nack::NackRequester::new(estimate.clone()))
            .with(Slot::from(crate::fec_send::SLOT), crate::fec_send::UlpfecSend::new(fec.clone()))
            .with(Slot::from(crate::fec_send::RED_RTX_SLOT), crate::fec_send::RedRtx::new(fec.clone()))
            // Wire-ward of the NACK generator, the TWCC receiver and the receiver reports.
            .with(
                Slot::from(6_500usize),
                crate::rtx::RtxRestore::new([
                    (VIDEO_RTX_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE),
                    (VIDEO_RED_RTX_PAYLOAD_TYPE, VIDEO_RED_PAYLOAD_TYPE),
                ]),
            );
        let rtc_config = RTCConfigurationBuilder::new()
            .with_ice_servers(routes.servers)
            .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
            .build();
        // No multicast DNS: the relay cannot resolve .local names and the kiosk has no LAN peers.
        // Relay candidates are the only kind this kiosk has: the ICE agent's default 2 s wait for a
        // better kind to show up only delays the first frame (measured: ~3.1 s -> see the bench).
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_relay_acceptance_min_wait(Some(Duration::ZERO))
            // The kiosk (controlling) nominates a pair at its next check tick, and until then
            // drops the browser's DTLS hello, which the browser only resends ~250 ms later: a
            // 50 ms tick (default 200 ms) nominates sooner. 40 attempts keep the default's
            // patience and more (2 s per pair, default 1.4 s) for lossy prison links.
            .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(40))
            .with_srtp_replay_protection_window(receive::SRTP_REPLAY_WINDOW)
            .build();

        let (events, events_rx) = mpsc::unbounded_channel();
        let (connected, _) = watch::channel(false);
        let (frames, _) = watch::channel(None);
        let (local_frames, _) = watch::channel(None);
        let (data, data_rx) = DataLink::new();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            counters: Counters::default(),
            muted: AtomicBool::new(false),
            camera_on: AtomicBool::new(true),
            audio_only: AtomicBool::new(false),
            force_keyframe: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            connected,
            events,
            frames,
            local_frames,
            next_video: Mutex::new(None),
            playback: Mutex::new(Some(config.playback)),
            data,
            estimate,
            sending: Mutex::new(None),
            sound_only_by_link: AtomicBool::new(false),
            red_agreed: AtomicBool::new(false),
            fec,
            lipsync,
        });
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(rtc_config)
                .with_media_engine(media)
                .with_interceptor_registry(registry)
                .with_setting_engine(settings)
                .with_handler(Arc::new(Handler { shared: shared.clone() }))
                .with_udp_addrs(config.bind_addrs.clone())
                .build()
                .await
                .map_err(Error::webrtc)?,
        );

        // The share channel is in the offer (so the browser need not renegotiate to add one).
        if role == Role::Offerer {
            let channel = pc.create_data_channel(sc_proto::share::CHANNEL_LABEL, None).await.map_err(Error::webrtc)?;
            shared.data.adopt(channel);
        }
        let video_track =
            send::local_track(RtpCodecKind::Video, vp8, send::random_ssrc()?, Some(send::random_ssrc()?))?;
        let audio_track = send::local_track(RtpCodecKind::Audio, opus.clone(), send::random_ssrc()?, None)?;
        let video_sender = if config.video_fec && role == Role::Offerer {
            split_video(&pc, video_track.track.clone() as Arc<dyn TrackLocal>).await?
        } else {
            pc.add_track(video_track.track.clone() as Arc<dyn TrackLocal>).await.map_err(Error::webrtc)?
        };
        let audio_sender =
            pc.add_track(audio_track.track.clone() as Arc<dyn TrackLocal>).await.map_err(Error::webrtc)?;
        let mut voice_transceiver = None;
        for transceiver in pc.get_transceivers().await {
            if let Ok(Some(sender)) = transceiver.sender().await {
                if sender.id() == audio_sender.id() {
                    voice_transceiver = Some(transceiver);
                }
            }
        }
        let voice = VoiceFormats {
            transceiver: voice_transceiver.ok_or_else(|| Error::Codec("no transceiver for the voice".into()))?,
            red: RTCRtpCodecParameters { rtp_codec: red.clone(), payload_type: crate::red::PAYLOAD_TYPE },
            opus: RTCRtpCodecParameters { rtp_codec: opus.clone(), payload_type: OPUS_PAYLOAD_TYPE },
            wanted: AtomicU8::new(VoiceFormats::code(VoiceFormat::Opus)),
            offered: AtomicU8::new(VoiceFormats::code(VoiceFormat::Opus)),
            pending: AtomicBool::new(false),
        };
        voice.prefer(VoiceFormat::Opus).await?;

        let (vtx, vrx) = mpsc::channel::<(EncodedFrame, Instant)>(8);
        let (atx, arx) = mpsc::channel::<(Vec<u8>, Instant)>(16);
        let threads = vec![
            send::spawn_video_encoder(
                shared.clone(),
                config.video,
                (config.width, config.height, config.fps, config.video_kbps),
                vtx,
            ),
            send::spawn_audio_encoder(shared.clone(), config.audio, atx),
        ];
        let tasks = vec![
            tokio::spawn(send::pump(
                shared.clone(),
                video_track.clone(),
                video_sender,
                vrx,
                |(f, at): (EncodedFrame, Instant)| (f.data, f.key, at),
                true,
            )),
            tokio::spawn(send::pump(
                shared.clone(),
                audio_track,
                audio_sender,
                arx,
                |(p, at): (Vec<u8>, Instant)| (p, false, at),
                false,
            )),
            tokio::spawn(send::keyframe_requests(shared.clone(), video_track)),
        ];

        let call = Call {
            pc,
            shared,
            role,
            remote_set: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            voice,
            peer_start_kbps: peer_start_kbps(config.remembered.and_then(crate::link_memory::Known::limit_bps)),
            pending: Mutex::new(Vec::new()),
            threads: Mutex::new(threads),
            tasks: Mutex::new(tasks),
            data_rx: Mutex::new(Some(data_rx)),
            _tunnels: routes.tunnels,
        };
        if role == Role::Offerer {
            let sdp = call.local_offer(VoiceFormat::Opus).await?;
            call.shared.emit(CallEvent::Signal(ToServer::Offer { sdp }));
        }
        call.shared.emit(CallEvent::State(CallState::Connecting));
        Ok((call, events_rx))
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        self.shared.muted.store(muted, Ordering::Relaxed);
    }

    /// Turns the camera on or off (off sends black).
    pub fn set_camera(&self, on: bool) {
        self.shared.camera_on.store(on, Ordering::Relaxed);
        self.shared.force_keyframe.store(true, Ordering::Relaxed);
    }

    /// Audio only: stops sending video (for very poor links).
    pub fn set_audio_only(&self, audio_only: bool) {
        self.shared.audio_only.store(audio_only, Ordering::Relaxed);
        self.shared.force_keyframe.store(true, Ordering::Relaxed);
    }

    /// Switches to another camera (or source); the next frame sent is a keyframe from it.
    pub fn switch_video(&self, source: Box<dyn VideoSource>) {
        *crate::lock(&self.shared.next_video) = Some(source);
    }

    /// The self-view: the frames being sent, shrunk, as they change.
    pub fn local_frames(&self) -> watch::Receiver<Option<Arc<I420Frame>>> {
        self.shared.local_frames.subscribe()
    }

    /// The newest decoded remote frame, as it changes.
    pub fn frames(&self) -> watch::Receiver<Option<Arc<I420Frame>>> {
        self.shared.frames.subscribe()
    }

    /// The share channel's messages (once; later calls get `None`).
    pub fn take_data(&self) -> Option<mpsc::Receiver<DataIn>> {
        crate::lock(&self.data_rx).take()
    }

    /// Sends replies on the share channel.
    pub fn data_sender(&self) -> DataSender {
        DataSender(self.shared.data.clone())
    }

    /// The link's limit as this call's last standing queue measured it, for the next call
    /// ([`crate::link_memory`]); `None` if no queue stood.
    pub fn measured_limit_bps(&self) -> Option<f64> {
        self.shared.estimate.measured_limit_bps()
    }

    /// The most this call carried over a second while no queue stood, for the next call
    /// ([`crate::link_memory`]).
    pub fn carried_bps(&self) -> Option<f64> {
        self.shared.estimate.carried_bps()
    }

    /// Counters so far.
    pub fn stats(&self) -> CallStats {
        stats::snapshot(&self.shared)
    }

    /// The candidate pair ICE selected, once connected.
    pub async fn selected_pair(&self) -> Option<SelectedPair> {
        for sender in self.pc.get_senders().await {
            let Ok(Some(dtls)) = sender.transport().await else { continue };
            if let Ok(Some(pair)) = dtls.ice_transport().get_selected_candidate_pair().await {
                return Some(SelectedPair {
                    local: pair.local().typ.to_string(),
                    remote: pair.remote().typ.to_string(),
                });
            }
        }
        None
    }

    /// Ends the call: stops the media, closes the connection (releasing the TURN allocation).
    pub async fn close(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.shared.connected.send(false);
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing the peer connection");
        }
        for t in std::mem::take(&mut *crate::lock(&self.tasks)) {
            t.abort();
        }
        let threads = std::mem::take(&mut *crate::lock(&self.threads));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        self.shared.emit(CallEvent::State(CallState::Closed));
    }
}

/// Video with FEC, its two directions negotiated apart: the kiosk's video goes on a send-only
/// section that names RED and ULPFEC, the consultant's comes on a receive-only one whose offer
/// names neither (`negotiation::plain_receive_video`; the page puts its camera there). Chromium
/// then protects nothing it sends and keeps its whole rate for picture: protecting its own video
/// on the prison profile, it sent the kiosk 320x240 where it sends 640x480 (docs/architecture.md).
/// The send-only section comes first: rtc takes the codecs of every later offer from the first
/// video section of the answer, and the answer's must name RED and ULPFEC. The send-only sender.
async fn split_video(pc: &Arc<dyn PeerConnection>, track: Arc<dyn TrackLocal>) -> Result<Arc<dyn RtpSender>, Error> {
    let init = |direction| Some(RTCRtpTransceiverInit { direction, streams: Vec::new(), send_encodings: Vec::new() });
    let sending = pc
        .add_transceiver_from_track(track, init(RTCRtpTransceiverDirection::Sendonly))
        .await
        .map_err(Error::webrtc)?;
    pc.add_transceiver_from_kind(RtpCodecKind::Video, init(RTCRtpTransceiverDirection::Recvonly))
        .await
        .map_err(Error::webrtc)?;
    sending.sender().await.map_err(Error::webrtc)?.ok_or_else(|| Error::Codec("no sender for the video".into()))
}

/// Where the consultant's browser starts sending on a link the last call measured: where the
/// kiosk's own controller starts ([`crate::estimate::start_bps`]), when under its usual start.
fn peer_start_kbps(remembered_limit_bps: Option<f64>) -> Option<u32> {
    let bps = crate::estimate::start_bps(remembered_limit_bps);
    // Whole kbit/s of a rate between MIN_BPS and INITIAL_BPS: it fits.
    (bps < crate::estimate::INITIAL_BPS).then(|| (bps / 1000.0).round() as u32)
}
