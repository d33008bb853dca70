//! Issue #17 item 4: a prison network that lets no UDP out. The relay (coturn) also listens for
//! TLS on port 443 with a certificate from the care server's CA (`care-server relay-cert`), and
//! the server hands both URLs; with every UDP packet between the prison and the hospital dropped
//! (nftables in the test's own namespaces), the kiosk's probe of the relay's UDP port goes
//! unanswered and its call connects through TURN over TLS, media flowing both ways.

use sc_e2e::link::{Link, Profile, Side};
use sc_e2e::shaped::{attempt, hospital_with_tls_relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_with_udp_to_the_relay_blocked_the_call_connects_over_turn_tls_on_443() {
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let link = Link::new(Profile::unshaped());
    let h = hospital_with_tls_relay(&link);
    link.udp_outage(true);
    let a = attempt(&link, &h, 0, 12).await;
    let phases: Vec<_> = a.engine.iter().filter(|v| v["event"] == "phase").collect();
    assert!(a.connected_after_admission.is_some(), "the call never connected; engine: {phases:?}");
    // The most each side counted (a report after the hang-up may have no receiver left).
    let most = |reports: &[serde_json::Value], key: &str| reports.iter().filter_map(|v| v[key].as_u64()).max();
    let (video, voice) = (most(&a.engine, "frames_decoded"), most(&a.engine, "audio_received"));
    assert!(video > Some(10), "the consultant's video reached the kiosk: {video:?} frames");
    assert!(voice > Some(50), "the consultant's voice reached the kiosk: {voice:?} packets");
    let (video, voice) = (most(&a.page, "framesDecoded"), most(&a.page, "audioPackets"));
    assert!(video > Some(10), "the kiosk's video reached the consultant: {video:?} frames; {:?}", a.page.last());
    assert!(voice > Some(50), "the kiosk's voice reached the consultant: {voice:?} packets");
    // The UDP cut was in force: the kiosk's probes of the relay's UDP port were dropped.
    assert!(link.drops(Side::Hospital).outage > 0, "no UDP was dropped: the cut did not hold");
}
