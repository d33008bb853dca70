//! The kiosk trusts only the CA pinned at enrolment (and, before that, only the CA whose
//! fingerprint the enrolment token carries).

use crate::support::{creds, Laptop};
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sc_core::KioskView;
use sc_e2e::{CareServer, PASSWORD};
use sc_server::config::ServerConfig;
use sc_server::{db, pki, serve, state, AppState};

/// A care server presenting a plain self-signed certificate for localhost/127.0.0.1.
async fn impostor() -> (serve::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    let command = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("cmd");
    let keys = pki::Pki {
        ca_der: cert.der().to_vec(),
        chain: vec![CertificateDer::from(cert.der().to_vec())],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        command_key: std::sync::Arc::new(ring::signature::Ed25519KeyPair::from_pkcs8(command.as_ref()).expect("cmd")),
    };
    let config = ServerConfig { data_dir: dir.path().to_path_buf(), ..ServerConfig::default() };
    let state = AppState::new(
        db::open(&config.db_path(), &sc_server::pki::server_keys(&config.data_dir).expect("server keys")).expect("db"),
        config,
        keys.command_key.clone(),
        state::system_clock(),
    )
    .expect("state");
    (serve::start(state, &keys, "127.0.0.1:0".parse().expect("addr")).expect("serve"), dir)
}

#[tokio::test]
async fn a_server_with_another_self_signed_certificate_is_refused() {
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    let mut record = laptop.enrol(&server, "HMP Testshire").await;

    let (fake, _dir) = impostor().await;
    record.server_url = format!("https://127.0.0.1:{}", fake.addr.port());
    laptop.data.store_record(&record).expect("redirect the laptop");

    let client = sc_core::client::client_for(&record).expect("client");
    assert!(matches!(client.health().await, Err(sc_core::Error::UntrustedServer)));

    let kiosk = laptop.kiosk();
    let KioskView::Locked { notice: Some(n) } = kiosk.check_server().await else { panic!("no notice") };
    // Issue #16 item 4: words a nurse can act on, and a short code for IT (this said "the server's
    // certificate is not the pinned one").
    let words = "The healthcare server could not be confirmed as genuine, so nothing was sent. Do not sign in on \
                 this network; tell IT. For IT: SC-TLS-PIN.";
    assert_eq!((n.kind.as_str(), n.message.as_str()), ("error", words));
    let view = kiosk.sign_in(creds("nurse.jo", PASSWORD, CareServer::code(&secret))).await;
    let KioskView::Locked { notice: Some(n) } = view else { panic!("{view:?}") };
    assert_eq!(n.kind, "error");
    assert_eq!(n.message, words);
    fake.stop().await;
}

#[tokio::test]
async fn enrolment_refuses_a_server_whose_ca_is_not_in_the_token() {
    let server = CareServer::start().await;
    let (fake, _dir) = impostor().await;
    let laptop = Laptop::new().await;
    let token = server.token("HMP Testshire").parse().expect("token");
    let url = format!("https://127.0.0.1:{}", fake.addr.port());
    let result = sc_core::enrol::enrol(&laptop.data, &laptop.keystore, &url, &token).await;
    assert!(matches!(result, Err(sc_core::Error::UntrustedServer)), "{result:?}");
    assert!(laptop.data.load_record().expect("read").is_none(), "nothing was enrolled");
    assert!(!laptop.data.sealed_path().exists());
    fake.stop().await;
}
