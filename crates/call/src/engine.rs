//! One call: the peer connection (relay-only), the local media pumps (source -> encoder -> track),
//! the remote media sinks (track -> decoder -> frame/energy), and the signalling glue.

use crate::adapt::{Adapter, Settings};
use crate::audio::{OpusDecoder, OpusEncoder, FRAME_STEREO};
use crate::data::{DataIn, DataLink, DataSender};
use crate::estimate::LinkEstimate;
use crate::frame::I420Frame;
use crate::keyframe::{is_keyframe_request, KeyframeRequests};
use crate::source::{AudioSink, AudioSource, Black, VideoSource};
use crate::video::{is_keyframe, EncodedFrame, Vp8Decoder, Vp8Encoder};
use crate::Error;
use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use sc_proto::signal::{Candidate, FromServer, IceServer, Role, ToServer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track as _;
use webrtc::peer_connection::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback, MediaEngine, PeerConnection,
    PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

/// How a call is set up.
pub struct CallConfig {
    /// TURN servers and credentials from the care server; the only way out.
    pub ice_servers: Vec<IceServer>,
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

/// Counters, for tests, the page and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// VP8 frames handed to the track.
    pub frames_sent: u64,
    /// Of those, keyframes.
    pub keyframes_sent: u64,
    /// PLI/FIR received from the browser.
    pub keyframe_requests: u64,
    /// Remote frames decoded.
    pub frames_decoded: u64,
    /// Size of the last decoded remote frame.
    pub remote_width: u32,
    /// Size of the last decoded remote frame.
    pub remote_height: u32,
    /// Opus packets sent.
    pub audio_sent: u64,
    /// Opus packets decoded.
    pub audio_received: u64,
    /// Remote audio packets lost (concealed or recovered).
    pub audio_lost: u64,
    /// Mean energy of the last second of remote audio (fraction of full scale squared).
    pub audio_energy: f64,
    /// The loudest remote packet so far (same unit).
    pub audio_peak_energy: f64,
    /// When the first remote frame was decoded, relative to the call's start.
    pub first_remote_frame: Option<Duration>,
    /// The congestion controller's estimate of the link, kbit/s.
    pub target_kbps: f64,
    /// The loss the controller measured (0..1).
    pub link_loss: f64,
    /// What the kiosk sends now: the video rung and its bitrate (`None`: sound only, or not yet
    /// decided), and Opus's bitrate.
    pub sending: Option<crate::adapt::Settings>,
    /// The link is too poor for video: the kiosk sends sound only.
    pub sound_only_by_link: bool,
    /// ICE restarts begun (after the link stayed down).
    pub ice_restarts: u64,
}

/// The candidate types of the pair in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedPair {
    /// Our side, e.g. "relay".
    pub local: String,
    /// Their side.
    pub remote: String,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    keyframes_sent: AtomicU64,
    keyframe_requests: AtomicU64,
    frames_decoded: AtomicU64,
    remote_size: AtomicU64,
    audio_sent: AtomicU64,
    audio_received: AtomicU64,
    audio_lost: AtomicU64,
    audio_energy_bits: AtomicU64,
    audio_peak_bits: AtomicU64,
    first_frame_micros: AtomicU64,
    ice_restarts: AtomicU64,
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
}

/// Self-view frames: one in this many captured frames, shrunk by this factor.
const SELF_VIEW_EVERY: u32 = 3;
const SELF_VIEW_SHRINK: u32 = 4;

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
                RtpCodecKind::Video => receive_video(track, shared).await,
                RtpCodecKind::Audio => receive_audio(track, shared).await,
                _ => {}
            }
        });
    }
}

async fn send_pli(track: &Arc<dyn TrackRemote>) {
    if let Some(&media_ssrc) = track.ssrcs().await.first() {
        let pli: Box<dyn rtc::rtcp::Packet> = Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc });
        if let Err(e) = track.write_rtcp(vec![pli]).await {
            tracing::debug!(error = %e, "PLI not sent");
        }
    }
}

/// How long a frame with a missing packet waits for its retransmission before it is given up (and a
/// keyframe asked for): a NACK round trip on the poorest link (150 ms each way) with room to spare.
/// Without a bound the reassembly waits for 256 packets, ~8 s of video after an outage.
const REASSEMBLY_WAIT: Duration = Duration::from_millis(500);

