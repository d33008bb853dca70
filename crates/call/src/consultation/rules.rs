//! The consultation's rules as a pure state machine: where the call is (the [`Phase`] the page
//! shows), what to tell the server, when to restart ICE, when to reconnect the signalling and when
//! to give up. Inputs and the time go in, actions come out; the I/O loop in [`super`] carries them
//! out, and tests drive it on simulated time.

use super::{Phase, SOUND_ONLY_NOTICE};
use crate::adapt::VoiceFormat;
use crate::images::ImagesStatus;
use crate::CallState;
use sc_proto::signal::{Appointment, LinkQuality, ToServer};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the link may stay down before the kiosk restarts ICE (new credentials, candidates
/// gathered again on the same relay). ICE's own consent checks bring a link back by themselves
/// when it returns within the limit (measured: a 10 s outage resumes in under a second without
/// one); a restart is for a path that will not come back as it was while the network works.
pub const RESTART_AFTER: Duration = Duration::from_secs(8);
/// How long the link must carry video better than the lowest rung (`adapt::LADDER`'s 320x240 or
/// more: room for RED's repeat beside the voice and the picture) before the consultant's voice is
/// asked for with RED's repeat (a new offer). Offered from the start, RED doubled the voice on a
/// link fit only for sound (64 kbit/s: 14 % of it concealed, 2.6 % without), and a new offer sent
/// across that congested link lost the signalling and the call (measured, as was a 10 s wait
/// without a test of room: the audio-only profile carried the lowest rung for 10 s before its
/// estimate fell; issue #12).
///
/// On a link told weak (the poor profile's 256 kbit/s) the page caps its voice at 20 kbit/s, so
/// the repeat costs about what its voice did before: uncapped, it added ~30 kbit/s towards the
/// kiosk, and Chromium's pacer held its video 0.4-2.4 s from the moment the repeat began, the
/// kiosk's picture 1-1.3 s behind the voice at 20-27 fps with 15-21 freezes a minute. Capped: 29.5
/// fps, 7.3, the voice 0.86 % concealed; with no RED there 1.67-2.16 %, where Chromium's pair had
/// 1.1-1.8 %. The room was first read from the estimate (150 kbit/s or more throughout the wait):
/// on the poor profile it rests at 145-165 once the link's limit is known, each dip under 150
/// started the wait again, and the repeat came 35-50 s into the call, the prisoner hearing the
/// consultant 4-8 % concealed until then (2.70 % over the call) with 320x240 sent throughout.
/// Counted from the rung, the wait is 10 s (was 15): a 64 kbit/s link's first seconds at 320x240,
/// before its estimate falls, last 4-5 s; RED came 20 s into a poor call by the engine's clock (23-25
/// at 15).
pub const RED_AFTER: Duration = Duration::from_secs(10);
/// How long the kiosk's own voice must have gone in long packets, with the link losing no more
/// than [`LONG_VOICE_LOSS`], before the consultant's voice is asked for in them too (a new offer).
/// Asked for at once, the offer went out while the call's first seconds of video still filled the
/// audio-only profile's link both ways (1.3 s queues, a third of the packets dropped): its answer
/// took 23 s to come back, and in two calls of four the signalling connection dropped and the call
/// could not be resumed (issue #12). The loss bound keeps the offer off a flooded link, and a few
/// seconds within it show the flood has passed. At 10 s the page's 20 ms packets (~60 kbit/s on
/// the wire with its feedback) held the link towards the kiosk at a 1.3 s queue until ~19 s into a
/// first call there, and the prisoner heard the consultant 9-10 % concealed from its 10th second
/// to its 20th; at 3 s, its long packets came from ~12 s and 1-4 %.
pub const LONG_VOICE_AFTER: Duration = Duration::from_secs(3);
/// See [`LONG_VOICE_AFTER`]: the link's own loss, not a flood's (30-65 % in those first seconds;
/// the voice alone, a few packets a report, reads the audio-only profile's 5 % as up to 14 %, and
/// at 10 % the 10 s were never reached in one call of three).
pub const LONG_VOICE_LOSS: f64 = 0.20;
/// See [`LONG_VOICE_AFTER`]: a second or two out of the bounds (a second's loss read from the few
/// voice packets, the estimate trying the link) does not start the wait again; longer does. Each
/// such blip started it again, and on the audio-only profile the page's voice was asked for in
/// long packets 33-48 s into the call instead of ~20, its 20 ms packets filling the link towards
/// the kiosk meanwhile (a standing 1.3 s queue; issue #12).
pub const LONG_VOICE_BLIP: Duration = Duration::from_secs(3);
/// After a restart that has not connected, the next one waits this long.
pub const RESTART_EVERY: Duration = Duration::from_secs(8);
/// While the link is down the kiosk pings the care server this often: a restart only helps when
/// the server answers (a whole outage swallows the offer too, and a restart gives up the path
/// that consent checks would bring back the moment the link returns).
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// The server counts as reachable for this long after it was last heard.
pub const HEARD_WITHIN: Duration = Duration::from_secs(3);
/// How long a call may be down before it ends: both screens say "Reconnecting..." until then.
pub const RECONNECT_LIMIT: Duration = Duration::from_secs(30);
/// What both screens say while the link is down.
pub const RECONNECTING_NOTICE: &str = "Reconnecting...";
/// What the nurse reads while the care server is out of reach in a call (the call itself runs
/// peer to peer through the relay, so it goes on).
pub const SERVER_NOTICE: &str = "Reconnecting to the healthcare server...";
/// The waits between tries to reconnect the signalling, the last one repeated.
pub const SIGNAL_RETRY: [Duration; 5] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
/// Waiting to be admitted, how long the server may stay out of reach before the kiosk gives up
/// (in a call there is no such limit while the call itself works).
pub const WAITING_SERVER_LIMIT: Duration = Duration::from_secs(60);

/// Why a consultation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// The nurse left the waiting room.
    LeftWaitingRoom,
    /// The nurse ended the call.
    HungUp,
    /// The consultant ended the call.
    ConsultantEnded,
    /// The consultant's page went away.
    ConsultantLeft,
    /// The signalling connection to the care server dropped.
    ServerLost,
    /// The care server refused (its words).
    Refused(String),
    /// Admitted, but the call never connected through the relay in time.
    CouldNotConnect,
    /// The call connected, then the link stayed down past [`RECONNECT_LIMIT`].
    LinkLost,
    /// The consultant's browser sent a session description the engine cannot apply.
    UnusableAnswer,
    /// A camera, microphone or speaker could not be opened (its words).
    Media(String),
    /// The call engine could not start (the cause).
    CouldNotStart(String),
    /// The call engine stopped on its own.
    Stopped,
}

