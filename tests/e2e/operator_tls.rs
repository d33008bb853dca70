//! Issue #17 item 3: two TLS identities on one server. The staff pages' host name gets the
//! operator's certificate (here from a test "hospital" CA, trusted by the browser's own store,
//! with no flag that ignores certificate errors); the laptops keep the private CA they pin, and a
//! laptop sent to the pages' host name refuses what it is shown there.

use rustls_pki_types::pem::PemObject as _;
use sc_e2e::browser::Driver;
use sc_e2e::CareServer;
use std::path::Path;
use std::process::Command;

const PAGES: &str = "consult.hospital.test";

/// A "hospital" CA and a leaf for `PAGES` it issued; (CA PEM, leaf PEM, leaf key PEM).
fn hospital_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "Test Hospital Root CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec![PAGES.to_owned()]).expect("params");
    leaf.distinguished_name.push(DnType::CommonName, PAGES);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

/// A browser home whose NSS store trusts `ca_pem` (none: an empty store).
fn browser_home(dir: &Path, ca_pem: Option<&Path>) {
    let db = dir.join(".pki/nssdb");
    std::fs::create_dir_all(&db).expect("nssdb");
    let sql = format!("sql:{}", db.display());
    let mut steps = vec![vec!["-N", "--empty-password", "-d", &sql]];
    if let Some(ca) = ca_pem {
        steps.push(vec![
            "-A",
            "-d",
            &sql,
            "-n",
            "Test Hospital Root CA",
            "-t",
            "C,,",
            "-i",
            ca.to_str().expect("utf-8"),
        ]);
    }
    for args in steps {
        let out = Command::new("certutil").args(&args).output().expect("certutil (libnss3-tools)");
        assert!(out.status.success(), "certutil {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A client with `config`, sending `PAGES` for the server's address.
fn client_for_pages(server: &CareServer, config: rustls::ClientConfig) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(PAGES, server.addr)
        .no_proxy()
        .build()
        .expect("client");
    (client, format!("https://{PAGES}:{}", server.addr.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_the_pages_use_the_operators_certificate_and_the_laptop_still_trusts_only_its_pin() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca_pem, leaf_pem, key_pem) = hospital_ca();
    let (ca, cert, key) = (dir.path().join("ca.pem"), dir.path().join("pages.pem"), dir.path().join("pages.key"));
    std::fs::write(&ca, &ca_pem).expect("write");
    std::fs::write(&cert, &leaf_pem).expect("write");
    std::fs::write(&key, &key_pem).expect("write");
    let mut config = sc_server::config::ServerConfig::default();
    config.pages_tls =
        Some(sc_server::config::PagesTls { cert: cert.clone(), key: key.clone(), names: vec![PAGES.to_owned()] });
    let server = CareServer::start_with(config).await;
    let dr = server.add_consultant("dr.who", "Dr Who");

    // A client that trusts the hospital CA alone reaches the pages by their name.
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA");
    roots.add(ca_der).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let trusting = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (client, base) = client_for_pages(&server, trusting);
    let page = client.get(format!("{base}/consult/")).send().await.expect("the pages by name");
    assert_eq!(page.status(), 200);

    // The laptop's own TLS (its pin) refuses the pages' name: it is shown the operator's chain.
    let pinned = sc_core::tls::pinned(&server.ca_der).expect("pinned");
    let (laptop, base) = client_for_pages(&server, pinned);
    let refused = laptop.get(format!("{base}/v1/health")).send().await;
    assert!(refused.is_err(), "a laptop sent to the pages' name must refuse it: {refused:?}");
    // By its enrolled address it still gets the private leaf, and activation works as before.
    let laptop_client = reqwest::Client::builder()
        .tls_backend_preconfigured(sc_core::tls::pinned(&server.ca_der).expect("pinned"))
        .no_proxy()
        .build()
        .expect("client");
    let health = laptop_client.get(format!("{}/v1/health", server.url)).send().await.expect("by address");
    assert_eq!(health.status(), 200);
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = crate::support::Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;
    let view =
        laptop.kiosk().sign_in(crate::support::creds("nurse.jo", sc_e2e::PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, sc_core::KioskView::Unlocked { .. }), "{view:?}");

    // Chromium with nothing relaxed and a store without the hospital CA refuses the page: what
    // follows is the store's doing, not a lenient browser.
    let bare = dir.path().join("bare");
    browser_home(&bare, None);
    let url = format!("https://{PAGES}:{}", server.addr.port());
    let mut untrusting = Driver::trusting(&url, &format!("{PAGES} 127.0.0.1"), &bare, "dr.who", &dr);
    let refused = loop {
        let v = tokio::time::timeout(std::time::Duration::from_secs(60), untrusting.events.recv())
            .await
            .expect("the untrusting browser's answer")
            .expect("driver");
        if matches!(v["event"].as_str(), Some("error" | "loaded")) {
            break v;
        }
    };
    assert!(refused.to_string().contains("ERR_CERT_AUTHORITY_INVALID"), "{refused}");

    // Chromium, trusting only its own store (which holds the hospital CA), with no flag that
    // relaxes certificate checks, opens the page by name and signs in.
    let home = dir.path().join("home");
    browser_home(&home, Some(&ca));
    let mut driver = Driver::trusting(&url, &format!("{PAGES} 127.0.0.1"), &home, "dr.who", &dr);
    let loaded = driver.wait_for("the page", 60, |v| (v["event"] == "loaded").then(|| v.clone())).await;
    assert_eq!(loaded["status"], 200, "{loaded}");
    assert!(loaded["issuer"].as_str().is_some_and(|i| i.contains("Test Hospital Root CA")), "{loaded}");
    assert_eq!(loaded["subject"], PAGES, "{loaded}");
    let signed_in = driver.wait_for("the sign-in", 60, |v| (v["event"] == "signed_in").then(|| v.clone())).await;
    assert_eq!(signed_in["who"], "Dr Who", "{signed_in}");
}