/// Sent packets kept for retransmission (the NACK responder's default is 1024): about two seconds
/// of video at the top rung. After an outage the peer asks for everything it missed; resending
/// ten-second-old frames ahead of the live ones (measured: 170 a second for 5 s) stalled the
/// consultant's audio and video after the link came back (issue #12).
const RETRANSMIT_HISTORY: u16 = 64;

async fn receive_video(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let mut builder = SampleBuilder::new(256, Vp8Packet::default(), 90_000).with_max_time_delay(REASSEMBLY_WAIT);
    let mut decoder = match Vp8Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "no VP8 decoder");
            return;
        }
    };
    let mut have_key = false;
    let mut last_pli = Instant::now() - Duration::from_secs(10);
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        shared.estimate.heard();
        builder.push(Instant::now(), packet);
        while let Some(sample) = builder.pop(Instant::now()) {
            let lost = sample.prev_dropped_packets > 0;
            if is_keyframe(&sample.data) {
                have_key = true;
            }
            if (!have_key || lost) && last_pli.elapsed() > Duration::from_millis(500) {
                last_pli = Instant::now();
                send_pli(&track).await;
            }
            if !have_key {
                continue;
            }
            match decoder.decode(&sample.data) {
                Ok(Some(frame)) => {
                    let c = &shared.counters;
                    if c.frames_decoded.fetch_add(1, Ordering::Relaxed) == 0 {
                        let micros = u64::try_from(shared.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        c.first_frame_micros.store(micros.max(1), Ordering::Relaxed);
                        tracing::info!(
                            width = frame.width(),
                            height = frame.height(),
                            after_ms = micros / 1000,
                            "first remote frame decoded"
                        );
                    }
                    let size = (u64::from(frame.width()) << 32) | u64::from(frame.height());
                    if c.remote_size.swap(size, Ordering::Relaxed) != size {
                        // The peer scales its video under load: every size it sends must draw.
                        tracing::info!(width = frame.width(), height = frame.height(), "remote video size");
                    }
                    // Keep only the newest frame: whoever draws takes the latest, never a queue.
                    shared.frames.send_replace(Some(Arc::new(frame)));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable VP8 frame");
                    have_key = false;
                }
            }
        }
    }
}

async fn receive_audio(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let mut decoder = match OpusDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "no Opus decoder");
            return;
        }
    };
    let mut pcm = Vec::with_capacity(FRAME_STEREO * 4);
    let mut energy = 0.0f64;
    let mut playback = shared.playback.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        shared.estimate.heard();
        pcm.clear();
        match decoder.decode(packet.header.sequence_number, &packet.payload, &mut pcm) {
            Ok(d) => {
                let c = &shared.counters;
                c.audio_received.fetch_add(1, Ordering::Relaxed);
                c.audio_lost.fetch_add(u64::from(d.lost), Ordering::Relaxed);
                // A one-second moving average of energy (50 packets).
                energy += (d.energy - energy) / 50.0;
                if let Some(sink) = playback.as_mut() {
                    sink.play(&pcm);
                }
                c.audio_energy_bits.store(energy.to_bits(), Ordering::Relaxed);
                if d.energy > f64::from_bits(c.audio_peak_bits.load(Ordering::Relaxed)) {
                    c.audio_peak_bits.store(d.energy.to_bits(), Ordering::Relaxed);
                }
            }
            Err(e) => tracing::debug!(error = %e, "undecodable Opus packet"),
        }
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec { mime_type: mime.into(), clock_rate, channels, sdp_fmtp_line: fmtp.into(), rtcp_feedback: vec![] }
}

fn local_track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Result<Arc<TrackLocalStaticSample>, Error> {
    let name = if kind == RtpCodecKind::Video { "video" } else { "audio" };
    let track = MediaStreamTrack::new(
        "kiosk".into(),
        format!("kiosk-{name}"),
        name.into(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    Ok(Arc::new(TrackLocalStaticSample::new(Instant::now(), track).map_err(Error::webrtc)?))
}

fn random_ssrc() -> Result<u32, Error> {
    let mut b = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Codec("random SSRC".into()))?;
    Ok(u32::from_le_bytes(b))
}

async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>) -> Option<u8> {
    sender.get_parameters().await.ok()?.rtp_parameters.codecs.first().map(|c| c.payload_type)
}

