//! The consultation's rules on simulated time (issue #12 point 7): admission, loss and a step
//! change in the link driving the quality the consultant's page is told, an outage with its
//! "Reconnecting..." and ICE restarts, the reconnect limit, and how each ending is told.

use sc_call::adapt::{Adapter, Settings, VoiceFormat, AUDIO_LONG_FRAME_MS, HOLD_UP};
use sc_call::consultation::rules::{
    Action, Command, EndReason, Input, Rules, LONG_VOICE_AFTER, LONG_VOICE_BLIP, PING_EVERY, RECONNECTING_NOTICE,
    RECONNECT_LIMIT, RED_AFTER, RESTART_AFTER, RESTART_EVERY, SERVER_NOTICE, SIGNAL_RETRY, WAITING_SERVER_LIMIT,
};
use sc_call::consultation::{Phase, SOUND_ONLY_NOTICE};
use sc_call::CallState;
use sc_proto::signal::{Appointment, LinkQuality, ToServer};
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The rules on a clock of the test's own.
struct Sim {
    rules: Rules,
    t0: Instant,
    now: Instant,
    /// Pings the rules asked for in [`Sim::pass_with`].
    pings: usize,
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        Sim { rules: Rules::new(CONNECT_TIMEOUT, 2), t0, now: t0, pings: 0 }
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        self.rules.handle(self.now, input);
        self.actions()
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.rules.poll_action()).collect()
    }

    /// Moves the clock on by `d`, waking the rules whenever they asked to be woken; the server
    /// answers their pings when `server` (the pings are left out of what is returned).
    fn pass_with(&mut self, d: Duration, server: bool) -> Vec<Action> {
        let until = self.now + d;
        let mut out = Vec::new();
        while let Some(due) = self.rules.poll_timeout().filter(|due| *due <= until) {
            self.now = due.max(self.now);
            self.rules.handle_timeout(self.now);
            for a in self.actions() {
                match a {
                    Action::PingServer => {
                        self.pings += 1;
                        if server {
                            self.rules.handle(self.now, Input::ServerHeard);
                        }
                    }
                    other => out.push(other),
                }
            }
            out.extend(self.actions());
        }
        self.now = until;
        out
    }

    /// As [`Sim::pass_with`], the server answering.
    fn pass(&mut self, d: Duration) -> Vec<Action> {
        self.pass_with(d, true)
    }

    fn secs(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }

    /// Admitted, the engine started, connected.
    fn in_call() -> Self {
        let mut s = Sim::new();
        s.input(Input::Waiting(appointment()));
        assert_eq!(s.input(Input::Admitted), vec![Action::StartCall]);
        assert_eq!(*s.rules.phase(), Phase::Connecting);
        s.input(Input::CallStarted);
        s.pass(Duration::from_secs(2));
        let told = s.input(Input::Connection(CallState::Connected));
        assert_eq!(told, vec![quality(LinkQuality::Good)], "the page is told the link is good");
        s
    }

    fn in_call_phase(&self) -> (Option<String>, LinkQuality, bool) {
        match self.rules.phase() {
            Phase::InCall { notice, quality, reconnecting, .. } => (notice.clone(), *quality, *reconnecting),
            other => panic!("not in the call at {:.1} s: {other:?}", self.secs()),
        }
    }

    fn ended(&self) -> (String, EndReason) {
        match self.rules.phase() {
            Phase::Ended { reason, cause } => (reason.clone(), cause.clone()),
            other => panic!("not ended at {:.1} s: {other:?}", self.secs()),
        }
    }
}

fn appointment() -> Appointment {
    Appointment {
        id: 7,
        room_code: "room-seven".into(),
        consultant: "Dr Who".into(),
        prison: "HMP Testshire".into(),
        starts_at: 0,
        ends_at: 3600,
        patient: None,
        consultant_hospital: None,
    }
}

