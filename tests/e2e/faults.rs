//! Faults in the middle of a call (issue #13): the care server restarted (the call goes on, both
//! sides reconnect their signalling by themselves and resume it, no new admission), and the kiosk
//! killed (the consultant is told; the kiosk starts again locked).

use crate::call::{start_consultant_holding, synthetic_media, until_consultant_in_call};
use crate::support::unlocked;
use crate::window::{wait_for, window_call, WindowCall, DISPLAY};
use sc_call::consultation::{Consultation, EndReason, Phase};
use sc_e2e::media::{write_y4m, Turn};
use sc_e2e::{CareServer, TURN_SECRET};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// How many audit rows of `event` the server's database holds.
pub(crate) fn audited(server: &CareServer, event: &str) -> i64 {
    server
        .state
        .db()
        .query_row("SELECT COUNT(*) FROM audit WHERE event = ?1", [event], |r| r.get(0))
        .expect("audit count")
}

/// Waits (up to 10 s) for the server to hold `want` audit rows of `event`, and returns how many
/// it holds. The server tells the peer a call ended before its audit row is written, so a test
/// that has just seen the end polls rather than reads once.
pub(crate) async fn audited_eventually(server: &CareServer, event: &str, want: i64) -> i64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let n = audited(server, event);
        if n >= want || Instant::now() >= until {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_13_the_care_server_restarted_mid_call_the_call_goes_on_and_both_sides_resume_it() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let turn = Turn::start(TURN_SECRET);
    let mut server = CareServer::start_relaying(&turn).await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    write_y4m(clip.path(), 15);
    // The consultant holds the call 30 s once it is proven, then clicks End.
    let mut consultant = start_consultant_holding(&server, &dr, clip.path(), "consultant", 30_000);
    let c = Consultation::start(
        kiosk.record().expect("enrolled").clone(),
        kiosk.session_token().expect("unlocked"),
        appt.room_code.clone(),
        synthetic_media(),
    );
    let mut phases = c.phases();
    let deadline = Instant::now() + Duration::from_secs(90);
    // The call is up both ways.
    until_consultant_in_call(&mut consultant, deadline).await;
    assert!(matches!(c.phase(), Phase::InCall { .. }), "{:?}", c.phase());
    let before = (c.stats().frames_decoded, c.stats().audio_received);

    // The server goes away for two seconds and comes back as a new process would: empty rooms,
    // no connections, the same database.
    server.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = (c.stats().frames_decoded, c.stats().audio_received);
    server.start_fresh().await;

    // Both sides come back and are linked again (the new server audits the resume), the kiosk's
    // phase never having left the call.
    let mut page: Value = Value::Null;
    let mut seen_phases = Vec::new();
    while audited(&server, "call_resumed") == 0 || page["resumed"].as_u64().unwrap_or(0) == 0 {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => panic!(
                "not resumed: audit {}, page {page}, kiosk phases {seen_phases:?}", audited(&server, "call_resumed")),
            v = consultant.events.recv() => {
                let v = v.expect("driver");
                match v["event"].as_str() {
                    Some("page") => page = v,
                    Some("error" | "ended") => panic!("the consultant's call ended or failed: {v}"),
                    _ => {}
                }
            }
            changed = phases.changed() => {
                assert!(changed.is_ok(), "the consultation task vanished");
                seen_phases.push(phases.borrow_and_update().clone());
            }
        }
    }
    assert!(
        seen_phases.iter().all(|p| matches!(p, Phase::InCall { .. })),
        "the kiosk stayed in the call: {seen_phases:?}"
    );
    assert_eq!(audited(&server, "call_started"), 1, "no second admission");
    // Media never stopped: the kiosk decoded video and played sound while the server was down.
    assert!(during.0 > before.0 && during.1 > before.1, "media while the server was down: {before:?} -> {during:?}");

    // The new server relays again: the consultant's End reaches the laptop.
    let reason = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline + Duration::from_secs(30)) => panic!("the call did not end: {:?}", c.phase()),
            v = consultant.events.recv() => {
                let v = v.expect("driver");
                if v["event"] == "error" { panic!("consultant driver failed: {v}") }
            }
            changed = phases.changed() => {
                assert!(changed.is_ok(), "the consultation task vanished");
                if let Phase::Ended { cause, .. } = phases.borrow_and_update().clone() { break cause }
            }
        }
    };
    assert_eq!(reason, EndReason::ConsultantEnded, "the hang-up came through the restarted server");
    assert_eq!(audited_eventually(&server, "call_ended", 1).await, 1);
    assert!(sc_server::calls::all(&server.state.db()).expect("live calls").is_empty(), "nothing left to resume");
    drop(turn);
}