impl EndReason {
    /// In words for the nurse.
    pub fn message(&self) -> String {
        match self {
            EndReason::LeftWaitingRoom => "You left the waiting room.".into(),
            EndReason::HungUp => "You ended the call.".into(),
            EndReason::ConsultantEnded => "The consultant ended the call.".into(),
            EndReason::ConsultantLeft => "The consultant left.".into(),
            EndReason::ServerLost => "The connection to the healthcare server was lost.".into(),
            EndReason::Refused(m) | EndReason::Media(m) => m.clone(),
            EndReason::CouldNotConnect => {
                "The call could not connect through the relay. Check the network and try again.".into()
            }
            EndReason::LinkLost => format!(
                "The connection to the consultant was lost and did not come back within {} seconds.",
                RECONNECT_LIMIT.as_secs()
            ),
            EndReason::UnusableAnswer => {
                "The consultant's browser sent a call set-up this laptop cannot use. Try joining again.".into()
            }
            EndReason::CouldNotStart(e) => format!("The call could not start: {e}"),
            EndReason::Stopped => "The call stopped.".into(),
        }
    }

    /// Whether the server should be told the kiosk hung up (it left; the server does not know).
    fn tells_server(&self) -> bool {
        matches!(
            self,
            EndReason::LeftWaitingRoom
                | EndReason::HungUp
                | EndReason::CouldNotConnect
                | EndReason::LinkLost
                | EndReason::UnusableAnswer
                | EndReason::Media(_)
                | EndReason::CouldNotStart(_)
        )
    }
}