fn quality(q: LinkQuality) -> Action {
    Action::Send(ToServer::Quality { quality: q })
}

/// A link the adapter follows once a second, the rules seeing what it sends.
struct Linked {
    sim: Sim,
    adapter: Adapter,
    sending: Option<Settings>,
    told: Vec<(f64, LinkQuality)>,
    /// Each format the page is asked for its voice in.
    voice: Vec<VoiceFormat>,
}

impl Linked {
    fn new() -> Self {
        Linked { sim: Sim::in_call(), adapter: Adapter::new(), sending: None, told: Vec::new(), voice: Vec::new() }
    }

    /// `secs` seconds at `kbps` with `loss`.
    fn hold(&mut self, kbps: f64, loss: f64, secs: u64) {
        for _ in 0..secs {
            self.sim.pass(Duration::from_secs(1));
            if let Some(s) = self.adapter.update(self.sim.now, kbps * 1000.0, loss) {
                self.sending = Some(s);
            }
            let now = self.sim.secs();
            for a in self.sim.input(Input::Link { sending: self.sending, loss, estimate_kbps: kbps }) {
                match a {
                    Action::Send(ToServer::Quality { quality }) => self.told.push((now, quality)),
                    Action::VoiceFormat(format) => self.voice.push(format),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    fn last_told(&self) -> Option<LinkQuality> {
        self.told.last().map(|(_, q)| *q)
    }
}

#[test]
fn a_step_down_and_back_is_told_as_weak_then_good_and_each_change_once() {
    let mut l = Linked::new();
    l.hold(1_500.0, 0.0, 20);
    assert_eq!(l.last_told(), None, "a good link stays good: nothing more to tell ({:?})", l.told);
    // Under what 480x360 needs beside the voice (the two top rungs count as good).
    l.hold(200.0, 0.0, 10);
    assert_eq!(l.last_told(), Some(LinkQuality::Weak), "{:?}", l.told);
    let weak_at = l.told.len();
    l.hold(2_000.0, 0.0, 40);
    assert_eq!(l.last_told(), Some(LinkQuality::Good), "{:?}", l.told);
    assert_eq!(l.told.len(), weak_at + 1, "no flapping on the way back up: {:?}", l.told);
    assert_eq!(l.sim.in_call_phase(), (None, LinkQuality::Good, false));
}

#[test]
fn heavy_loss_is_weak_and_a_starved_link_goes_to_sound_only_in_words_and_back() {
    let mut l = Linked::new();
    l.hold(1_500.0, 0.0, 20);
    l.hold(1_500.0, 0.12, 5);
    assert_eq!(l.last_told(), Some(LinkQuality::Weak), "12 % loss: {:?}", l.told);
    l.hold(40.0, 0.05, 3);
    assert_eq!(l.last_told(), Some(LinkQuality::SoundOnly), "{:?}", l.told);
    assert_eq!(l.sim.in_call_phase(), (Some(SOUND_ONLY_NOTICE.to_owned()), LinkQuality::SoundOnly, false));
    l.hold(1_500.0, 0.0, 40);
    assert_eq!(l.last_told(), Some(LinkQuality::Good), "{:?}", l.told);
    assert_eq!(l.sim.in_call_phase().0, None, "the notice goes with the sound-only link");
    // Issue #12: RED's repeat doubles the voice, more than a link fit only for sound carries: the
    // page is asked for it once the link has carried video a while, for plain Opus while sound
    // only lasts (a second: too short to ask for long packets too) and for RED again after.
    assert_eq!(l.voice, vec![VoiceFormat::Red, VoiceFormat::Opus, VoiceFormat::Red]);
}

/// Issue #12: a link that carries the lowest video rung for a while before its estimate falls
/// (the audio-only profile, 64 kbit/s) is never asked for RED's repeat in 20 ms packets (only in
/// long ones, where the page caps it to fit).
#[test]
fn a_link_without_room_for_the_repeat_is_never_asked_for_red() {
    let mut l = Linked::new();
    // The call's first seconds with video before the estimate falls (4-5 s measured there).
    l.hold(250.0, 0.05, RED_AFTER.as_secs() - 4);
    l.hold(120.0, 0.05, 30);
    l.hold(40.0, 0.05, 20);
    assert_eq!(l.last_told(), Some(LinkQuality::SoundOnly), "{:?}", l.told);
    assert!(!l.voice.contains(&VoiceFormat::Red), "{:?}", l.voice);
}

/// Issue #12: on the poor profile (256 kbit/s, 5 % loss) the estimate rests at 145-165 once the
/// link's limit is known, 320x240 sent throughout. Room for RED was read from the estimate (150 or
/// more for the whole wait): each dip under 150 started the wait again, the repeat came 35-50 s
/// into the call, and the prisoner heard the consultant 4-8 % concealed until then.
#[test]
fn issue_12_an_estimate_wobbling_under_150_still_gets_red_while_320x240_is_sent() {
    let mut l = Linked::new();
    // The start's estimate puts video on at once (480x360; 320x240 once the estimate rests).
    l.hold(250.0, 0.05, 1);
    let wobble = [156.0, 147.0, 152.0, 148.0, 156.0, 147.0];
    let mut wobbling = wobble.iter().cycle();
    for kbps in wobbling.by_ref().take(RED_AFTER.as_secs() as usize - 2) {
        l.hold(*kbps, 0.05, 1);
    }
    assert!(l.sending.and_then(|s| s.video).is_some_and(|(r, _)| r.width == 320), "{:?}", l.sending);
    assert!(l.voice.is_empty(), "not before RED_AFTER: {:?}", l.voice);
    for kbps in wobbling.take(3) {
        l.hold(*kbps, 0.05, 1);
    }
    assert_eq!(l.voice, vec![VoiceFormat::Red], "after {:.0} s", l.sim.secs());
}

/// Issue #12: on the audio-only profile (64 kbit/s) Chromium's voice in 20 ms packets, with their
/// overhead and its feedback, filled the link towards the kiosk (a standing queue of 0.4-1.3 s).
/// While the kiosk's own voice goes in long packets on a link losing only its own few percent, the
/// page is asked for long packets too (RED, so a lost one is rebuilt whole); once video is back, for short ones at once (not after RED's
/// wait), and only then for RED.
#[test]
fn issue_12_while_the_kiosks_voice_goes_in_long_packets_the_page_is_asked_for_long_packets_too() {
    let mut l = Linked::new();
    // Not while the link is flooded (the call's first seconds of video): the offer would queue
    // behind the flood with the signalling.
    l.hold(40.0, 0.4, 20);
    assert_eq!(l.sending.map(|s| s.audio_frame_ms), Some(AUDIO_LONG_FRAME_MS));
    assert!(l.voice.is_empty(), "{:?}", l.voice);
    // Once the link loses only its own few percent (read as up to 14 % from the voice alone), after
    // a while.
    l.hold(40.0, 0.14, LONG_VOICE_AFTER.as_secs());
    assert!(l.voice.is_empty(), "{:?}", l.voice);
    l.hold(40.0, 0.05, 1);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed]);
    // A burst of loss changes nothing once asked.
    l.hold(40.0, 0.4, 2);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed]);
    // Between the long packets' two thresholds nothing changes.
    l.hold(130.0, 0.05, 20);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed]);
    // A few seconds of room (the estimate trying the link) change nothing while sound only.
    l.hold(1_500.0, 0.0, 5);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed]);
    // Video back after its hold, and short packets with it.
    l.hold(1_500.0, 0.0, 5);
    assert!(l.sending.is_some_and(|s| s.video.is_some() && s.audio_frame_ms == 20), "{:?}", l.sending);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed, VoiceFormat::Opus]);
    // RED after its own wait, counted from the first rung above the lowest (the climb back from
    // sound only takes a rung at a time).
    l.hold(1_500.0, 0.0, HOLD_UP.as_secs() + RED_AFTER.as_secs() - 1);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed, VoiceFormat::Opus]);
    l.hold(1_500.0, 0.0, 2);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed, VoiceFormat::Opus, VoiceFormat::Red]);
}

