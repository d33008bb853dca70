//! A real call: the kiosk's engine (synthetic camera and tone) and headless Chromium as the
//! consultant (a Y4M clip of known content and a fake microphone), through coturn on loopback, with
//! relay-only ICE on both sides. Both directions are proven, and either side can end the call.

use crate::support::unlocked;
use sc_call::consultation::{Consultation, MediaSetup, Phase};
use sc_call::{CallStats, I420Frame, SelectedPair};
use sc_e2e::media::{write_y4m, Turn, Y4M_LEFT, Y4M_RIGHT};
use sc_e2e::{CareServer, TURN_SECRET};
use sc_proto::signal::{FromServer, ToServer};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use sc_e2e::browser::Consultant;

pub(crate) fn start_consultant(server: &CareServer, secret: &str, y4m: &Path, end: &str) -> Consultant {
    Consultant::start(
        server,
        "dr.who",
        secret,
        y4m,
        &sc_e2e::browser::Options { end: end.into(), ..Default::default() },
    )
}

/// As [`start_consultant`], keeping the call up `hold_ms` after it is proven.
pub(crate) fn start_consultant_holding(
    server: &CareServer,
    secret: &str,
    y4m: &Path,
    end: &str,
    hold_ms: u64,
) -> Consultant {
    Consultant::start(
        server,
        "dr.who",
        secret,
        y4m,
        &sc_e2e::browser::Options { end: end.into(), hold_ms, ..Default::default() },
    )
}

/// Waits until the consultant's page reports the call's stats (the call is up both ways), or
/// fails at `deadline`.
pub(crate) async fn until_consultant_in_call(consultant: &mut Consultant, deadline: tokio::time::Instant) {
    loop {
        let v = tokio::time::timeout_at(deadline, consultant.events.recv()).await.expect("call up").expect("driver");
        match v["event"].as_str() {
            Some("stats") => return,
            Some("error") => panic!("consultant driver failed: {v}"),
            _ => {}
        }
    }
}

struct Outcome {
    kiosk: CallStats,
    pair: Option<SelectedPair>,
    full_frame: Option<Arc<I420Frame>>,
    chromium: Value,
    ended: Value,
    kiosk_end_reason: Option<String>,
    /// Self-view luma at the probe before and after switching camera.
    self_view: (f64, f64),
}

pub(crate) fn synthetic_media() -> Arc<MediaSetup> {
    synthetic_media_with(Duration::from_secs(30))
}

/// Synthetic media, with shared images decoded as the kiosk decodes them: by its confined helper,
/// `secureconsult-decode` (sc-sandbox), one process a file.
pub(crate) fn kiosk_media() -> Arc<MediaSetup> {
    let mut media = MediaSetup::synthetic(vec!["127.0.0.1:0".into()], Duration::from_secs(30));
    media.decoder =
        Arc::new(sc_sandbox::Helper::new(sc_e2e::bin(sc_sandbox::PROGRAM), sc_sandbox::HelperLimits::default()));
    Arc::new(media)
}

fn synthetic_media_with(connect_timeout: Duration) -> Arc<MediaSetup> {
    Arc::new(MediaSetup::synthetic(vec!["127.0.0.1:0".into()], connect_timeout))
}