/// Waits until the call connects (or ends).
async fn connected(shared: &Arc<Shared>) -> bool {
    let mut rx = shared.connected.subscribe();
    loop {
        if *rx.borrow_and_update() {
            return true;
        }
        if shared.stop.load(Ordering::Relaxed) || rx.changed().await.is_err() {
            return false;
        }
    }
}

fn spawn_video_encoder(
    shared: Arc<Shared>,
    mut source: Box<dyn VideoSource>,
    (width, height, fps, kbps): (u32, u32, u32, u32),
    out: mpsc::Sender<EncodedFrame>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut encoder = match Vp8Encoder::new(width, height, fps, kbps) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "no VP8 encoder");
                return;
            }
        };
        let mut black = Black::new(width, height);
        let period = Duration::from_secs(1) / fps.max(1);
        let mut next = Instant::now();
        let mut captured = 0u32;
        let mut adapter = Adapter::new();
        let mut adapted = Instant::now();
        // The rung's frame rate: frames are captured at the camera's rate and some skipped.
        let mut gap = period;
        let mut due = Instant::now();
        let mut last_sent: Option<Instant> = None;
        while !shared.stop.load(Ordering::Relaxed) {
            next += period;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            } else {
                next = Instant::now(); // fell behind: do not try to catch up
            }
            if let Some(other) = shared.next_video.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                source = other; // the old camera is dropped (closed) here
                shared.force_keyframe.store(true, Ordering::Relaxed);
            }
            let camera = shared.camera_on.load(Ordering::Relaxed) && !shared.audio_only.load(Ordering::Relaxed);
            let frame = if camera { source.next_frame() } else { black.next_frame() };
            captured = captured.wrapping_add(1);
            if captured % SELF_VIEW_EVERY == 1 {
                shared.local_frames.send_replace(Some(Arc::new(frame.shrunk(SELF_VIEW_SHRINK))));
            }
            // Encode nothing until media can flow, so the first frame out is the first keyframe.
            if shared.audio_only.load(Ordering::Relaxed) || !*shared.connected.borrow() {
                continue;
            }
            let now = Instant::now();
            if now.duration_since(adapted) >= ADAPT_EVERY {
                adapted = now;
                if let Some(s) = adapter.update(now, shared.estimate.target_bps(), shared.estimate.loss()) {
                    gap = apply(&shared, &mut encoder, s).unwrap_or(gap);
                }
            }
            if shared.sound_only_by_link.load(Ordering::Relaxed) || now < due {
                continue;
            }
            // Next frame one gap on, but never a burst to catch up after a stall.
            due = (due + gap).max(now + gap / 2);
            let duration = last_sent.map_or(gap, |t| now.duration_since(t));
            last_sent = Some(now);
            let (w, h) = encoder.size();
            let frame = if (frame.width(), frame.height()) == (w, h) { frame } else { frame.scaled(w, h) };
            let key = shared.force_keyframe.swap(false, Ordering::Relaxed);
            let at_ms = i64::try_from(shared.started.elapsed().as_millis()).unwrap_or(i64::MAX);
            match encoder.encode(&frame, key, at_ms, duration) {
                Ok(frames) => {
                    for f in frames {
                        // A full queue means the network is behind: drop rather than build latency.
                        let _ = out.try_send(f);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "VP8 encode failed"),
            }
        }
    })
}

/// How often the sending follows the estimate.
const ADAPT_EVERY: Duration = Duration::from_millis(500);

