//! Enrol, activate, unseal over real TLS with the real keystore; restart locks; a dead server keeps
//! the laptop locked; a revoked device can never be unsealed again.

use crate::support::{creds, Laptop};
use sc_core::sealed::{self, DataKey};
use sc_core::KioskView;
use sc_e2e::{CareServer, PASSWORD};
use std::time::Instant;

#[tokio::test]
async fn enrol_activate_unseal_then_restart_is_locked() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    // A record of the link this laptop had before (another prison's): enrolment starts afresh.
    std::fs::write(laptop.data.link_path(), br#"{"limit_bps":57000.0,"at_unix":1}"#).expect("old link record");
    let record = laptop.enrol(&server, "HMP Testshire").await;
    assert!(!laptop.data.link_path().exists(), "enrolment forgets the link the laptop had before");
    assert_eq!(record.server_url, server.url);
    assert_eq!(record.ca_cert.0, server.ca_der, "the CA from the token's fingerprint is pinned");

    let kiosk = laptop.kiosk();
    assert_eq!(kiosk.check_server().await, KioskView::Locked { notice: None }, "starts locked");
    let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    let KioskView::Unlocked { prison, staff, lease_secs_left, .. } = view else { panic!("not unlocked: {view:?}") };
    assert_eq!((prison.as_str(), staff.as_str()), ("HMP Testshire", "Jo Nurse"));
    assert!(lease_secs_left > 4 * 3600 - 60 && lease_secs_left <= 4 * 3600);

    let config = kiosk.with_session(|s| s.unsealed.config.clone()).expect("unlocked session");
    assert_eq!(config.device_id, record.device_id);
    assert_eq!(config.server_url, server.url);
    assert_eq!(config.policy, server.state.config.policy);

    assert!(matches!(kiosk.lock(), KioskView::Locked { .. }));
    assert!(kiosk.with_session(|_| ()).is_none(), "the key is gone once locked");

    drop(kiosk);
    let restarted = laptop.kiosk();
    assert_eq!(restarted.view(Instant::now()), KioskView::Locked { notice: None }, "a restart is locked again");
    let view = restarted.sign_in(creds("nurse.jo", PASSWORD, CareServer::next_code(&secret))).await;
    assert!(matches!(view, KioskView::Unlocked { .. }), "and unlocks again: {view:?}");
}

#[tokio::test]
async fn a_stopped_server_keeps_the_laptop_locked_with_a_clear_message() {
    let mut server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;
    server.stop().await;

    let kiosk = laptop.kiosk();
    let expected = "Cannot reach the healthcare server. Check the laptop's network cable, then try again.";
    for view in
        [kiosk.check_server().await, kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await]
    {
        let KioskView::Locked { notice: Some(n) } = view else { panic!("not locked with a notice: {view:?}") };
        assert_eq!((n.kind.as_str(), n.message.as_str()), ("unreachable", expected));
    }

    server.restart().await;
    assert_eq!(kiosk.check_server().await, KioskView::Locked { notice: None }, "the message clears");
    let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, KioskView::Unlocked { .. }), "{view:?}");
}

#[tokio::test]
async fn wrong_credentials_show_refused_then_locked_out() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;
    let kiosk = laptop.kiosk();
    for _ in 0..5 {
        let view = kiosk.sign_in(creds("nurse.jo", "not the password", CareServer::code(&secret))).await;
        let KioskView::Locked { notice: Some(n) } = view else { panic!("{view:?}") };
        assert_eq!(n.kind, "refused");
    }
    let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    let KioskView::Locked { notice: Some(n) } = view else { panic!("{view:?}") };
    assert_eq!(n.kind, "locked_out");
    assert_eq!(n.message, "Too many failed sign-ins: locked out for 5 minutes.");
}

#[tokio::test]
async fn a_revoked_device_can_never_be_unsealed() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    let record = laptop.enrol(&server, "HMP Testshire").await;

    // Keep what a thief would copy before the revoke: the files and the keystore entry.
    let sealed_copy = std::fs::read(laptop.data.sealed_path()).expect("sealed file");
    let profile = laptop.data.profile_id();
    let store = laptop.keystore.clone();
    let secrets = tokio::task::spawn_blocking(move || store.load(&profile)).await.expect("join").expect("secrets");
    let server_secret: Vec<u8> = server
        .state
        .db()
        .query_row("SELECT exchange_secret FROM devices WHERE id = ?1", [record.device_id.as_str()], |r| r.get(0))
        .expect("secret row");

    // A reason as long as IT types one: with a short one the updated row overwrote the secret in
    // place and the scan below passed by layout alone (issue #13).
    let reason = "stolen from the van outside HMP Testshire on Tuesday night, reported by the nurse";
    sc_server::admin::brick_device(&server.state.db(), &record.device_id, reason, "it.admin", sc_e2e::now())
        .expect("brick");

    let kiosk = laptop.kiosk();
    let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    // Valid staff credentials no longer unlock it: the answer is the wipe order, and it is obeyed.
    assert!(matches!(view, KioskView::Disabled { .. }), "{view:?}");
    assert!(!laptop.data.sealed_path().exists(), "the laptop wiped its own copy");

    // The server's copy of the secret is gone, from the table and from the database files.
    let after: Option<Vec<u8>> = server
        .state
        .db()
        .query_row("SELECT exchange_secret FROM devices WHERE id = ?1", [record.device_id.as_str()], |r| r.get(0))
        .expect("row");
    assert_eq!(after, None);
    for entry in std::fs::read_dir(server.dir.path()).expect("list") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!bytes.windows(32).any(|w| w == server_secret.as_slice()), "secret bytes linger on disk");
    }

    // Everything the laptop holds, tried as key material: nothing opens the sealed file.
    let share = *secrets.local_share();
    let device_pub = secrets.public_key().expect("pk");
    let candidates: Vec<[u8; 32]> =
        vec![[0; 32], share, device_pub, record.client_public.0, record.exchange_public.0, record.command_public_key.0];
    for k in &candidates {
        for key in [DataKey::derive(k, &share, &record.device_id).expect("derive"), DataKey::from_bytes(*k)] {
            let opened = sealed::open(&sealed_copy, &key, &record.device_id);
            assert!(matches!(opened, Err(sc_core::Error::SealBroken)), "{opened:?}");
        }
    }
}