async fn call(end_by_kiosk: bool) -> Outcome {
    let turn = Turn::start(TURN_SECRET);
    let server = CareServer::start_relaying(&turn).await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    write_y4m(clip.path(), 15);
    let mut consultant = start_consultant(&server, &dr, clip.path(), if end_by_kiosk { "kiosk" } else { "consultant" });

    let record = kiosk.record().expect("enrolled").clone();
    let token = kiosk.session_token().expect("unlocked");
    let c = Consultation::start(record, token, appt.room_code.clone(), synthetic_media());
    let mut phases = c.phases();
    let frames = c.frames();
    let self_view = c.self_view();
    let mut self_luma = (0.0, 0.0);
    let mut switched = false;
    let mut full_frame = None;
    let mut chromium = Value::Null;
    let mut ended = Value::Null;
    let mut hung_up = false;
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let kiosk_end_reason = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call did not complete: phases {seen:?}, kiosk {:?}, chromium {chromium}",
            c.stats()
        );
        tokio::select! {
            changed = phases.changed() => {
                assert!(changed.is_ok(), "the consultation task vanished");
                let p = phases.borrow_and_update().clone();
                seen.push(p.clone());
                if let Phase::Ended { reason, .. } = p { break Some(reason) }
            }
            Some(v) = consultant.events.recv() => match v["event"].as_str() {
                Some("stats") => chromium = v,
                Some("ended") => ended = v,
                Some("error") => panic!("consultant driver failed: {v}"),
                _ => {}
            },
            _ = tick.tick() => {
                if let Some(f) = frames.borrow().clone() {
                    if f.width() == 640 && f.height() == 480 { full_frame = Some(f); }
                }
                let s = c.stats();
                let kiosk_done = s.frames_decoded >= 30 && s.frames_sent > 30 && s.audio_received >= 50 && full_frame.is_some() && c.selected_pair().is_some();
                // The self-view's top-left probe: the first bar (luma 235), or after switching to
                // the second camera a dark checkerboard square (40).
                let probe = self_view.borrow().as_ref().map(|f| f.mean_luma(12, 0, 8, 8)).unwrap_or(0.0);
                if end_by_kiosk && kiosk_done && !switched {
                    switched = true;
                    self_luma.0 = probe;
                    c.switch_camera();
                }
                let on_second = matches!(c.phase(), Phase::InCall { camera_index: 1, cameras: 2, .. }) && probe < 100.0;
                if end_by_kiosk && kiosk_done && switched && on_second && !chromium.is_null() && !hung_up {
                    hung_up = true;
                    self_luma.1 = probe;
                    c.hang_up();
                }
            }
        }
    };
    assert!(seen.iter().any(|p| matches!(p, Phase::Waiting { .. })), "{seen:?}");
    assert!(seen.iter().any(|p| matches!(p, Phase::InCall { .. })), "{seen:?}");
    let kiosk_stats = c.stats();
    let pair = c.selected_pair();
    if ended.is_null() {
        let reason = kiosk_end_reason.clone();
        while let Some(v) = tokio::time::timeout(Duration::from_secs(30), consultant.events.recv())
            .await
            .unwrap_or_else(|_| panic!("the consultant never saw the end; kiosk ended with {reason:?}, stats {kiosk_stats:?}, chromium {chromium}"))
        {
            if v["event"] == "ended" {
                ended = v;
                break;
            }
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(20), consultant.child.wait())
        .await
        .expect("driver exits")
        .expect("wait");
    assert!(status.success(), "the consultant driver failed");
    Outcome { kiosk: kiosk_stats, pair, full_frame, chromium, ended, kiosk_end_reason, self_view: self_luma }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_through_the_relay_and_the_kiosk_ends_it() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let o = call(true).await;
    // Chromium decoded the kiosk's video at the kiosk's size and heard its tone.
    let v = &o.chromium["video"];
    assert!(v["framesDecoded"].as_u64().unwrap_or(0) > 0, "{}", o.chromium);
    // At a size of the kiosk's ladder: the congestion controller starts at a prison link's rate and
    // climbs, so the first seconds of a call may be sent a rung or two below 640x480.
    let size = (v["frameWidth"].as_u64().unwrap_or(0), v["frameHeight"].as_u64().unwrap_or(0));
    assert!(
        sc_call::adapt::LADDER.iter().any(|r| (u64::from(r.width), u64::from(r.height)) == size),
        "{size:?} is not a rung of the ladder: {}",
        o.chromium
    );
    assert!(o.kiosk.target_kbps > 0.0 && o.kiosk.sending.is_some(), "{:?}", o.kiosk);
    assert!(o.chromium["audio"]["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0, "{}", o.chromium);
    assert_eq!(o.chromium["pair"]["local"], "relay", "{}", o.chromium);
    assert_eq!(o.chromium["pair"]["remote"], "relay", "{}", o.chromium);
    // The kiosk decoded Chromium's clip at its size and content, and heard its microphone.
    let f = o.full_frame.expect("a 640x480 frame from Chromium");
    let (left, right) = (f.mean_luma(40, 100, 240, 280), f.mean_luma(360, 100, 240, 280));
    assert!((left - f64::from(Y4M_LEFT)).abs() < 20.0, "left half luma {left}");
    assert!((right - f64::from(Y4M_RIGHT)).abs() < 20.0, "right half luma {right}");
    assert!(o.kiosk.frames_decoded >= 30 && o.kiosk.frames_sent > 30, "{:?}", o.kiosk);
    assert!(o.kiosk.audio_received >= 50 && o.kiosk.audio_peak_energy > 0.0, "{:?}", o.kiosk);
    assert_eq!(o.pair.as_ref().map(|p| p.local.as_str()), Some("relay"), "{:?}", o.pair);
    // The self-view showed the first camera, then the second after the switch (which sent a keyframe).
    assert!((o.self_view.0 - f64::from(sc_call::source::BAR_LUMA[0])).abs() < 1.0, "{:?}", o.self_view);
    assert!((o.self_view.1 - f64::from(sc_call::source::CHECKER_LUMA.1)).abs() < 1.0, "{:?}", o.self_view);
    assert!(o.kiosk.keyframes_sent >= 2, "{:?}", o.kiosk);
    // The kiosk hung up: the consultant's page went back to its rooms with the reason.
    assert_eq!(o.ended["by"], "kiosk");
    assert_eq!(o.ended["reason"], "The laptop ended the call.");
    assert_eq!(o.kiosk_end_reason.as_deref(), Some("You ended the call."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consultant_ending_ends_it_for_the_kiosk() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let o = call(false).await;
    assert_eq!(o.ended["by"], "consultant");
    assert_eq!(o.kiosk_end_reason.as_deref(), Some("The consultant ended the call."));
}

/// A consultation the scripted consultant admits; returns how it ended once the consultant heard
/// the kiosk hang up, with everything still alive for further checks.
struct Attempt {
    reason: String,
    kiosk: sc_core::Kiosk,
    room_code: String,
    _laptop: crate::support::Laptop,
    _server: CareServer,
}

async fn admitted_attempt(config: sc_server::config::ServerConfig, media: Arc<MediaSetup>) -> Attempt {
    admitted_attempt_answering(config, media, Vec::new()).await
}

/// As [`admitted_attempt`]; the consultant answers the kiosk's offer with `answer` (as a broken
/// browser would).
async fn admitted_attempt_answering(
    config: sc_server::config::ServerConfig,
    media: Arc<MediaSetup>,
    answer: Vec<ToServer>,
) -> Attempt {
    let server = CareServer::start_with(config).await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let cookie =
        sc_e2e::consultant::login(&server.url, &server.ca_der, "dr.who", &CareServer::code(&dr)).await.expect("login");
    let mut doctor =
        sc_e2e::consultant::connect(&server.url, &server.ca_der, &cookie, &server.url).await.expect("connect");
    let c = Consultation::start(
        kiosk.record().expect("enrolled").clone(),
        kiosk.session_token().expect("unlocked"),
        appt.room_code.clone(),
        media,
    );
    let mut phases = c.phases();
    loop {
        if let FromServer::WaitingRoom { waiting } = doctor.recv().await {
            if !waiting.is_empty() {
                break;
            }
        }
    }
    doctor.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    let mut answer = Some(answer);
    let reason = async {
        loop {
            phases.changed().await.expect("phase");
            if let Phase::Ended { reason, .. } = phases.borrow_and_update().clone() {
                return reason;
            }
        }
    };
    tokio::pin!(reason);
    let mut ended = None;
    let mut heard_hang_up = false;
    tokio::time::timeout(Duration::from_secs(30), async {
        while ended.is_none() || !heard_hang_up {
            tokio::select! {
                r = &mut reason, if ended.is_none() => ended = Some(r),
                m = doctor.recv(), if !heard_hang_up => match m {
                    FromServer::HungUp => heard_hang_up = true,
                    FromServer::Offer { .. } => for msg in answer.take().unwrap_or_default() { doctor.send(&msg).await },
                    FromServer::WaitingRoom { .. } | FromServer::Admitted { .. } | FromServer::Candidate { .. } => {}
                    other => panic!("unexpected {other:?}"),
                },
            }
        }
    })
    .await
    .expect("the attempt ends and the consultant hears it");
    let reason = ended.unwrap_or_default();
    Attempt { reason, kiosk, room_code: appt.room_code, _laptop: laptop, _server: server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_ends_the_attempt_clearly_and_the_laptop_stays_usable() {
    // TURN points at a port nobody listens on.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("port").port();
    let mut config = sc_server::config::ServerConfig::default();
    config.turn.urls = vec![format!("turn:127.0.0.1:{dead}?transport=udp")];
    let a = admitted_attempt(config, synthetic_media_with(Duration::from_secs(3))).await;
    assert_eq!(a.reason, "The call could not connect through the relay. Check the network and try again.");
    // Still unlocked and usable: the appointments load and the room can be joined again.
    assert_eq!(a.kiosk.appointments().await.expect("appointments").len(), 1);
    let again = Consultation::start(
        a.kiosk.record().expect("enrolled").clone(),
        a.kiosk.session_token().expect("token"),
        a.room_code.clone(),
        synthetic_media(),
    );
    let mut p = again.phases();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            p.changed().await.expect("phase");
            if matches!(*p.borrow_and_update(), Phase::Waiting { .. }) {
                break;
            }
        }
    })
    .await
    .expect("waiting again");
    again.hang_up();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_ends_the_attempt_clearly() {
    let mut media = MediaSetup::synthetic(vec!["127.0.0.1:0".into()], Duration::from_secs(30));
    media.cameras = Box::new(Vec::new);
    let a = admitted_attempt(sc_server::config::ServerConfig::default(), Arc::new(media)).await;
    assert_eq!(a.reason, sc_call::consultation::NO_CAMERA);
    assert_eq!(a.kiosk.appointments().await.expect("appointments").len(), 1, "the laptop stays usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_or_out_of_turn_answer_ends_the_attempt_clearly() {
    // A browser that answers with an offer first (out of turn), then a nonsense candidate, then
    // an answer that is not SDP at all.
    let script = vec![
        ToServer::Offer { sdp: "v=0\r\nout of turn".into() },
        ToServer::Candidate {
            candidate: sc_proto::signal::Candidate {
                candidate: "candidate:garbage".into(),
                sdp_mid: None,
                sdp_m_line_index: Some(0),
            },
        },
        ToServer::Answer { sdp: "this is not a session description".into() },
    ];
    let a = admitted_attempt_answering(sc_server::config::ServerConfig::default(), synthetic_media(), script).await;
    assert_eq!(a.reason, "The consultant's browser sent a call set-up this laptop cannot use. Try joining again.");
    assert_eq!(a.kiosk.appointments().await.expect("appointments").len(), 1, "the laptop stays usable");
}