/// Applies new settings to the video encoder; returns the gap between frames they call for
/// (`None`: sound only, nothing to encode).
fn apply(shared: &Shared, encoder: &mut Vp8Encoder, s: Settings) -> Option<Duration> {
    *shared.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s);
    let was_sound_only = shared.sound_only_by_link.swap(s.video.is_none(), Ordering::Relaxed);
    let Some((rung, kbps)) = s.video else {
        if !was_sound_only {
            tracing::info!(target_kbps = shared.estimate.target_bps() / 1000.0, "link too poor for video: sound only");
        }
        return None;
    };
    tracing::info!(
        width = rung.width,
        height = rung.height,
        fps = rung.fps,
        kbps,
        target_kbps = (shared.estimate.target_bps() / 1000.0).round(),
        loss = shared.estimate.loss(),
        "sending follows the link"
    );
    match encoder.reconfigure(rung.width, rung.height, rung.fps, kbps) {
        // A new size, or video back after sound only, starts from a keyframe.
        Ok(resized) if resized || was_sound_only => shared.force_keyframe.store(true, Ordering::Relaxed),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the encoder refused new settings"),
    }
    Some(Duration::from_secs(1) / rung.fps.max(1))
}

fn spawn_audio_encoder(
    shared: Arc<Shared>,
    mut source: Box<dyn AudioSource>,
    out: mpsc::Sender<Vec<u8>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut encoder = match OpusEncoder::new() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "no Opus encoder");
                return;
            }
        };
        let mut pcm = vec![0i16; FRAME_STEREO];
        while !*shared.connected.borrow() {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut next = Instant::now();
        while !shared.stop.load(Ordering::Relaxed) {
            next += Duration::from_millis(20);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            } else {
                next = Instant::now();
            }
            let sending = *shared.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = sending {
                if let Err(e) = encoder.tune(s.audio_kbps, s.audio_loss_pct) {
                    tracing::warn!(error = %e, "Opus refused new settings");
                }
            }
            source.fill(&mut pcm);
            if shared.muted.load(Ordering::Relaxed) {
                pcm.fill(0);
            }
            match encoder.encode(&pcm) {
                Ok(packet) => {
                    let _ = out.try_send(packet);
                }
                Err(e) => tracing::warn!(error = %e, "Opus encode failed"),
            }
        }
    })
}

