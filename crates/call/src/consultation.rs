//! A consultation from the kiosk's side: join the appointment's waiting room over the signalling
//! connection, wait to be admitted, run the call, and end it. The state is published on a watch
//! channel for the page; commands (hang up, mute, camera) come in through the handle.

use crate::images::{self, ImagesStatus};
use crate::source::{AudioSink, AudioSource, Checkerboard, NullSink, TestPattern, Tone, VideoSource};
use crate::{Call, CallConfig, CallEvent, CallStats, I420Frame, SelectedPair};
use sc_core::client::SessionToken;
use sc_core::record::EnrolmentRecord;
use sc_core::signal::{Incoming, Signalling};
use sc_proto::signal::{Appointment, FromServer, LinkQuality, Role, ToServer};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where the consultation is, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Connecting to the server and joining the room.
    Joining,
    /// In the waiting room until the consultant admits the laptop.
    Waiting {
        /// The appointment.
        appointment: Appointment,
    },
    /// Admitted; connecting the call through the relay.
    Connecting,
    /// In the call.
    InCall {
        /// Microphone muted.
        muted: bool,
        /// Camera on.
        camera: bool,
        /// Audio only.
        audio_only: bool,
        /// Which camera sends (index into the laptop's cameras).
        camera_index: usize,
        /// How many cameras the laptop has (the page offers "Switch camera" when more than one).
        cameras: usize,
        /// Something the nurse should know that does not end the call.
        notice: Option<String>,
        /// How the connection is doing (good, weak, sound only), for the indicator.
        quality: LinkQuality,
        /// The images the consultant shares.
        images: ImagesStatus,
    },
    /// Over; the page goes back to the appointments.
    Ended {
        /// Why, in words for the nurse.
        reason: String,
    },
}

/// Opens camera `n` (of [`MediaSetup::cameras`]).
pub type VideoFactory = Box<dyn Fn(usize) -> Result<Box<dyn VideoSource>, String> + Send + Sync>;
/// Opens the microphone.
pub type AudioFactory = Box<dyn Fn() -> Result<Box<dyn AudioSource>, String> + Send + Sync>;
/// Opens the speaker.
pub type PlaybackFactory = Box<dyn Fn() -> Result<Box<dyn AudioSink>, String> + Send + Sync>;

/// How the kiosk's media is set up for calls.
pub struct MediaSetup {
    /// UDP sockets for the TURN client.
    pub bind_addrs: Vec<String>,
    /// The cameras' names in switching order (the laptop's own first, then a hand-held one).
    pub cameras: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// Opens a camera.
    pub video: VideoFactory,
    /// Opens the microphone.
    pub audio: AudioFactory,
    /// Opens the speaker.
    pub playback: PlaybackFactory,
    /// How long the call may take to connect through the relay before it is given up.
    pub connect_timeout: Duration,
}

/// What both screens say while the link is too poor for video.
pub const SOUND_ONLY_NOTICE: &str = "Poor connection: sound only";

/// What the nurse is told when the laptop has no camera.
pub const NO_CAMERA: &str = "No camera is available on this laptop.";

impl MediaSetup {
    /// Synthetic media for tests and the demo: two "cameras" (the moving bars, and a checkerboard
    /// standing in for the hand-held close-up camera), a 440 Hz tone, and no speaker.
    pub fn synthetic(bind_addrs: Vec<String>, connect_timeout: Duration) -> Self {
        MediaSetup {
            bind_addrs,
            cameras: Box::new(|| vec!["Test pattern".to_owned(), "Close-up (checkerboard)".to_owned()]),
            video: Box::new(|n| match n {
                0 => Ok(Box::new(TestPattern::new(640, 480)) as Box<dyn VideoSource>),
                1 => Ok(Box::new(Checkerboard::new(640, 480)) as Box<dyn VideoSource>),
                _ => Err(NO_CAMERA.to_owned()),
            }),
            audio: Box::new(|| Ok(Box::new(Tone::new(440.0, 0.2)) as Box<dyn AudioSource>)),
            playback: Box::new(|| Ok(Box::new(NullSink) as Box<dyn AudioSink>)),
            connect_timeout,
        }
    }
}