/// A laptop that asks to resume a call that is not its own, or after its call ended, is refused
/// in the same words, and a consultant cannot take over another's call.
#[tokio::test(flavor = "multi_thread")]
async fn issue_13_only_the_calls_own_peers_resume_it() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    use crate::support::{next, signalling};
    use sc_proto::signal::{FromServer, ToServer};
    let server = CareServer::start().await;
    server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let mut sig = signalling(&kiosk).await.expect("signalling");
    // Never admitted: nothing to resume.
    sig.send(&ToServer::Resume { appointment_id: appt.id }).await.expect("send");
    let refused = next(&mut sig).await;
    assert!(matches!(&refused, FromServer::Error { kind, .. } if kind == "not_resumable"), "{refused:?}");
    // Another laptop's live call: refused in the same words.
    let (_other_laptop, other) = unlocked(&server, "HMP Testshire", "nurse.b").await;
    let device = other.record().expect("enrolled").device_id.clone();
    let dr = sc_server::db::staff_by_username(&server.state.db(), "dr.who").expect("db").expect("dr.who");
    let call = sc_server::rooms::CallEvent { appointment_id: appt.id, device_id: device, consultant_id: dr.id };
    sc_server::calls::started(&server.state.db(), &call, sc_e2e::now()).expect("live call");
    sig.send(&ToServer::Resume { appointment_id: appt.id }).await.expect("send");
    assert_eq!(next(&mut sig).await, refused, "the same answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_13_the_kiosk_killed_mid_call_tells_the_consultant_and_starts_again_locked() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    assert!(std::env::var_os("DISPLAY").is_some(), "needs an X display: scripts/test.sh runs Xvfb");
    let WindowCall { turn, server, dr, laptop, clip, mut kiosk } = window_call("kiosk-killed.log").await;
    let mut consultant = crate::call::start_consultant(&server, &dr, clip.path(), "kiosk");
    crate::window::call_proven(&mut consultant, &kiosk).await;
    // kill -9 in the middle of the call.
    kiosk.child.kill().expect("kill the kiosk");
    let _ = kiosk.child.wait();
    let told = loop {
        let v = tokio::time::timeout(Duration::from_secs(60), consultant.events.recv())
            .await
            .expect("the consultant is told")
            .expect("driver");
        match v["event"].as_str() {
            Some("ended") => break v,
            Some("error") => panic!("consultant driver failed: {v}"),
            _ => {}
        }
    };
    assert_eq!(told["reason"], "The laptop left.", "{told}");
    let ended = audited_eventually(&server, "call_ended", 1).await;
    assert_eq!(ended, 1, "the server ended the call");
    assert!(sc_server::calls::all(&server.state.db()).expect("live calls").is_empty(), "not resumable");

    // Started again, the kiosk is locked: its lock screen, and no session of its own.
    let again = crate::window::start_kiosk(laptop.dir.path(), "kiosk-killed-restart.log", true);
    let shot = sc_e2e::artifacts_dir().join("kiosk-killed-restart.png");
    tokio::task::spawn_blocking(move || {
        wait_for("the lock screen after the restart", Duration::from_secs(60), || crate::window::on_lock_screen(&shot));
    })
    .await
    .expect("join");
    assert!(!again.log().contains("kiosk unlocked"), "{}", again.log());
    drop(again);
    drop(turn);
}
