//! Issue #14: the posture a laptop reports is read from the kernel's own files and judged by its
//! prison's policy. Each failing item, simulated by pointing the check at prepared files, refuses
//! the sign-in with the server's sentence for it on the lock screen and its word in the audit log;
//! IT see the laptop's last report; a sound laptop signs in.

use crate::support::{creds, Laptop};
use sc_core::posture::Sources;
use sc_core::{Clock, KioskView};
use sc_e2e::posture::PreparedRoot;
use sc_e2e::{CareServer, PASSWORD};
use sc_server::posture::{Failing, PosturePolicy};

/// A canary nothing listens on: a connection is refused by the peer, not the firewall.
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_each_failing_posture_item_is_refused_with_its_sentence_and_audited() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    let record = laptop.enrol(&server, "HMP Testshire").await;
    let prison = sc_server::db::prison_by_name(&server.state.db(), "HMP Testshire").expect("prison");
    // The production set, but the firewall judged only in its own case (it needs the rules loaded).
    let production = PosturePolicy { require_firewall: false, ..PosturePolicy::production() };
    let firewall_only = PosturePolicy { require_firewall: true, ..PosturePolicy::default() };
    let skewed = Clock::with_wall(|| sc_e2e::now() + 600);

    type Break = Box<dyn Fn(&PreparedRoot)>;
    let cases: Vec<(Failing, Break, &PosturePolicy, Option<Clock>)> = vec![
        (Failing::RootNotEncrypted, Box::new(PreparedRoot::unencrypted), &production, None),
        (Failing::SecureBootOff, Box::new(PreparedRoot::secure_boot_off), &production, None),
        (Failing::NoLockdown, Box::new(PreparedRoot::no_lockdown), &production, None),
        (Failing::NotInKioskSession, Box::new(PreparedRoot::outside_the_session), &production, None),
        (Failing::NoFirewall, Box::new(|_| {}), &firewall_only, None),
        (Failing::Process("sshd".into()), Box::new(|r| r.running("sshd")), &production, None),
        (Failing::Interface("wlan0".into()), Box::new(|r| r.interface("wlan0")), &production, None),
        (Failing::Unpatched(Some(60)), Box::new(|r| r.patched_days_ago(60)), &production, None),
        (Failing::ClockSkew(600), Box::new(|_| {}), &production, Some(skewed)),
    ];
    for (failing, break_it, policy, clock) in cases {
        sc_server::db::set_posture_policy(&server.state.db(), prison.id, policy).expect("policy");
        let root = PreparedRoot::sound();
        break_it(&root);
        let sources =
            Sources { root: root.path().to_owned(), canary: Some(closed_port()), clock: clock.unwrap_or_default() };
        let kiosk = laptop.kiosk().with_posture(sources);
        // Posture is judged before the password and code: the same code serves every case.
        let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
        let item = failing.item();
        let KioskView::Locked { notice: Some(n) } = view else { panic!("{item}: not refused: {view:?}") };
        // The skew is 600 s, or 601 when a second turns between the two readings ("11 minutes").
        let expected = match failing {
            Failing::ClockSkew(_) if n.message == Failing::ClockSkew(601).sentence() => n.message.clone(),
            _ => failing.sentence(),
        };
        assert_eq!((n.kind.as_str(), n.message.as_str()), ("posture", expected.as_str()), "{item}");
        let audit = sc_server::audit::tail(&server.state.db(), 1).expect("audit");
        let row = &audit[0];
        let detail = row.detail.clone().unwrap_or_default();
        assert_eq!(
            (row.event.as_str(), row.outcome.as_str(), row.reason.as_deref()),
            ("activate", "refused", Some("posture")),
            "{item}"
        );
        let logged = item.split(':').next().expect("a word");
        assert!(detail.starts_with(logged), "{item}: audit detail {detail:?}");
        let last = sc_server::db::posture_of(&server.state.db(), &record.device_id).expect("db").expect("kept");
        assert!(last.failing.iter().any(|f| f.starts_with(logged)), "{item}: IT see it: {last:?}");
    }

    // The sound laptop, under the full production set bar the firewall, signs in.
    sc_server::db::set_posture_policy(&server.state.db(), prison.id, &production).expect("policy");
    let root = PreparedRoot::sound();
    let sources = Sources { root: root.path().to_owned(), canary: None, clock: Clock::system() };
    let view =
        laptop.kiosk().with_posture(sources).sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, KioskView::Unlocked { .. }), "{view:?}");
    let last = sc_server::db::posture_of(&server.state.db(), &record.device_id).expect("db").expect("kept");
    assert_eq!((last.stage.as_str(), last.failing.len(), last.report.root_encrypted), ("activation", 0, Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_an_enrolment_failing_its_prison_s_posture_is_refused_and_keeps_its_token() {
    let server = CareServer::start().await;
    server.add_prison("HMP Strict");
    let prison = sc_server::db::prison_by_name(&server.state.db(), "HMP Strict").expect("prison");
    // This machine is a test bench: no Secure Boot.
    let policy = PosturePolicy { require_secure_boot: true, ..PosturePolicy::default() };
    sc_server::db::set_posture_policy(&server.state.db(), prison.id, &policy).expect("policy");
    let laptop = Laptop::new().await;
    let token = server.token("HMP Strict");
    let e = sc_core::enrol::enrol(&laptop.data, &laptop.keystore, &server.url, &token.parse().expect("token"))
        .await
        .expect_err("refused");
    assert!(matches!(&e, sc_core::Error::PostureRefused(m) if *m == Failing::SecureBootOff.sentence()), "{e:?}");
    assert!(laptop.data.load_record().expect("read").is_none(), "not enrolled");
    let audit = sc_server::audit::tail(&server.state.db(), 1).expect("audit");
    assert_eq!((audit[0].event.as_str(), audit[0].reason.as_deref()), ("enrol", Some("posture")));
    assert!(audit[0].detail.as_deref().is_some_and(|d| d.contains("secure_boot_off")), "{audit:?}");
    // Put right, the same token enrols.
    sc_server::db::set_posture_policy(&server.state.db(), prison.id, &PosturePolicy::default()).expect("policy");
    let laptop = Laptop::new().await;
    sc_core::enrol::enrol(&laptop.data, &laptop.keystore, &server.url, &token.parse().expect("token"))
        .await
        .expect("the token was not spent");
}
