//! Issue #17: two care server instances behind one address (HAProxy in TCP mode; TLS ends at the
//! instances) on one PostgreSQL database. The laptop reaches instance A through the balancer,
//! the consultant's browser instance B directly; A is killed mid-call. Runs in the test command's
//! PostgreSQL pass (SC_TEST_DATABASE_URL); on SQLite there is one instance and nothing to test.

use crate::call::{start_consultant_holding, synthetic_media, until_consultant_in_call};
use crate::faults::audited;
use crate::support::unlocked;
use sc_call::consultation::{Consultation, Phase};
use sc_e2e::balancer::Balancer;
use sc_e2e::media::{write_y4m, Turn};
use sc_e2e::{CareServer, TURN_SECRET};
use sc_server::config::ServerConfig;
use std::time::Duration;
use tokio::time::Instant;

async fn wait_until(what: &str, deadline: Instant, mut f: impl FnMut() -> bool) {
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_17_a_call_across_two_instances_goes_on_when_the_laptops_instance_is_killed_and_a_brick_still_arrives() {
    let Some(scratch) = sc_server::scratch::Scratch::from_env() else {
        eprintln!("several instances share PostgreSQL: this runs in the test command's PostgreSQL pass");
        return;
    };
    // A call: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let turn = Turn::start(TURN_SECRET);
    let mut config = ServerConfig::default();
    config.turn.urls = vec![turn.url()];
    // Instance B, in this process; instance A, a process of its own, on the same data and database.
    let mut server = CareServer::start_on(config, Some(scratch.expect("a scratch database"))).await;
    let mut a = server.instance_process();
    let balancer = Balancer::start(a.addr, server.addr);
    let b_url = std::mem::replace(&mut server.url, balancer.url());

    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    // The laptop knows only the balancer's address: enrolment, sign-in, its device channel and
    // its signalling all go through it, to A while A lives.
    let (laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let device = kiosk.record().expect("enrolled").device_id.clone();
    let kiosk = std::sync::Arc::new(kiosk);
    let channel = tokio::spawn(sc_core::channel::run(kiosk.clone()));
    server.url = b_url;

    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    write_y4m(clip.path(), 15);
    let mut consultant = start_consultant_holding(&server, &dr, clip.path(), "consultant", 120_000);
    let c = Consultation::start(
        kiosk.record().expect("enrolled").clone(),
        kiosk.session_token().expect("unlocked"),
        appt.room_code.clone(),
        synthetic_media(),
    );
    let mut phases = c.phases();
    let deadline = Instant::now() + Duration::from_secs(120);
    until_consultant_in_call(&mut consultant, deadline).await;
    assert!(matches!(c.phase(), Phase::InCall { .. }), "{:?}", c.phase());
    // The two halves are on two instances: B holds only the page's signalling connection.
    assert_eq!(server.state.sessions.live(), 1, "the laptop's connections are on instance A");
    assert_eq!(audited(&server, "call_started"), 1);

    let contact = || sc_server::db::device(&server.state.db(), &device).expect("db").expect("device").last_contact;
    let contact_before = contact();
    assert!(contact_before.is_some(), "the device channel said hello (to A)");
    // A dies. The media goes on through the relay; the laptop's signalling and device channel
    // reconnect through the balancer, now to B, which links the call's halves again.
    a.kill();
    let killed = std::time::Instant::now();
    let before = (c.stats().frames_decoded, c.stats().audio_received);
    let mut seen_phases = Vec::new();
    while audited(&server, "call_resumed") == 0 {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => panic!("not resumed on B; kiosk phases {seen_phases:?}"),
            v = consultant.events.recv() => {
                let v = v.expect("driver");
                if matches!(v["event"].as_str(), Some("error" | "ended")) {
                    panic!("the consultant's call ended or failed: {v}");
                }
            }
            changed = phases.changed() => {
                assert!(changed.is_ok(), "the consultation task vanished");
                seen_phases.push(phases.borrow_and_update().clone());
            }
        }
    }
    eprintln!("instance A killed -> call resumed on B in {:?}", killed.elapsed());
    assert!(
        seen_phases.iter().all(|p| matches!(p, Phase::InCall { .. })),
        "the kiosk stayed in the call: {seen_phases:?}"
    );
    assert_eq!(audited(&server, "call_started"), 1, "no second admission");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = (c.stats().frames_decoded, c.stats().audio_received);
    assert!(after.0 > before.0 && after.1 > before.1, "media went on: {before:?} -> {after:?}");

    // IT bricks the laptop (on B): the push reaches it over its device channel, now on B.
    wait_until("the device channel's hello to B", deadline, || contact() > contact_before).await;
    sc_server::admin::brick_device(&server.state.db(), &device, "stolen", "it.sam", sc_e2e::now()).expect("brick");
    wait_until("the wipe's receipt", deadline, || {
        sc_server::db::brick_of(&server.state.db(), &device).expect("db").and_then(|b| b.wiped_at).is_some()
    })
    .await;
    let delivered: String = server
        .state
        .db()
        .query_row("SELECT detail FROM audit WHERE event = 'brick_delivered'", [], |r| r.get(0))
        .expect("the brick's delivery audited");
    assert!(delivered.contains("via=channel"), "pushed over the channel: {delivered}");
    tokio::time::timeout(Duration::from_secs(10), channel)
        .await
        .expect("the channel ends after the wipe")
        .expect("join");
    drop((consultant, c, laptop, balancer, turn));
}