/// Issue #12: on the audio-only profile a second's loss read from the few voice packets (up to
/// 21 %), or the estimate trying the link for two seconds, started the wait for the page's long
/// packets again each time: they were asked for 33-48 s into the call, and the page's 20 ms
/// packets filled the link towards the kiosk until then.
#[test]
fn issue_12_a_blip_of_loss_or_of_the_estimate_does_not_start_the_wait_for_long_packets_again() {
    let mut l = Linked::new();
    l.hold(40.0, 0.4, 20);
    assert!(l.voice.is_empty(), "not while flooded: {:?}", l.voice);
    l.hold(40.0, 0.05, 1);
    l.hold(40.0, 0.25, 1);
    l.hold(200.0, 0.05, 1);
    assert!(l.sending.is_some_and(|s| s.video.is_none()), "still sound only: {:?}", l.sending);
    assert!(l.voice.is_empty(), "not while out of bounds: {:?}", l.voice);
    l.hold(40.0, 0.05, 1);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed], "asked within the wait despite the blips");
    // A longer spell out of bounds does start it again, and nothing is asked during it.
    let mut l = Linked::new();
    l.hold(40.0, 0.4, 20);
    l.hold(40.0, 0.05, 1);
    l.hold(40.0, 0.4, LONG_VOICE_BLIP.as_secs() + 1);
    assert!(l.voice.is_empty(), "not into the flood: {:?}", l.voice);
    l.hold(40.0, 0.05, LONG_VOICE_AFTER.as_secs());
    assert!(l.voice.is_empty(), "{:?}", l.voice);
    l.hold(40.0, 0.05, 1);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed], "after a whole wait within bounds");
}