impl MediaSetup {
    /// As [`MediaSetup::synthetic`], with a Y4M clip played in a loop as the first camera (the
    /// link tests and benchmarks: what a real camera sends, not a pattern that compresses away).
    pub fn clip(bind_addrs: Vec<String>, connect_timeout: Duration, path: std::path::PathBuf) -> Self {
        let mut media = MediaSetup::synthetic(bind_addrs, connect_timeout);
        media.cameras = Box::new(|| vec!["Video clip".to_owned(), "Close-up (checkerboard)".to_owned()]);
        media.video = Box::new(move |n| match n {
            0 => crate::y4m::Y4mClip::open(&path, 640, 480).map(|c| Box::new(c) as Box<dyn VideoSource>),
            1 => Ok(Box::new(Checkerboard::new(640, 480)) as Box<dyn VideoSource>),
            _ => Err(NO_CAMERA.to_owned()),
        });
        media
    }
}

impl std::fmt::Debug for MediaSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaSetup({:?})", self.bind_addrs)
    }
}

enum Command {
    HangUp,
    Mute(bool),
    Camera(bool),
    AudioOnly(bool),
    SwitchCamera,
    ResetView,
}

/// A running consultation.
#[derive(Debug)]
pub struct Consultation {
    phase: watch::Receiver<Phase>,
    frames: watch::Receiver<Option<Arc<I420Frame>>>,
    self_view: watch::Receiver<Option<Arc<I420Frame>>>,
    stats: watch::Receiver<CallStats>,
    pair: watch::Receiver<Option<SelectedPair>>,
    screen: watch::Receiver<Option<Arc<sc_imaging::Screen>>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Consultation {
    /// Starts joining `room_code`; returns at once. Must be called within a Tokio runtime.
    pub fn start(record: EnrolmentRecord, session: SessionToken, room_code: String, media: Arc<MediaSetup>) -> Self {
        let (phase_tx, phase) = watch::channel(Phase::Joining);
        let (frames_tx, frames) = watch::channel(None);
        let (self_tx, self_view) = watch::channel(None);
        let (stats_tx, stats) = watch::channel(CallStats::default());
        let (pair_tx, pair) = watch::channel(None);
        let (screen_tx, screen) = watch::channel(None);
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let outs = Outputs {
                phase: phase_tx.clone(),
                frames: frames_tx,
                self_view: self_tx,
                stats: stats_tx,
                pair: pair_tx,
                screen: screen_tx,
            };
            let reason = run(record, session, room_code, media, outs, rx).await;
            tracing::info!(%reason, "consultation ended");
            let _ = phase_tx.send(Phase::Ended { reason });
        });
        Consultation { phase, frames, self_view, stats, pair, screen, commands }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// Phase changes.
    pub fn phases(&self) -> watch::Receiver<Phase> {
        self.phase.clone()
    }

    /// The newest remote frame, as it changes.
    pub fn frames(&self) -> watch::Receiver<Option<Arc<I420Frame>>> {
        self.frames.clone()
    }

    /// The self-view (what the laptop sends, small), as it changes.
    pub fn self_view(&self) -> watch::Receiver<Option<Arc<I420Frame>>> {
        self.self_view.clone()
    }

    /// The shared image to draw, as it changes (`None` when there is none, and after the call).
    pub fn images(&self) -> watch::Receiver<Option<Arc<sc_imaging::Screen>>> {
        self.screen.clone()
    }

    /// The nurse puts the image back as the file shows it (the consultant is told).
    pub fn reset_view(&self) {
        let _ = self.commands.send(Command::ResetView);
    }

    /// Call counters (updated twice a second).
    pub fn stats(&self) -> CallStats {
        *self.stats.borrow()
    }

    /// The ICE candidate pair in use, once connected (types such as "relay").
    pub fn selected_pair(&self) -> Option<SelectedPair> {
        self.pair.borrow().clone()
    }

    /// Ends the consultation (or leaves the waiting room).
    pub fn hang_up(&self) {
        let _ = self.commands.send(Command::HangUp);
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&self, on: bool) {
        let _ = self.commands.send(Command::Mute(on));
    }

    /// Camera on or off.
    pub fn set_camera(&self, on: bool) {
        let _ = self.commands.send(Command::Camera(on));
    }

    /// Audio only on or off.
    pub fn set_audio_only(&self, on: bool) {
        let _ = self.commands.send(Command::AudioOnly(on));
    }

    /// Switches to the laptop's next camera (the hand-held one, and back).
    pub fn switch_camera(&self) {
        let _ = self.commands.send(Command::SwitchCamera);
    }
}

struct Outputs {
    phase: watch::Sender<Phase>,
    frames: watch::Sender<Option<Arc<I420Frame>>>,
    self_view: watch::Sender<Option<Arc<I420Frame>>>,
    stats: watch::Sender<CallStats>,
    pair: watch::Sender<Option<SelectedPair>>,
    screen: watch::Sender<Option<Arc<sc_imaging::Screen>>>,
}