/// What the nurse asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// End the call (or leave the waiting room).
    HangUp,
    /// Microphone muted or not.
    Mute(bool),
    /// Camera on or off.
    Camera(bool),
    /// Sound only, both ways, or video again.
    AudioOnly(bool),
    /// The laptop's next camera.
    SwitchCamera,
    /// The shared image back as the file shows it.
    ResetView,
    /// A playing shared image stopped on the frame shown.
    PauseImages,
}

/// What happens, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// The server put the laptop in the appointment's waiting room.
    Waiting(Appointment),
    /// The consultant admitted the laptop: the I/O loop opens the media and starts the call.
    Admitted,
    /// The call engine is running (its offer is on its way).
    CallStarted,
    /// The server refused something that ends the consultation (its words).
    Refused(String),
    /// The signalling connection dropped, or a try to reconnect it failed.
    SignallingLost,
    /// The signalling connection is open again (after [`Action::ReconnectSignalling`]).
    SignallingBack,
    /// The server refused the reconnection (the session ended: locked, disabled); its words.
    SignallingRefused(String),
    /// The server linked both sides of the resumed call again.
    Resumed,
    /// The media or the engine could not start.
    CouldNotStart(EndReason),
    /// The engine's connection state changed.
    Connection(CallState),
    /// The engine's figures: what it sends (`None` video: sound only) and the loss it measures.
    Link {
        /// Sending now; `None` before the controller decided.
        sending: Option<crate::adapt::Settings>,
        /// Loss the controller measured (0..1).
        loss: f64,
        /// The controller's estimate of the link, kbit/s.
        estimate_kbps: f64,
    },
    /// The shared images' status changed.
    Images(ImagesStatus),
    /// The consultant ended the call.
    ConsultantEnded,
    /// The consultant's page went away.
    ConsultantLeft,
    /// The consultant's browser answered with something the engine cannot apply, and no earlier
    /// answer is in place.
    UnusableAnswer,
    /// The answer to an ICE restart was applied.
    RestartAnswered,
    /// The engine stopped on its own.
    EngineStopped,
    /// Something came from the care server (a message, a ping, the answer to ours).
    ServerHeard,
    /// The nurse asked for something.
    Command(Command),
    /// The camera the rules asked for opened (its index), or did not (why).
    CameraOpened(Result<usize, String>),
}

/// What the I/O loop is to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Send this to the care server.
    Send(ToServer),
    /// Open the media and start the call engine (then [`Input::CallStarted`]).
    StartCall,
    /// Mute or unmute the microphone.
    Mute(bool),
    /// Camera on or off.
    Camera(bool),
    /// Sound only on or off.
    AudioOnly(bool),
    /// Open camera `n` and send from it (then [`Input::CameraOpened`]).
    OpenCamera(usize),
    /// Put the shared image back as the file shows it.
    ResetView,
    /// Pause a playing shared image.
    PauseImages,
    /// Restart ICE: a new offer with fresh credentials, on the same relay.
    RestartIce,
    /// Ask the consultant's browser for its voice in another format: RED's repeat on a link with
    /// room, plain Opus on one fit only for sound (the repeat would double what the voice needs),
    /// RED in long packets (capped by the page to fit) once the link has long been that slow.
    VoiceFormat(VoiceFormat),
    /// Ask the care server for a sign of life (then [`Input::ServerHeard`]).
    PingServer,
    /// Open the signalling connection again (then [`Input::SignallingBack`] or
    /// [`Input::SignallingLost`]).
    ReconnectSignalling,
    /// The consultation is over ([`Rules::phase`] says why): close the call and the signalling.
    Close,
}

/// The link as the rules track it, once the call has connected.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// Media flows.
    Up,
    /// Down since then; restarts so far, the last one, and whether its answer came.
    Down { since: Instant, restarts: u32, last_restart: Option<Instant>, answered: bool, pinged: Instant },
}

/// The signalling connection, as the rules track it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signal {
    /// Open.
    Up,
    /// Lost since `since`; the next try is due at `next` (`tries` so far).
    Lost { since: Instant, tries: usize, next: Instant },
    /// A try is under way.
    Trying { since: Instant, tries: usize },
}