/// Issue #12: on a first call on the audio-only profile the page's voice in 20 ms packets held the
/// link towards the kiosk at a 1.3 s queue until it was asked for long ones, 10 s after the
/// kiosk's own went long (~19 s into the call; the prisoner heard the consultant 9-10 % concealed
/// from the 10th second to the 20th). Asked within a few seconds of the flood passing (1-4 %).
#[test]
fn issue_12_the_page_is_asked_for_long_packets_within_seconds_of_the_flood_passing() {
    let mut l = Linked::new();
    // The first call's flood (Chromium's start) ...
    l.hold(40.0, 0.4, 3);
    assert!(l.voice.is_empty(), "{:?}", l.voice);
    // ... then the link's own loss: the page's long packets within 4 s.
    l.hold(40.0, 0.05, 4);
    assert_eq!(l.voice, vec![VoiceFormat::LongRed]);
}

#[test]
fn the_nurses_sound_only_is_told_to_the_page_without_a_poor_connection_notice() {
    let mut s = Sim::in_call();
    let actions = s.input(Input::Command(Command::AudioOnly(true)));
    assert_eq!(actions, vec![Action::AudioOnly(true), quality(LinkQuality::SoundOnly)]);
    assert_eq!(s.in_call_phase(), (None, LinkQuality::SoundOnly, false), "the nurse knows what they chose");
    let actions = s.input(Input::Command(Command::AudioOnly(false)));
    assert_eq!(actions, vec![Action::AudioOnly(false), quality(LinkQuality::Good)]);
}