async fn pump<T: Send + 'static>(
    shared: Arc<Shared>,
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    mut rx: mpsc::Receiver<T>,
    bytes: impl Fn(T) -> (Vec<u8>, bool, Duration),
    video: bool,
) {
    if !connected(&shared).await {
        return;
    }
    let Some(pt) = negotiated_payload_type(&sender).await else {
        tracing::warn!(video, "no negotiated codec: nothing will be sent");
        return;
    };
    let Some(&ssrc) = track.ssrcs().await.first() else { return };
    while let Some(item) = rx.recv().await {
        let (data, key, duration) = bytes(item);
        let sample = Sample { data: Bytes::from(data), duration, ..Sample::new(Instant::now()) };
        if let Err(e) = track.sample_writer(ssrc, pt).write_sample(&sample).await {
            tracing::debug!(error = %e, "sample not written");
            continue;
        }
        let c = &shared.counters;
        if video {
            c.frames_sent.fetch_add(1, Ordering::Relaxed);
            if key {
                c.keyframes_sent.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            c.audio_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn keyframe_requests(shared: Arc<Shared>, track: Arc<TrackLocalStaticSample>) {
    if !connected(&shared).await {
        return;
    }
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
        if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            shared.counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            shared.force_keyframe.store(true, Ordering::Relaxed);
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
    pending: Mutex<Vec<RTCIceCandidateInit>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    data_rx: Mutex<Option<mpsc::Receiver<DataIn>>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({:?})", self.role)
    }
}

impl Call {
    /// Sets up the call. The offerer's offer comes out as the first `CallEvent::Signal`.
    pub async fn start(config: CallConfig, role: Role) -> Result<(Call, mpsc::UnboundedReceiver<CallEvent>), Error> {
        let turn: Vec<RTCIceServer> = config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        if turn.is_empty() {
            return Err(Error::NoRelay);
        }
        let vp8 = codec(MIME_TYPE_VP8, 90_000, 0, "");
        let opus = codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1");
        let mut media = MediaEngine::default();
        media
            .register_codec(RTCRtpCodecParameters { rtp_codec: vp8.clone(), payload_type: 96 }, RtpCodecKind::Video)
            .map_err(Error::webrtc)?;
        media
            .register_codec(RTCRtpCodecParameters { rtp_codec: opus.clone(), payload_type: 111 }, RtpCodecKind::Audio)
            .map_err(Error::webrtc)?;
        let estimate = LinkEstimate::new();
        // Google Congestion Control over transport-wide feedback, with the library's pacer; the
        // defaults add NACK (generator and responder), RTCP reports and the TWCC receiver.
        let registry =
            configure_congestion_control(Registry::new(), estimate.controller(), CongestionFeedback::Twcc, &mut media)
                .map_err(Error::webrtc)?;
        let registry = register_default_interceptors(registry, &mut media)
            .map_err(Error::webrtc)?
            .with(Slot::from(14_000usize), KeyframeRequests::default())
            .with(
                Slot::NackResponder,
                rtc::interceptor::NackResponderBuilder::new().with_size(RETRANSMIT_HISTORY).build(),
            );
        let rtc_config = RTCConfigurationBuilder::new()
            .with_ice_servers(turn)
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
        let video_track = local_track(RtpCodecKind::Video, vp8, random_ssrc()?)?;
        let audio_track = local_track(RtpCodecKind::Audio, opus, random_ssrc()?)?;
        let video_sender = pc.add_track(video_track.clone() as Arc<dyn TrackLocal>).await.map_err(Error::webrtc)?;
        let audio_sender = pc.add_track(audio_track.clone() as Arc<dyn TrackLocal>).await.map_err(Error::webrtc)?;

        let (vtx, vrx) = mpsc::channel::<EncodedFrame>(8);
        let (atx, arx) = mpsc::channel::<Vec<u8>>(16);
        let threads = vec![
            spawn_video_encoder(
                shared.clone(),
                config.video,
                (config.width, config.height, config.fps, config.video_kbps),
                vtx,
            ),
            spawn_audio_encoder(shared.clone(), config.audio, atx),
        ];
        let tasks = vec![
            tokio::spawn(pump(
                shared.clone(),
                video_track.clone(),
                video_sender,
                vrx,
                |f: EncodedFrame| (f.data, f.key, f.duration),
                true,
            )),
            tokio::spawn(pump(
                shared.clone(),
                audio_track,
                audio_sender,
                arx,
                |p: Vec<u8>| (p, false, Duration::from_millis(20)),
                false,
            )),
            tokio::spawn(keyframe_requests(shared.clone(), video_track)),
        ];

        let call = Call {
            pc,
            shared,
            role,
            remote_set: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            pending: Mutex::new(Vec::new()),
            threads: Mutex::new(threads),
            tasks: Mutex::new(tasks),
            data_rx: Mutex::new(Some(data_rx)),
        };
        if role == Role::Offerer {
            let offer = call.pc.create_offer(None).await.map_err(Error::webrtc)?;
            let sdp = offer.sdp.clone();
            call.pc.set_local_description(offer).await.map_err(Error::webrtc)?;
            call.shared.emit(CallEvent::Signal(ToServer::Offer { sdp }));
        }
        call.shared.emit(CallEvent::State(CallState::Connecting));
        Ok((call, events_rx))
    }

    async fn flush_candidates(&self) {
        let pending: Vec<_> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for c in pending {
            if let Err(e) = self.pc.add_ice_candidate(c).await {
                tracing::debug!(error = %e, "remote candidate refused");
            }
        }
    }

    /// Handles a signalling message from the other side.
    pub async fn handle(&self, msg: FromServer) -> Result<(), Error> {
        match msg {
            FromServer::Offer { sdp } if self.role == Role::Answerer => {
                let offer = RTCSessionDescription::offer(sdp).map_err(|e| Error::Signalling(e.to_string()))?;
                self.pc.set_remote_description(offer).await.map_err(|e| Error::Signalling(e.to_string()))?;
                self.remote_set.store(true, Ordering::SeqCst);
                self.flush_candidates().await;
                let answer = self.pc.create_answer(None).await.map_err(Error::webrtc)?;
                let sdp = answer.sdp.clone();
                self.pc.set_local_description(answer).await.map_err(Error::webrtc)?;
                self.shared.emit(CallEvent::Signal(ToServer::Answer { sdp }));
                Ok(())
            }
            // The first answer, or the answer to an ICE restart's offer; any other is out of turn.
            FromServer::Answer { sdp }
                if self.role == Role::Offerer
                    && (!self.remote_set.load(Ordering::SeqCst) || self.restarting.load(Ordering::SeqCst)) =>
            {
                let answer = RTCSessionDescription::answer(sdp).map_err(|e| Error::Signalling(e.to_string()))?;
                self.pc.set_remote_description(answer).await.map_err(|e| Error::Signalling(e.to_string()))?;
                self.remote_set.store(true, Ordering::SeqCst);
                self.restarting.store(false, Ordering::SeqCst);
                self.flush_candidates().await;
                Ok(())
            }
            FromServer::Candidate { candidate } => {
                let init = RTCIceCandidateInit {
                    candidate: candidate.candidate,
                    sdp_mid: candidate.sdp_mid,
                    sdp_mline_index: candidate.sdp_m_line_index,
                    ..Default::default()
                };
                if self.remote_set.load(Ordering::SeqCst) {
                    self.pc.add_ice_candidate(init).await.map_err(|e| Error::Signalling(e.to_string()))
                } else {
                    self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(init);
                    Ok(())
                }
            }
            other => Err(Error::Signalling(format!("{other:?}").chars().take(80).collect())),
        }
    }

    /// Restarts ICE (the offerer only): a new offer with fresh credentials goes out as a
    /// `CallEvent::Signal`, and candidates are gathered again on the same relay; the media, DTLS
    /// and the share channel carry on once the new path connects. Until the answer comes,
    /// another restart is refused.
    pub async fn restart_ice(&self) -> Result<(), Error> {
        if self.role != Role::Offerer {
            return Err(Error::Signalling("only the offerer restarts ICE".into()));
        }
        if self.restarting.swap(true, Ordering::SeqCst) {
            return Err(Error::Signalling("an ICE restart is already waiting for its answer".into()));
        }
        let started = async {
            self.pc.restart_ice().await.map_err(Error::webrtc)?;
            let offer = self.pc.create_offer(None).await.map_err(Error::webrtc)?;
            let sdp = offer.sdp.clone();
            self.pc.set_local_description(offer).await.map_err(Error::webrtc)?;
            Ok::<_, Error>(sdp)
        };
        match started.await {
            Ok(sdp) => {
                self.shared.counters.ice_restarts.fetch_add(1, Ordering::Relaxed);
                self.shared.emit(CallEvent::Signal(ToServer::Offer { sdp }));
                Ok(())
            }
            Err(e) => {
                self.restarting.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Whether the other side's session description has been applied.
    pub fn has_remote_description(&self) -> bool {
        self.remote_set.load(Ordering::SeqCst)
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
        *self.shared.next_video.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
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
        self.data_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Sends replies on the share channel.
    pub fn data_sender(&self) -> DataSender {
        DataSender(self.shared.data.clone())
    }

    /// Counters so far.
    pub fn stats(&self) -> CallStats {
        let c = &self.shared.counters;
        let size = c.remote_size.load(Ordering::Relaxed);
        let first = c.first_frame_micros.load(Ordering::Relaxed);
        CallStats {
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            keyframes_sent: c.keyframes_sent.load(Ordering::Relaxed),
            keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
            frames_decoded: c.frames_decoded.load(Ordering::Relaxed),
            remote_width: (size >> 32) as u32,
            remote_height: (size & 0xffff_ffff) as u32,
            audio_sent: c.audio_sent.load(Ordering::Relaxed),
            audio_received: c.audio_received.load(Ordering::Relaxed),
            audio_lost: c.audio_lost.load(Ordering::Relaxed),
            audio_energy: f64::from_bits(c.audio_energy_bits.load(Ordering::Relaxed)),
            audio_peak_energy: f64::from_bits(c.audio_peak_bits.load(Ordering::Relaxed)),
            first_remote_frame: (first > 0).then(|| Duration::from_micros(first)),
            target_kbps: self.shared.estimate.target_bps() / 1000.0,
            link_loss: self.shared.estimate.loss(),
            sending: *self.shared.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            sound_only_by_link: self.shared.sound_only_by_link.load(Ordering::Relaxed),
            ice_restarts: c.ice_restarts.load(Ordering::Relaxed),
        }
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
        for t in std::mem::take(&mut *self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)) {
            t.abort();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        self.shared.emit(CallEvent::State(CallState::Closed));
    }
}