/// The consultation's state.
#[derive(Debug)]
pub struct Rules {
    phase: Phase,
    /// The appointment whose room the kiosk joined (to join again, or resume its call).
    appointment: Option<Appointment>,
    signal: Signal,
    /// Resumed after the signalling came back, and the page not yet linked again (what it is
    /// told waits until it is).
    awaiting_resume: bool,
    connect_timeout: Duration,
    cameras: usize,
    /// When the consultant admitted the laptop (the connect deadline counts from here).
    admitted_at: Option<Instant>,
    /// `None` until the call first connects.
    link: Option<Link>,
    muted: bool,
    camera: bool,
    audio_only: bool,
    camera_index: usize,
    /// Something the nurse should know that does not end the call (a camera that failed).
    notice: Option<String>,
    quality: LinkQuality,
    /// What the engine last said it sends, and the loss it measured.
    sending: Option<crate::adapt::Settings>,
    loss: f64,
    /// What the consultant's page was last told.
    told: Option<LinkQuality>,
    /// The format the consultant's voice was last asked for in, and since when the link has
    /// carried video better than the lowest rung (RED is asked for after [`RED_AFTER`] of it).
    voice: VoiceFormat,
    video_since: Option<Instant>,
    /// Since when the kiosk's own voice has gone in long packets on a link losing no more than
    /// [`LONG_VOICE_LOSS`].
    long_since: Option<Instant>,
    /// Since when the link has been out of [`LONG_VOICE_AFTER`]'s bounds, the kiosk's voice still
    /// in long packets ([`LONG_VOICE_BLIP`]).
    unfit_since: Option<Instant>,
    /// The controller's estimate, as the engine last said.
    estimate_kbps: f64,
    images: ImagesStatus,
    /// Asked for and not yet reported back.
    opening_camera: bool,
    /// When the care server was last heard from.
    heard: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Rules {
    /// A consultation joining its room; `cameras` is how many the laptop has.
    pub fn new(connect_timeout: Duration, cameras: usize) -> Self {
        Rules {
            phase: Phase::Joining,
            appointment: None,
            signal: Signal::Up,
            awaiting_resume: false,
            connect_timeout,
            cameras,
            admitted_at: None,
            link: None,
            muted: false,
            camera: true,
            audio_only: false,
            camera_index: 0,
            notice: None,
            quality: LinkQuality::Good,
            sending: None,
            loss: 0.0,
            told: None,
            voice: VoiceFormat::Opus,
            video_since: None,
            long_since: None,
            unfit_since: None,
            estimate_kbps: 0.0,
            images: ImagesStatus::default(),
            opening_camera: false,
            heard: None,
            actions: VecDeque::new(),
        }
    }

    /// Where the consultation is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether it is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. })
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Rules::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_ended() {
            return None;
        }
        let signal = match self.signal {
            Signal::Lost { since, next, .. } if self.admitted_at.is_none() => {
                Some(next.min(since + WAITING_SERVER_LIMIT))
            }
            Signal::Lost { next, .. } => Some(next),
            Signal::Trying { since, .. } if self.admitted_at.is_none() => Some(since + WAITING_SERVER_LIMIT),
            _ => None,
        };
        let link = self.link_timeout();
        match (signal, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn link_timeout(&self) -> Option<Instant> {
        match self.link {
            None => self.admitted_at.map(|a| a + self.connect_timeout),
            Some(Link::Up) => None,
            Some(Link::Down { since, last_restart, answered, pinged, .. }) => {
                let limit = since + RECONNECT_LIMIT;
                let restart = match last_restart {
                    None => Some(since + RESTART_AFTER),
                    // The next restart waits for the last one's answer (signalling is ordered:
                    // a second offer before it would cross it).
                    Some(at) if answered => Some(at + RESTART_EVERY),
                    Some(_) => None,
                };
                // Only while the server counts as there; otherwise the next ping's answer decides.
                let heard = self.heard.filter(|h| *h > since);
                let restart =
                    restart.zip(heard).map(|(r, h)| r.max(h)).filter(|r| heard.is_some_and(|h| *r <= h + HEARD_WITHIN));
                Some(restart.map_or(limit, |r| r.min(limit)).min(pinged + PING_EVERY))
            }
        }
    }

    /// Time has passed: the connect deadline, the restarts, the reconnect limit and the
    /// signalling's reconnection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_ended() {
            return;
        }
        match self.signal {
            Signal::Lost { since, .. } | Signal::Trying { since, .. }
                if self.admitted_at.is_none() && now >= since + WAITING_SERVER_LIMIT =>
            {
                return self.end(EndReason::ServerLost);
            }
            Signal::Lost { since, tries, next } if now >= next => {
                self.signal = Signal::Trying { since, tries };
                self.actions.push_back(Action::ReconnectSignalling);
            }
            _ => {}
        }
        match self.link {
            None => {
                if self.admitted_at.is_some_and(|a| now >= a + self.connect_timeout) {
                    self.end(EndReason::CouldNotConnect);
                }
            }
            Some(Link::Up) => {}
            Some(Link::Down { since, restarts, last_restart, answered, pinged }) => {
                if now >= since + RECONNECT_LIMIT {
                    self.end(EndReason::LinkLost);
                    return;
                }
                let mut pinged = pinged;
                if now >= pinged + PING_EVERY {
                    pinged = now;
                    self.actions.push_back(Action::PingServer);
                }
                let server_there =
                    self.heard.is_some_and(|h| h > since && now.saturating_duration_since(h) <= HEARD_WITHIN);
                let due = server_there
                    && match last_restart {
                        None => now >= since + RESTART_AFTER,
                        Some(at) => answered && now >= at + RESTART_EVERY,
                    };
                let (restarts, last_restart, answered) = if due {
                    tracing::info!(
                        restarts = restarts + 1,
                        down_ms = (now - since).as_millis() as u64,
                        "restarting ICE"
                    );
                    self.actions.push_back(Action::RestartIce);
                    (restarts + 1, Some(now), false)
                } else {
                    (restarts, last_restart, answered)
                };
                self.link = Some(Link::Down { since, restarts, last_restart, answered, pinged });
            }
        }
    }

