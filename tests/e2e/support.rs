//! Per-test laptop profiles: a temporary data directory and its keystore entry, removed afterwards.

use sc_core::keystore::Keystore;
use sc_core::record::DataDir;
use sc_e2e::CareServer;

pub struct Laptop {
    pub dir: tempfile::TempDir,
    pub data: DataDir,
    pub keystore: Keystore,
}

impl Laptop {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("data dir");
        let keystore = tokio::task::spawn_blocking(Keystore::secret_service)
            .await
            .expect("join")
            .expect("the Secret Service keystore must run for these tests (scripts/test.sh starts one)");
        Laptop { dir, data, keystore }
    }

    pub async fn enrol(&self, server: &CareServer, prison: &str) -> sc_core::record::EnrolmentRecord {
        let token = server.token(prison).parse().expect("token");
        sc_core::enrol::enrol(&self.data, &self.keystore, &server.url, &token).await.expect("enrol")
    }

    pub fn kiosk(&self) -> sc_core::Kiosk {
        sc_core::Kiosk::open(self.dir.path(), Keystore::secret_service).expect("kiosk")
    }
}

impl Drop for Laptop {
    fn drop(&mut self) {
        let _ = self.keystore.delete(&self.data.profile_id());
    }
}

pub fn creds(username: &str, password: &str, code: String) -> sc_core::activate::Credentials {
    sc_core::activate::Credentials { username: username.into(), password: password.to_owned().into(), totp: code }
}

/// A laptop of `prison`, enrolled and unlocked by a new nurse `nurse`.
pub async fn unlocked(server: &CareServer, prison: &str, nurse: &str) -> (Laptop, sc_core::Kiosk) {
    let secret = server.add_nurse(nurse, &format!("Nurse {nurse}"), prison);
    let laptop = Laptop::new().await;
    laptop.enrol(server, prison).await;
    let kiosk = laptop.kiosk();
    let view = kiosk.sign_in(creds(nurse, sc_e2e::PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, sc_core::KioskView::Unlocked { .. }), "{view:?}");
    (laptop, kiosk)
}

/// The laptop's signalling connection.
pub async fn signalling(kiosk: &sc_core::Kiosk) -> Result<sc_core::signal::Signalling, sc_core::Error> {
    let token = kiosk.session_token().expect("unlocked");
    sc_core::signal::Signalling::connect(kiosk.record().expect("enrolled"), &token).await
}

/// The laptop's next well-formed message within 10 s.
pub async fn next(s: &mut sc_core::signal::Signalling) -> sc_proto::signal::FromServer {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.recv()).await {
            Ok(Some(sc_core::signal::Incoming::Message(m))) => return m,
            Ok(Some(sc_core::signal::Incoming::Alive)) => {} // the server's ping
            other => panic!("expected a message: {other:?}"),
        }
    }
}

/// Runs `cmd` to its end and returns its standard output; a failure panics with its standard error.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of `from` in `dir` where any uid can run it (the build directory and the clone may sit
/// under /root, out of a test's kiosk user's reach); `dir` is opened to others too.
pub fn runnable_by_anyone(from: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let to = dir.join(from.file_name().expect("a file name"));
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

/// Stores, in `dir`, an enrolment record naming `server_url` and `turn_urls` (the rest made up):
/// what the lock-down generators read.
pub fn record_naming(dir: &std::path::Path, server_url: &str, turn_urls: &[String]) {
    use sc_core::record::{EnrolmentRecord, RECORD_VERSION};
    use sc_proto::{Bytes, DeviceId};
    DataDir::open(dir)
        .expect("data dir")
        .store_record(&EnrolmentRecord {
            format: RECORD_VERSION,
            device_id: DeviceId::from_random([7; 16]),
            server_url: server_url.to_owned(),
            ca_cert: Bytes(vec![1; 32]),
            command_public_key: Bytes([2; 32]),
            exchange_public: Bytes([3; 32]),
            client_public: Bytes([4; 32]),
            turn_urls: turn_urls.to_vec(),
        })
        .expect("record");
}

/// The audit log's rows of `event`, oldest first: (outcome, detail).
pub fn audit_rows(server: &CareServer, event: &str) -> Vec<(String, String)> {
    sc_server::audit::tail(&server.state.db(), 1000)
        .expect("audit")
        .into_iter()
        .filter(|r| r.event == event)
        .map(|r| (r.outcome, r.detail.unwrap_or_default()))
        .collect()
}
