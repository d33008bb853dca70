//! A lock pressed on a thread with no Tokio runtime (as a synchronous Tauri command runs) still
//! ends the session at the server: afterwards the old bearer token is refused.

use crate::support::{creds, unlocked, Laptop};
use sc_core::client::SessionToken;
use sc_core::record::EnrolmentRecord;
use sc_core::{Kiosk, KioskView};
use sc_e2e::{CareServer, PASSWORD};
use std::sync::Arc;
use std::time::Duration;

/// Locks `kiosk` on a new plain thread, outside any runtime.
fn lock_on_a_plain_thread(kiosk: &Arc<Kiosk>) -> KioskView {
    let kiosk = kiosk.clone();
    std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err(), "no runtime on this thread");
        kiosk.lock()
    })
    .join()
    .expect("the lock thread")
}

/// What the server answers the old token, once it refuses it (the kiosk tells it in the background).
async fn refused_after_lock(record: &EnrolmentRecord, token: &SessionToken) -> Option<sc_core::Error> {
    let client = sc_core::client::client_for(record).expect("client");
    for _ in 0..100 {
        match client.appointments(token).await {
            Err(e) => return Some(e),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

#[tokio::test]
async fn a_lock_from_a_plain_thread_ends_the_session_at_the_server() {
    let server = CareServer::start().await;
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.lock").await;
    let kiosk = Arc::new(kiosk);
    let token = kiosk.session_token().expect("unlocked");
    let record = kiosk.record().expect("enrolled").clone();
    let client = sc_core::client::client_for(&record).expect("client");
    assert!(client.appointments(&token).await.is_ok(), "the token works while unlocked");

    let view = lock_on_a_plain_thread(&kiosk);
    assert!(matches!(view, KioskView::Locked { .. }), "{view:?}");
    let refused = refused_after_lock(&record, &token).await;
    assert!(matches!(refused, Some(sc_core::Error::Refused)), "the old token is refused: {refused:?}");
}

#[tokio::test]
async fn a_kiosk_opened_outside_any_runtime_still_tells_the_server() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.norun", "Nurse N", "HMP Testshire");
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;
    // Opened on a thread with no runtime, so the kiosk has none to run background work on.
    let dir = laptop.dir.path().to_path_buf();
    let kiosk = std::thread::spawn(move || Kiosk::open(&dir, sc_core::keystore::Keystore::secret_service))
        .join()
        .expect("open thread")
        .expect("kiosk");
    let kiosk = Arc::new(kiosk);
    let view = kiosk.sign_in(creds("nurse.norun", PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, KioskView::Unlocked { .. }), "{view:?}");
    let token = kiosk.session_token().expect("unlocked");
    let record = kiosk.record().expect("enrolled").clone();

    lock_on_a_plain_thread(&kiosk);
    let refused = refused_after_lock(&record, &token).await;
    assert!(matches!(refused, Some(sc_core::Error::Refused)), "the old token is refused: {refused:?}");
}
