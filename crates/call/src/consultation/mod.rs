//! A consultation from the kiosk's side: join the appointment's waiting room over the signalling
//! connection, wait to be admitted, run the call, and end it. The rules (phases, quality messages,
//! reconnecting, ending) are the pure state machine in [`rules`]; this module is the thin I/O loop
//! around it: signalling, the call engine, the image viewer and the nurse's commands go in, the
//! phase is published on a watch channel for the page.

mod media;
pub mod rules;

pub use media::{AudioFactory, MediaSetup, PlaybackFactory, VideoFactory, NO_CAMERA, SOUND_ONLY_NOTICE};
pub use rules::{Command, EndReason, RECONNECTING_NOTICE, RECONNECT_LIMIT};

use crate::images::{self, ImagesStatus};
use crate::link_memory::{self, Known, LinkMemory, Remembered};
use crate::{Call, CallConfig, CallEvent, CallStats, I420Frame, SelectedPair};
use rules::{Action, Input, Rules};
use sc_core::client::SessionToken;
use sc_core::record::EnrolmentRecord;
use sc_core::signal::{Incoming, Signalling};
use sc_proto::signal::{Appointment, FromServer, LinkQuality, Role, ToServer};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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
        /// The link is down and the call is coming back by itself (the notice says so).
        reconnecting: bool,
        /// The images the consultant shares.
        images: ImagesStatus,
    },
    /// Over; the page goes back to the appointments.
    Ended {
        /// Why, in words for the nurse.
        reason: String,
        /// Why, for the program.
        cause: EndReason,
    },
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
            let ended = run(record, session, room_code, media, outs, rx).await;
            tracing::info!(reason = %ended.message(), "consultation ended");
            let _ = phase_tx.send(Phase::Ended { reason: ended.message(), cause: ended });
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

    /// The nurse pauses a playing image on the frame shown (the consultant is told).
    pub fn pause_images(&self) {
        let _ = self.commands.send(Command::PauseImages);
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

/// What the I/O loop holds once the call engine runs.
struct Running {
    call: Call,
    events: mpsc::UnboundedReceiver<CallEvent>,
    nurse: mpsc::UnboundedSender<images::Nurse>,
    image_status: watch::Receiver<ImagesStatus>,
    images_live: bool,
    viewer: Option<tokio::task::JoinHandle<()>>,
    remote_frames: watch::Receiver<Option<Arc<I420Frame>>>,
    local_frames: watch::Receiver<Option<Arc<I420Frame>>>,
    /// The link's record the call started from.
    remembered: Option<Remembered>,
}

impl Running {
    async fn stop(self, out: &Outputs, memory: Option<&LinkMemory>) {
        out.stats.send_replace(self.call.stats());
        // What the call learnt of the link, for the next call's start; a failed write costs only that.
        let (measured, carried) = (self.call.measured_limit_bps(), self.call.carried_bps());
        let keep = link_memory::after_call(self.remembered, measured, carried, std::time::SystemTime::now());
        if let (Some(memory), Some(record)) = (memory, keep.filter(|k| Some(*k) != self.remembered)) {
            match memory.store(record) {
                Ok(()) => tracing::info!(known = ?record.known, "link remembered for the next call"),
                Err(e) => tracing::warn!(error = %e, "the link's record could not be written"),
            }
        }
        drop(self.nurse);
        if let Some(v) = self.viewer {
            let _ = v.await;
        }
        out.screen.send_replace(None);
        self.call.close().await;
    }
}

/// Opens the media and starts the engine (the offer comes out as its first event).
async fn start_call(
    media: &MediaSetup,
    ice_servers: Vec<sc_proto::signal::IceServer>,
    relay_trust: Option<Arc<rustls::ClientConfig>>,
    out: &Outputs,
) -> Result<Running, EndReason> {
    let cameras = (media.cameras)().len();
    let opened = if cameras == 0 { Err(NO_CAMERA.to_owned()) } else { (media.video)(0) };
    let (video, audio, playback) = match (opened, (media.audio)(), (media.playback)()) {
        (Ok(v), Ok(a), Ok(p)) => (v, a, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(EndReason::Media(e)),
    };
    let remembered = media.link_memory.as_ref().and_then(|m| m.load(std::time::SystemTime::now()));
    let known = remembered.map(|r| r.known);
    tracing::info!(
        known = ?known,
        start_kbps = (crate::estimate::start_bps(known.and_then(Known::limit_bps)) / 1000.0).round(),
        "the call starts from the link's record"
    );
    let config = CallConfig {
        ice_servers,
        relay_trust,
        bind_addrs: media.bind_addrs.clone(),
        width: 640,
        height: 480,
        fps: 30,
        video_kbps: 800,
        video,
        audio,
        playback,
        video_fec: media.video_fec,
        remembered: known,
    };
    let (call, events) =
        Call::start(config, Role::Offerer).await.map_err(|e| EndReason::CouldNotStart(e.to_string()))?;
    // The shared images: their own task, ended (and the images dropped) with the call.
    let (nurse, nurse_rx) = mpsc::unbounded_channel();
    let (status_tx, image_status) = watch::channel(ImagesStatus::default());
    let viewer = call.take_data().map(|data| {
        tokio::spawn(images::run(
            media.decoder.clone(),
            data,
            call.data_sender(),
            nurse_rx,
            images::Outputs { screen: out.screen.clone(), status: status_tx },
        ))
    });
    Ok(Running {
        images_live: viewer.is_some(),
        remote_frames: call.frames(),
        local_frames: call.local_frames(),
        remembered,
        call,
        events,
        nurse,
        image_status,
        viewer,
    })
}

/// Something the loop waited for.
enum Event {
    Signal(Option<Incoming>),
    /// A try to reopen the signalling finished.
    Reconnected(Result<Box<Signalling>, sc_core::Error>),
    Engine(Option<CallEvent>),
    Command(Option<Command>),
    RemoteFrame,
    LocalFrame,
    Images(bool),
    Tick,
    Due,
}

async fn run(
    record: EnrolmentRecord,
    session: SessionToken,
    room_code: String,
    media: Arc<MediaSetup>,
    out: Outputs,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> EndReason {
    // A core error ends the call in sc-core's words for it, the same the page shows everywhere.
    let mut first = match Signalling::connect(&record, &session).await {
        Ok(s) => s,
        Err(e) => return EndReason::Refused(e.for_nurse().message),
    };
    if let Err(e) = first.send(&ToServer::Join { room_code }).await {
        return EndReason::Refused(e.for_nurse().message);
    }
    // `None` while the signalling is down (the call goes on; the rules say when to reconnect).
    let mut sig = Some(first);
    let mut reconnecting: Option<tokio::task::JoinHandle<Result<Signalling, sc_core::Error>>> = None;
    let mut rules = Rules::new(media.connect_timeout, (media.cameras)().len());
    let mut ice_servers = Vec::new();
    // A `turns:` relay is trusted as the care server is: the CA pinned at enrolment, nothing else.
    let relay_trust = match sc_core::tls::pinned_relay(&record.ca_cert.0) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => return EndReason::Refused(e.for_nurse().message),
    };
    let mut running: Option<Running> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        // Carry out what the rules decided.
        while let Some(action) = rules.poll_action() {
            match action {
                Action::Send(m) => send(&mut sig, &mut rules, &m).await,
                Action::ReconnectSignalling => {
                    let (record, session) = (record.clone(), session.clone());
                    // Off the loop: a server that does not answer must not hold up the call's frames.
                    reconnecting = Some(tokio::spawn(async move {
                        tokio::time::timeout(RECONNECT_TIMEOUT, Signalling::connect(&record, &session))
                            .await
                            .unwrap_or(Err(sc_core::Error::Unreachable))
                    }));
                }
                Action::StartCall => {
                    match start_call(&media, std::mem::take(&mut ice_servers), relay_trust.clone(), &out).await {
                        Ok(r) => {
                            running = Some(r);
                            rules.handle(Instant::now().into_std(), Input::CallStarted);
                        }
                        Err(reason) => rules.handle(Instant::now().into_std(), Input::CouldNotStart(reason)),
                    }
                }
                Action::Mute(on) => running.iter().for_each(|r| r.call.set_muted(on)),
                Action::Camera(on) => running.iter().for_each(|r| r.call.set_camera(on)),
                Action::AudioOnly(on) => running.iter().for_each(|r| r.call.set_audio_only(on)),
                Action::ResetView => running.iter().for_each(|r| {
                    let _ = r.nurse.send(images::Nurse::Reset);
                }),
                Action::PauseImages => running.iter().for_each(|r| {
                    let _ = r.nurse.send(images::Nurse::Pause);
                }),
                Action::OpenCamera(n) => {
                    let opened = (media.video)(n).map(|source| {
                        if let Some(r) = &running {
                            r.call.switch_video(source);
                        }
                        n
                    });
                    rules.handle(Instant::now().into_std(), Input::CameraOpened(opened));
                }
                Action::VoiceFormat(format) => {
                    if let Some(r) = &running {
                        if let Err(e) = r.call.set_voice_format(format).await {
                            tracing::warn!(error = %e, ?format, "the voice format was not offered");
                        }
                    }
                }
                Action::RestartIce => {
                    if let Some(r) = &running {
                        if let Err(e) = r.call.restart_ice().await {
                            tracing::warn!(error = %e, "ICE restart not started");
                        }
                    }
                }
                Action::PingServer => {
                    if let Some(s) = sig.as_mut() {
                        if let Err(e) = s.ping().await {
                            tracing::debug!(error = %e, "ping not sent");
                        }
                    }
                }
                Action::Close => {}
            }
        }
        // The end is published only once the call is torn down (by `Consultation::start`, after
        // this returns): whoever sees `Ended` may rely on the images being gone and the devices
        // released (a race e2e::share caught).
        if rules.is_ended() {
            break;
        }
        out.phase.send_if_modified(|p| {
            let changed = p != rules.phase();
            if changed {
                *p = rules.phase().clone();
            }
            changed
        });
        let due = rules.poll_timeout().map(Instant::from_std);
        let event = match &mut running {
            None => tokio::select! {
                m = recv(&mut sig) => Event::Signal(m),
                done = joined(&mut reconnecting) => Event::Reconnected(done.map(Box::new)),
                c = commands.recv() => Event::Command(c),
                _ = sleep_until(due) => Event::Due,
            },
            Some(r) => tokio::select! {
                m = recv(&mut sig) => Event::Signal(m),
                done = joined(&mut reconnecting) => Event::Reconnected(done.map(Box::new)),
                e = r.events.recv() => Event::Engine(e),
                c = commands.recv() => Event::Command(c),
                changed = r.remote_frames.changed() => {
                    if changed.is_ok() { Event::RemoteFrame } else { Event::Engine(None) }
                }
                changed = r.local_frames.changed() => {
                    if changed.is_ok() { Event::LocalFrame } else { Event::Engine(None) }
                }
                changed = r.image_status.changed(), if r.images_live => Event::Images(changed.is_ok()),
                _ = tick.tick() => Event::Tick,
                _ = sleep_until(due) => Event::Due,
            },
        };
        let now = Instant::now().into_std();
        match event {
            Event::Signal(msg) => {
                if msg.is_none() {
                    sig = None;
                }
                on_signal(&mut rules, now, running.as_ref(), &mut ice_servers, msg).await;
            }
            Event::Reconnected(done) => {
                reconnecting = None;
                match done {
                    Ok(s) => {
                        sig = Some(*s);
                        rules.handle(now, Input::SignallingBack);
                    }
                    // The session is over (locked, disabled): no call goes on without one.
                    Err(e @ (sc_core::Error::Refused | sc_core::Error::UntrustedServer)) => {
                        rules.handle(now, Input::SignallingRefused(e.for_nurse().message));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the signalling is not back yet");
                        rules.handle(now, Input::SignallingLost);
                    }
                }
            }
            Event::Engine(Some(CallEvent::Signal(m))) => send(&mut sig, &mut rules, &m).await,
            Event::Engine(Some(CallEvent::State(state))) => rules.handle(now, Input::Connection(state)),
            Event::Engine(None) => rules.handle(now, Input::EngineStopped),
            Event::Command(Some(c)) => rules.handle(now, Input::Command(c)),
            Event::Command(None) => rules.handle(now, Input::Command(Command::HangUp)),
            Event::RemoteFrame => {
                if let Some(r) = &mut running {
                    out.frames.send_replace(r.remote_frames.borrow_and_update().clone());
                }
            }
            Event::LocalFrame => {
                if let Some(r) = &mut running {
                    out.self_view.send_replace(r.local_frames.borrow_and_update().clone());
                }
            }
            Event::Images(live) => {
                if let Some(r) = &mut running {
                    r.images_live = live;
                    let status = r.image_status.borrow_and_update().clone();
                    rules.handle(now, Input::Images(status));
                }
            }
            Event::Tick => {
                if let Some(r) = &running {
                    let stats = r.call.stats();
                    rules.handle(
                        now,
                        Input::Link { sending: stats.sending, loss: stats.link_loss, estimate_kbps: stats.target_kbps },
                    );
                    out.stats.send_replace(stats);
                    if out.pair.borrow().is_none() {
                        if let Some(p) = r.call.selected_pair().await {
                            out.pair.send_replace(Some(p));
                        }
                    }
                }
            }
            Event::Due => rules.handle_timeout(now),
        }
    }
    if let Some(r) = running {
        r.stop(&out, media.link_memory.as_ref()).await;
    }
    if let Some(t) = reconnecting {
        t.abort();
    }
    if let Some(s) = sig {
        s.close().await;
    }
    match rules.phase() {
        Phase::Ended { cause, .. } => cause.clone(),
        _ => EndReason::Stopped,
    }
}

/// How long one try to reopen the signalling may take.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `m` if the signalling is up; a failure is the signalling lost. While it is down the
/// message is dropped: the rules resume the call and tell the page again once it is back.
async fn send(sig: &mut Option<Signalling>, rules: &mut Rules, m: &ToServer) {
    let Some(s) = sig.as_mut() else {
        return tracing::debug!("signalling down: a message not sent");
    };
    if s.send(m).await.is_err() {
        *sig = None;
        if !rules.is_ended() {
            rules.handle(Instant::now().into_std(), Input::SignallingLost);
        }
    }
}

/// The next message, or never while the signalling is down.
async fn recv(sig: &mut Option<Signalling>) -> Option<Incoming> {
    match sig {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The reconnection's outcome, or never when none is under way.
async fn joined(
    task: &mut Option<tokio::task::JoinHandle<Result<Signalling, sc_core::Error>>>,
) -> Result<Signalling, sc_core::Error> {
    match task {
        Some(t) => t.await.unwrap_or(Err(sc_core::Error::Unreachable)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A message from the server: to the rules, or to the engine.
async fn on_signal(
    rules: &mut Rules,
    now: std::time::Instant,
    running: Option<&Running>,
    ice_servers: &mut Vec<sc_proto::signal::IceServer>,
    msg: Option<Incoming>,
) {
    if msg.is_some() {
        rules.handle(now, Input::ServerHeard);
    }
    let m = match msg {
        Some(Incoming::Message(m)) => m,
        Some(Incoming::Alive) => return,
        Some(Incoming::Garbled(g)) => return tracing::warn!(error = %g, "garbled signalling message skipped"),
        Some(other) => return tracing::debug!(?other, "ignored"),
        None => return rules.handle(now, Input::SignallingLost),
    };
    match (m, running) {
        (FromServer::Waiting { appointment }, _) => rules.handle(now, Input::Waiting(appointment)),
        (FromServer::Resumed { .. }, _) => rules.handle(now, Input::Resumed),
        // The session ended under the call, or the call cannot be taken up again after a restart.
        (FromServer::Error { kind, message }, Some(_)) if kind == "session_ended" || kind == "not_resumable" => {
            rules.handle(now, Input::Refused(message));
        }
        (FromServer::Admitted { role: Role::Offerer, ice_servers: servers, .. }, None) => {
            *ice_servers = servers;
            rules.handle(now, Input::Admitted);
        }
        (FromServer::Error { message, .. }, None) => rules.handle(now, Input::Refused(message)),
        (FromServer::HungUp, Some(_)) => rules.handle(now, Input::ConsultantEnded),
        (FromServer::PeerLeft, Some(_)) => rules.handle(now, Input::ConsultantLeft),
        (FromServer::Quality { quality }, _) => tracing::info!(?quality, "the consultant's connection"),
        (m @ (FromServer::Answer { .. } | FromServer::Offer { .. } | FromServer::Candidate { .. }), Some(r)) => {
            let description = matches!(m, FromServer::Answer { .. });
            let restart = description && r.call.has_remote_description();
            match r.call.handle(m).await {
                Ok(()) if restart => rules.handle(now, Input::RestartAnswered),
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "signalling message not applied");
                    // Without the browser's answer there is no call; a bad candidate or a message
                    // out of turn is only skipped.
                    if description && matches!(e, crate::Error::Signalling(_)) && !r.call.has_remote_description() {
                        rules.handle(now, Input::UnusableAnswer);
                    }
                }
            }
        }
        (other, _) => tracing::debug!(?other, "ignored in this phase"),
    }
}