#[test]
fn a_short_drop_says_reconnecting_and_comes_back_without_a_restart() {
    let mut s = Sim::in_call();
    assert_eq!(s.input(Input::Connection(CallState::Disconnected)), vec![Action::PingServer], "is the server there?");
    assert_eq!(s.in_call_phase(), (Some(RECONNECTING_NOTICE.to_owned()), LinkQuality::Good, true));
    // While down, the page is not told about quality (the message would wait behind the outage).
    assert!(s.input(Input::Link { sending: None, loss: 0.5, estimate_kbps: 0.0 }).is_empty());
    assert!(s.pass(RESTART_AFTER - Duration::from_millis(100)).is_empty(), "no restart yet");
    let actions = s.input(Input::Connection(CallState::Connected));
    assert_eq!(actions, vec![quality(LinkQuality::Weak)], "back, and told how it is");
    assert_eq!(s.in_call_phase(), (None, LinkQuality::Weak, false));
    assert!(s.pass(RECONNECT_LIMIT * 2).is_empty(), "nothing more is due once the link is back");
}

#[test]
fn a_path_down_while_the_server_answers_restarts_ice_waits_for_each_answer_and_resumes() {
    let mut s = Sim::in_call();
    s.input(Input::Connection(CallState::Disconnected));
    s.input(Input::ServerHeard);
    let down_at = s.now;
    assert_eq!(s.pass(RESTART_AFTER), vec![Action::RestartIce], "the first restart");
    assert_eq!(s.now - down_at, RESTART_AFTER);
    // The answer has not come (the signalling waits behind the outage): no second offer over it.
    assert!(s.pass(RESTART_EVERY * 2).is_empty(), "one offer at a time");
    s.input(Input::RestartAnswered);
    // ICE on the new credentials gives up at once: the next restart is due.
    s.input(Input::Connection(CallState::Failed));
    assert_eq!(s.pass(Duration::from_millis(1)), vec![Action::RestartIce], "a failed path is restarted again");
    assert!(s.in_call_phase().2, "still reconnecting");
    s.input(Input::RestartAnswered);
    s.pass(Duration::from_secs(1));
    s.input(Input::Connection(CallState::Connected));
    assert_eq!(s.in_call_phase(), (None, LinkQuality::Good, false), "back, within the limit");
    assert!(!s.rules.is_ended());
}

#[test]
fn a_whole_outage_pings_each_second_and_keeps_the_path_no_restart_while_the_server_is_silent() {
    let mut s = Sim::in_call();
    assert_eq!(s.input(Input::Connection(CallState::Disconnected)), vec![Action::PingServer]);
    let actions = s.pass_with(RECONNECT_LIMIT - PING_EVERY / 2, false);
    assert!(actions.is_empty(), "no restart while the server is silent: {actions:?}");
    let expected = (RECONNECT_LIMIT.as_millis() / PING_EVERY.as_millis()) as usize - 1;
    assert_eq!(s.pings, expected, "a ping each second");
    assert!(s.in_call_phase().2, "still reconnecting, on the old path");
    // The link returns: consent checks bring the old path back.
    s.input(Input::Connection(CallState::Connected));
    assert!(!s.in_call_phase().2);
}

#[test]
fn a_restart_waits_for_the_server_to_answer_a_ping() {
    let mut s = Sim::in_call();
    s.input(Input::Connection(CallState::Disconnected));
    assert!(s.pass_with(RESTART_AFTER + Duration::from_secs(2), false).is_empty(), "the server is silent");
    s.input(Input::ServerHeard);
    assert_eq!(s.pass_with(PING_EVERY, false), vec![Action::RestartIce], "heard: the restart is due");
}

#[test]
fn a_link_down_past_the_limit_ends_the_call_in_words_and_tells_the_server() {
    let mut s = Sim::in_call();
    s.input(Input::Connection(CallState::Disconnected));
    let down_at = s.now;
    let actions = s.pass(RECONNECT_LIMIT + Duration::from_secs(5));
    assert_eq!(actions.last(), Some(&Action::Close));
    assert!(actions.contains(&Action::Send(ToServer::HangUp)), "{actions:?}");
    assert!(actions.contains(&Action::RestartIce), "restarts were tried first: {actions:?}");
    let (reason, cause) = s.ended();
    assert_eq!(cause, EndReason::LinkLost);
    assert!(reason.contains("30 seconds"), "{reason}");
    assert_eq!(s.now - down_at, RECONNECT_LIMIT + Duration::from_secs(5));
    assert!(s.rules.poll_timeout().is_none(), "nothing is due after the end");
    // Late news changes nothing.
    assert!(s.input(Input::Connection(CallState::Connected)).is_empty());
    assert_eq!(s.ended().1, EndReason::LinkLost);
}