    /// Something happened at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.is_ended() {
            return;
        }
        match input {
            Input::Waiting(appointment) => {
                if matches!(self.phase, Phase::Joining | Phase::Waiting { .. }) {
                    self.appointment = Some(appointment.clone());
                    self.phase = Phase::Waiting { appointment };
                }
            }
            Input::Admitted => {
                if self.admitted_at.is_none() {
                    self.admitted_at = Some(now);
                    self.phase = Phase::Connecting;
                    self.actions.push_back(Action::StartCall);
                }
            }
            Input::CallStarted => {}
            Input::Refused(message) => self.end(EndReason::Refused(message)),
            Input::SignallingLost => self.signalling_lost(now),
            Input::SignallingBack => self.signalling_back(),
            Input::SignallingRefused(message) => self.end(EndReason::Refused(message)),
            Input::Resumed => {
                // The page missed what it was told while the server was away.
                self.told = None;
                self.awaiting_resume = false;
            }
            Input::CouldNotStart(reason) => self.end(reason),
            Input::Connection(state) => self.connection(now, state),
            Input::Link { sending, loss, estimate_kbps } => {
                self.sending = sending;
                self.loss = loss;
                self.estimate_kbps = estimate_kbps;
            }
            Input::Images(status) => self.images = status,
            Input::ConsultantEnded => self.end(EndReason::ConsultantEnded),
            Input::ConsultantLeft => self.end(EndReason::ConsultantLeft),
            Input::UnusableAnswer => self.end(EndReason::UnusableAnswer),
            Input::RestartAnswered => {
                if let Some(Link::Down { answered, .. }) = &mut self.link {
                    *answered = true;
                }
            }
            Input::EngineStopped => self.end(EndReason::Stopped),
            Input::ServerHeard => self.heard = Some(now),
            Input::Command(c) => self.command(c),
            Input::CameraOpened(result) => {
                self.opening_camera = false;
                match result {
                    Ok(n) => {
                        self.camera_index = n;
                        self.notice = None;
                    }
                    Err(e) => self.notice = Some(format!("Could not switch camera: {e}")),
                }
            }
        }
        self.refresh();
        self.voice(now);
    }

    /// The signalling dropped (or a try to reopen it failed): a call goes on and the kiosk
    /// reconnects, as it does for a waiting room it can join again; before that it is the end.
    fn signalling_lost(&mut self, now: Instant) {
        if self.appointment.is_none() {
            return self.end(EndReason::ServerLost);
        }
        let (since, tries) = match self.signal {
            Signal::Up => {
                tracing::info!("the signalling connection dropped; reconnecting");
                (now, 0)
            }
            Signal::Lost { since, tries, .. } | Signal::Trying { since, tries } => (since, tries + 1),
        };
        let wait = SIGNAL_RETRY[tries.min(SIGNAL_RETRY.len() - 1)];
        self.signal = Signal::Lost { since, tries, next: now + wait };
    }

    /// The signalling is open again: join the room again, or resume the call.
    fn signalling_back(&mut self) {
        let Some(appointment) = &self.appointment else { return };
        if let Signal::Lost { since, tries, .. } | Signal::Trying { since, tries } = self.signal {
            tracing::info!(tries = tries + 1, ?since, "the signalling connection is back");
        }
        self.signal = Signal::Up;
        self.awaiting_resume = self.admitted_at.is_some();
        let msg = if self.admitted_at.is_some() {
            ToServer::Resume { appointment_id: appointment.id }
        } else {
            ToServer::Join { room_code: appointment.room_code.clone() }
        };
        self.actions.push_back(Action::Send(msg));
    }

    fn connection(&mut self, now: Instant, state: CallState) {
        match (state, self.link) {
            (CallState::Connected, Some(Link::Down { since, restarts, .. })) => {
                tracing::info!(down_ms = (now - since).as_millis() as u64, restarts, "the call is back");
                self.link = Some(Link::Up);
            }
            (CallState::Connected, _) => self.link = Some(Link::Up),
            // A drop (or ICE giving up on the path) is not yet the end: restarts, then the limit.
            (CallState::Disconnected | CallState::Failed, Some(Link::Up)) => {
                tracing::info!(?state, "the call's link is down");
                self.link =
                    Some(Link::Down { since: now, restarts: 0, last_restart: None, answered: false, pinged: now });
                self.actions.push_back(Action::PingServer);
            }
            // Failed after a restart's answer: the next restart is due now (if the server is there).
            (
                CallState::Failed,
                Some(Link::Down { since, restarts, last_restart: Some(_), answered: true, pinged }),
            ) => {
                let last_restart = now.checked_sub(RESTART_EVERY);
                self.link = Some(Link::Down { since, restarts, last_restart, answered: true, pinged });
            }
            (CallState::Failed, None) => self.end(EndReason::CouldNotConnect),
            (CallState::Closed, _) => self.end(EndReason::Stopped),
            _ => {}
        }
    }

    fn command(&mut self, c: Command) {
        let in_call = matches!(self.phase, Phase::Connecting | Phase::InCall { .. });
        match c {
            Command::HangUp if self.admitted_at.is_some() => self.end(EndReason::HungUp),
            Command::HangUp => self.end(EndReason::LeftWaitingRoom),
            _ if !in_call => {}
            Command::Mute(on) => {
                self.muted = on;
                self.actions.push_back(Action::Mute(on));
            }
            Command::Camera(on) => {
                self.camera = on;
                self.actions.push_back(Action::Camera(on));
            }
            Command::AudioOnly(on) => {
                self.audio_only = on;
                self.actions.push_back(Action::AudioOnly(on));
            }
            Command::SwitchCamera if !self.opening_camera => {
                self.opening_camera = true;
                self.actions.push_back(Action::OpenCamera((self.camera_index + 1) % self.cameras.max(1)));
            }
            Command::SwitchCamera => {}
            Command::ResetView => self.actions.push_back(Action::ResetView),
            Command::PauseImages => self.actions.push_back(Action::PauseImages),
        }
    }

    fn end(&mut self, reason: EndReason) {
        tracing::info!(?reason, "consultation ends");
        if reason.tells_server() {
            self.actions.push_back(Action::Send(ToServer::HangUp));
        }
        self.phase = Phase::Ended { reason: reason.message(), cause: reason };
        self.actions.push_back(Action::Close);
    }

    /// RED for the consultant's voice once the link has carried video with room to spare for
    /// [`RED_AFTER`]; plain Opus again when it goes to sound only; RED in long packets (the page
    /// caps it to fit) once the kiosk's own voice has gone in them a while on a slow link (the link
    /// is as slow the other way).
    fn voice(&mut self, now: Instant) {
        if self.is_ended() || !matches!(self.link, Some(Link::Up)) || self.signal != Signal::Up || self.awaiting_resume
        {
            // Room is shown again from the start once the link and the signalling are back.
            self.video_since = None;
            self.long_since = None;
            self.unfit_since = None;
            return;
        }
        let long = self.sending.is_some_and(|s| s.audio_frame_ms >= crate::adapt::AUDIO_LONG_FRAME_MS);
        // The link slow now, not the voice merely kept lean until video is back.
        let slow = self.estimate_kbps < f64::from(crate::adapt::AUDIO_SHORT_FRAMES_FROM_KBPS);
        if !long {
            self.long_since = None;
            self.unfit_since = None;
        } else if !slow || self.loss > LONG_VOICE_LOSS {
            let since = *self.unfit_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= LONG_VOICE_BLIP {
                self.long_since = None;
            }
        } else {
            self.unfit_since = None;
            self.long_since.get_or_insert(now);
        }
        // Never at a moment out of bounds: the wait is no longer than a blip, and the offer would
        // go out into the flood the bounds are there to keep it from.
        let due = self.unfit_since.is_none()
            && self.long_since.is_some_and(|since| now.saturating_duration_since(since) >= LONG_VOICE_AFTER);
        if long && (due || self.voice == VoiceFormat::LongRed) {
            self.video_since = None;
            self.ask_voice(VoiceFormat::LongRed);
        } else if self.quality == LinkQuality::SoundOnly {
            self.video_since = None;
            self.ask_voice(VoiceFormat::Opus);
        } else {
            // Short packets again once the kiosk's own are; RED (once asked for) stays until sound
            // only.
            if self.voice == VoiceFormat::LongRed {
                self.ask_voice(VoiceFormat::Opus);
            }
            // The rung, not the estimate: the adapter holds a rung through the estimate's dips.
            let room =
                self.sending.and_then(|s| s.video).is_some_and(|(rung, _)| rung.width > crate::adapt::LOWEST.width);
            if !room {
                self.video_since = None;
            } else if self.voice != VoiceFormat::Red {
                let since = *self.video_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= RED_AFTER {
                    self.ask_voice(VoiceFormat::Red);
                }
            }
        }
    }

    fn ask_voice(&mut self, format: VoiceFormat) {
        if self.voice != format {
            self.voice = format;
            self.actions.push_back(Action::VoiceFormat(format));
        }
    }

    /// Brings the published phase up to date, and tells the consultant's page of a new quality.
    fn refresh(&mut self) {
        if self.is_ended() || self.link.is_none() {
            return;
        }
        // The nurse's sound-only counts at once, not at the engine's next figures.
        self.quality = crate::adapt::quality(self.sending, self.loss, self.audio_only);
        let down = matches!(self.link, Some(Link::Down { .. }));
        let server_away = self.signal != Signal::Up;
        // The link's own verdict is worth saying in words; the nurse's choice they know already.
        let said = match (down, self.quality) {
            (true, _) => Some(RECONNECTING_NOTICE.to_owned()),
            (false, _) if server_away => Some(SERVER_NOTICE.to_owned()),
            (false, LinkQuality::SoundOnly) if !self.audio_only => Some(SOUND_ONLY_NOTICE.to_owned()),
            _ => None,
        };
        self.phase = Phase::InCall {
            muted: self.muted,
            camera: self.camera,
            audio_only: self.audio_only,
            camera_index: self.camera_index,
            cameras: self.cameras,
            notice: if down { said } else { self.notice.clone().or(said) },
            quality: self.quality,
            reconnecting: down,
            images: self.images.clone(),
        };
        // The page shows it, and stops sending video while it says sound only. Not while the
        // link is down: the message would wait behind the outage anyway.
        if !down && !server_away && !self.awaiting_resume && self.told != Some(self.quality) {
            self.told = Some(self.quality);
            self.actions.push_back(Action::Send(ToServer::Quality { quality: self.quality }));
        }
    }
}