async fn run(
    record: EnrolmentRecord,
    session: SessionToken,
    room_code: String,
    media: Arc<MediaSetup>,
    out: Outputs,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> String {
    let phase = &out.phase;
    // A core error ends the call in sc-core's words for it, the same the page shows everywhere.
    let mut sig = match Signalling::connect(&record, &session).await {
        Ok(s) => s,
        Err(e) => return e.for_nurse().message,
    };
    if let Err(e) = sig.send(&ToServer::Join { room_code }).await {
        return e.for_nurse().message;
    }
    // Waiting room: until admitted, refused, or the nurse gives up.
    let ice_servers = loop {
        tokio::select! {
            msg = sig.recv() => match msg {
                Some(Incoming::Message(FromServer::Waiting { appointment })) => { let _ = phase.send(Phase::Waiting { appointment }); }
                Some(Incoming::Message(FromServer::Admitted { role: Role::Offerer, ice_servers, .. })) => break ice_servers,
                Some(Incoming::Message(FromServer::Error { message, .. })) => return message,
                Some(other) => tracing::debug!(?other, "ignored while waiting"),
                None => return "The connection to the healthcare server was lost.".into(),
            },
            cmd = commands.recv() => if matches!(cmd, Some(Command::HangUp) | None) {
                let _ = sig.send(&ToServer::HangUp).await;
                sig.close().await;
                return "You left the waiting room.".into();
            },
        }
    };
    let _ = phase.send(Phase::Connecting);
    let cameras = (media.cameras)().len();
    let opened = if cameras == 0 { Err(NO_CAMERA.to_owned()) } else { (media.video)(0) };
    let (video, audio, playback) = match (opened, (media.audio)(), (media.playback)()) {
        (Ok(v), Ok(a), Ok(p)) => (v, a, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            let _ = sig.send(&ToServer::HangUp).await;
            return e;
        }
    };
    let config = CallConfig {
        ice_servers,
        bind_addrs: media.bind_addrs.clone(),
        width: 640,
        height: 480,
        fps: 30,
        video_kbps: 800,
        video,
        audio,
        playback,
    };
    let (call, mut events) = match Call::start(config, Role::Offerer).await {
        Ok(c) => c,
        Err(e) => {
            let _ = sig.send(&ToServer::HangUp).await;
            return format!("The call could not start: {e}");
        }
    };
    // The shared images: their own task, ended (and the images dropped) with the call.
    let (reset_tx, reset_rx) = mpsc::unbounded_channel();
    let (status_tx, mut image_status) = watch::channel(ImagesStatus::default());
    let viewer = call.take_data().map(|data| {
        tokio::spawn(images::run(
            data,
            call.data_sender(),
            reset_rx,
            images::Outputs { screen: out.screen.clone(), status: status_tx },
        ))
    });
    let mut images_live = viewer.is_some();
    let mut remote_frames = call.frames();
    let mut local_frames = call.local_frames();
    let connect_deadline = tokio::time::Instant::now() + media.connect_timeout;
    let (mut muted, mut camera, mut audio_only, mut camera_index) = (false, true, false, 0usize);
    let mut notice: Option<String> = None;
    // What this side last told the consultant's page about the link (sent on every change).
    let mut quality = LinkQuality::Good;
    let mut told: Option<LinkQuality> = None;
    let in_call = |muted,
                   camera,
                   audio_only: bool,
                   camera_index,
                   notice: &Option<String>,
                   quality: LinkQuality,
                   images: &watch::Receiver<ImagesStatus>| {
        // The link's own verdict is worth saying in words; the nurse's choice they know already.
        let said = match quality {
            LinkQuality::SoundOnly if !audio_only => Some(SOUND_ONLY_NOTICE.to_owned()),
            _ => None,
        };
        Phase::InCall {
            muted,
            camera,
            audio_only,
            camera_index,
            cameras,
            notice: notice.clone().or(said),
            quality,
            images: images.borrow().clone(),
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let reason = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(CallEvent::Signal(m)) => if sig.send(&m).await.is_err() { break "The connection to the healthcare server was lost.".to_owned() },
                Some(CallEvent::State(crate::CallState::Connected)) => { let _ = phase.send(in_call(muted, camera, audio_only, camera_index, &notice, quality, &image_status)); }
                Some(CallEvent::Ended(reason)) => break reason,
                Some(_) => {}
                None => break "The call stopped.".to_owned(),
            },
            msg = sig.recv() => match msg {
                Some(Incoming::Message(FromServer::Quality { quality: theirs })) => {
                    tracing::info!(?theirs, "the consultant's connection");
                }
                Some(Incoming::Message(m)) => {
                    let description = matches!(m, FromServer::Answer { .. });
                    if let Err(e) = call.handle(m).await {
                        tracing::warn!(error = %e, "signalling message not applied");
                        // Without the browser's answer there is no call; a bad candidate or a
                        // message out of turn is only skipped.
                        if description && matches!(e, crate::Error::Signalling(_)) && !call.has_remote_description() {
                            let _ = sig.send(&ToServer::HangUp).await;
                            break "The consultant's browser sent a call set-up this laptop cannot use. Try joining again.".to_owned();
                        }
                    }
                }
                Some(Incoming::Garbled(g)) => tracing::warn!(error = %g, "garbled signalling message skipped"),
                Some(_) => {}
                None => break "The connection to the healthcare server was lost.".to_owned(),
            },
            changed = remote_frames.changed() => if changed.is_ok() {
                let f = remote_frames.borrow_and_update().clone();
                out.frames.send_replace(f);
            },
            changed = local_frames.changed() => if changed.is_ok() {
                let f = local_frames.borrow_and_update().clone();
                out.self_view.send_replace(f);
            },
            cmd = commands.recv() => match cmd {
                Some(Command::HangUp) | None => { let _ = sig.send(&ToServer::HangUp).await; break "You ended the call.".to_owned() }
                Some(Command::Mute(on)) => { muted = on; call.set_muted(on); }
                Some(Command::Camera(on)) => { camera = on; call.set_camera(on); }
                Some(Command::AudioOnly(on)) => { audio_only = on; call.set_audio_only(on); }
                Some(Command::ResetView) => { let _ = reset_tx.send(()); }
                Some(Command::SwitchCamera) => {
                    let next = (camera_index + 1) % cameras.max(1);
                    match (media.video)(next) {
                        Ok(source) => {
                            call.switch_video(source);
                            camera_index = next;
                            notice = None;
                        }
                        Err(e) => notice = Some(format!("Could not switch camera: {e}")),
                    }
                }
            },
            changed = image_status.changed(), if images_live => images_live = changed.is_ok(),
            _ = tick.tick() => {
                if matches!(*phase.borrow(), Phase::Connecting) && tokio::time::Instant::now() >= connect_deadline {
                    let _ = sig.send(&ToServer::HangUp).await;
                    break "The call could not connect through the relay. Check the network and try again.".to_owned();
                }
                let stats = call.stats();
                quality = crate::adapt::quality(stats.sending, stats.link_loss, audio_only);
                if matches!(*phase.borrow(), Phase::InCall { .. }) && told != Some(quality) {
                    // The page shows it, and stops sending video while it says sound only.
                    if sig.send(&ToServer::Quality { quality }).await.is_ok() {
                        told = Some(quality);
                    }
                }
                out.stats.send_replace(stats);
                if out.pair.borrow().is_none() {
                    if let Some(p) = call.selected_pair().await { out.pair.send_replace(Some(p)); }
                }
            }
        }
        let now = in_call(muted, camera, audio_only, camera_index, &notice, quality, &image_status);
        phase.send_if_modified(|p| {
            let changed = matches!(p, Phase::InCall { .. }) && *p != now;
            if changed {
                *p = now.clone();
            }
            changed
        });
    };
    out.stats.send_replace(call.stats());
    drop(reset_tx);
    if let Some(v) = viewer {
        let _ = v.await;
    }
    out.screen.send_replace(None);
    call.close().await;
    sig.close().await;
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_setup_plays_the_clip_as_the_first_camera_and_names_a_missing_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clip.y4m");
        let mut bytes = b"YUV4MPEG2 W640 H480 F30:1 C420jpeg\nFRAME\n".to_vec();
        bytes.extend(std::iter::repeat_n(77u8, 640 * 480));
        bytes.extend(std::iter::repeat_n(128u8, 640 * 480 / 2));
        std::fs::write(&path, bytes).expect("write");
        let media = MediaSetup::clip(vec![], Duration::from_secs(1), path.clone());
        assert_eq!((media.cameras)()[0], "Video clip");
        let mut camera = (media.video)(0).expect("the clip opens");
        assert_eq!(camera.next_frame().mean_luma(0, 0, 640, 480), 77.0);
        assert!((media.video)(1).is_ok(), "the close-up camera stays");

        std::fs::remove_file(&path).expect("remove");
        let e = (media.video)(0).err().expect("a missing clip is an error");
        assert!(e.contains("clip.y4m"), "{e}");
    }
}