#[test]
fn a_call_that_never_connects_ends_at_the_connect_deadline() {
    let mut s = Sim::new();
    s.input(Input::Admitted);
    s.input(Input::CallStarted);
    assert!(s.pass(CONNECT_TIMEOUT - Duration::from_millis(1)).is_empty());
    assert_eq!(s.pass(Duration::from_millis(1)), vec![Action::Send(ToServer::HangUp), Action::Close]);
    assert_eq!(s.ended().1, EndReason::CouldNotConnect);
    let mut s = Sim::new();
    s.input(Input::Admitted);
    s.input(Input::Connection(CallState::Failed));
    assert_eq!(s.ended().1, EndReason::CouldNotConnect, "ICE failing before the first connection ends it");
}

#[test]
fn each_ending_has_its_words_and_only_the_kiosks_own_tell_the_server() {
    type Probe = fn(&mut Sim) -> Vec<Action>;
    // (what happens, in the call or still waiting, why it ends, whether the server is told)
    let cases: [(Probe, bool, EndReason, bool); 8] = [
        (|s| s.input(Input::Command(Command::HangUp)), false, EndReason::LeftWaitingRoom, true),
        (|s| s.input(Input::Refused("No such room.".into())), false, EndReason::Refused("No such room.".into()), false),
        (|s| s.input(Input::SignallingLost), false, EndReason::ServerLost, false),
        (|s| s.input(Input::Command(Command::HangUp)), true, EndReason::HungUp, true),
        (|s| s.input(Input::ConsultantEnded), true, EndReason::ConsultantEnded, false),
        (|s| s.input(Input::ConsultantLeft), true, EndReason::ConsultantLeft, false),
        (|s| s.input(Input::UnusableAnswer), true, EndReason::UnusableAnswer, true),
        (|s| s.input(Input::EngineStopped), true, EndReason::Stopped, false),
    ];
    for (probe, in_call, expected, tells_server) in cases {
        let mut s = if in_call { Sim::in_call() } else { Sim::new() };
        let actions = probe(&mut s);
        let (reason, cause) = s.ended();
        assert_eq!(cause, expected);
        assert_eq!(reason, expected.message());
        assert!(!reason.is_empty());
        assert_eq!(actions.contains(&Action::Send(ToServer::HangUp)), tells_server, "{cause:?}: {actions:?}");
        assert_eq!(actions.last(), Some(&Action::Close), "{cause:?}");
    }
}

#[test]
fn switching_camera_asks_once_and_a_camera_that_fails_is_a_notice_not_an_end() {
    let mut s = Sim::in_call();
    assert_eq!(s.input(Input::Command(Command::SwitchCamera)), vec![Action::OpenCamera(1)]);
    assert!(s.input(Input::Command(Command::SwitchCamera)).is_empty(), "one at a time");
    s.input(Input::CameraOpened(Err("unplugged".into())));
    assert_eq!(s.in_call_phase().0.as_deref(), Some("Could not switch camera: unplugged"));
    assert_eq!(s.input(Input::Command(Command::SwitchCamera)), vec![Action::OpenCamera(1)]);
    s.input(Input::CameraOpened(Ok(1)));
    assert_eq!(s.in_call_phase().0, None);
    assert!(matches!(s.rules.phase(), Phase::InCall { camera_index: 1, .. }));
    assert_eq!(s.input(Input::Command(Command::SwitchCamera)), vec![Action::OpenCamera(0)], "and back round");
}

/// The care server restarts mid-call: the call goes on (its media never touches the server), the
/// signalling reconnects by itself with growing waits, and the call is resumed, not re-admitted.
#[test]
fn issue_13_the_server_restarting_mid_call_keeps_the_call_and_resumes_it() {
    let mut s = Sim::in_call();
    assert!(s.input(Input::SignallingLost).is_empty(), "nothing to do at once");
    let (notice, ..) = s.in_call_phase();
    assert_eq!(notice.as_deref(), Some(SERVER_NOTICE), "the nurse is told, and the call goes on");
    // Three tries fail (the server is still down), the waits between them growing.
    let mut tried_at = Vec::new();
    for _ in 0..3 {
        let start = s.now;
        let actions = s.pass(Duration::from_secs(10));
        assert_eq!(actions.first(), Some(&Action::ReconnectSignalling), "{actions:?}");
        tried_at.push(s.now - start);
        // The link reports while the server is away: nothing goes to a closed socket.
        let told = s.input(Input::Link { sending: None, loss: 0.5, estimate_kbps: 0.0 });
        assert!(told.is_empty(), "nothing is sent while the server is away: {told:?}");
        s.input(Input::SignallingLost);
    }
    assert!(s.rules.poll_timeout().is_some_and(|due| due - s.now == SIGNAL_RETRY[3]), "the fourth wait");
    let actions = s.pass(SIGNAL_RETRY[3]);
    assert_eq!(actions, vec![Action::ReconnectSignalling]);
    let resumed = s.input(Input::SignallingBack);
    assert_eq!(resumed, vec![Action::Send(ToServer::Resume { appointment_id: 7 })], "resume, not join or admit");
    // Once both sides are linked the page hears the quality it missed.
    s.input(Input::Resumed);
    let told = s.input(Input::Link { sending: None, loss: 0.0, estimate_kbps: 0.0 });
    assert_eq!(told, vec![quality(LinkQuality::Good)]);
    let (notice, ..) = s.in_call_phase();
    assert_eq!(notice, None);
    assert!(!s.rules.is_ended());
}

#[test]
fn issue_13_a_waiting_laptop_joins_its_room_again_and_gives_up_after_the_limit() {
    let mut s = Sim::new();
    s.input(Input::Waiting(appointment()));
    s.input(Input::SignallingLost);
    assert_eq!(s.pass(SIGNAL_RETRY[0]), vec![Action::ReconnectSignalling]);
    let back = s.input(Input::SignallingBack);
    assert_eq!(back, vec![Action::Send(ToServer::Join { room_code: "room-seven".into() })]);
    assert!(matches!(s.rules.phase(), Phase::Waiting { .. }));
    // Out of reach for good: waiting ends at the limit.
    s.input(Input::SignallingLost);
    let start = s.now;
    while !s.rules.is_ended() {
        for a in s.pass(Duration::from_millis(100)) {
            if a == Action::ReconnectSignalling {
                s.input(Input::SignallingLost);
            } else {
                assert_eq!(a, Action::Close);
            }
        }
        assert!(s.now - start <= WAITING_SERVER_LIMIT + Duration::from_secs(1), "never gave up");
    }
    assert_eq!(s.ended().1, EndReason::ServerLost);
}

#[test]
fn issue_13_a_reconnection_the_server_refuses_ends_the_call_in_its_words() {
    let mut s = Sim::in_call();
    s.input(Input::SignallingLost);
    assert_eq!(s.pass(Duration::from_secs(1)), vec![Action::ReconnectSignalling]);
    let actions = s.input(Input::SignallingRefused("This session has ended. Sign in again.".into()));
    assert_eq!(s.ended().1, EndReason::Refused("This session has ended. Sign in again.".into()));
    assert_eq!(actions.last(), Some(&Action::Close));
}
